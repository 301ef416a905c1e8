/** Circuits figures from the /api/circuits/* endpoints: composition scores (Q, K, V), copying scores, positional QK, top copied tokens. */
import {
  colorbar, DIVERGING, finiteOrNull, fmt, headLabel, heatmapLayout, indexAxis, MASKED_COLOUR, headTicks, maxAbs, num, SEQUENTIAL, titleOf, tokenLabel,
} from './common.ts';
import type { Cell, FigureSpec, Trace } from './types.ts';

export interface CompositionData {
  mode: 'Q' | 'K' | 'V';
  layers: number[];
  heads: number[];
  /** [l1][h1][l2][h2] */
  scores: (number | string)[][][][];
  baseline: { mean: number | string; std: number | string; samples: number };
  /** Layer-0 heads' outputs read past block 0's MLP (its linearisation), not TransformerLens's direct scores. */
  pastMlp0?: boolean;
}

export interface CompositionFigureOptions {
  /**
   * 'z' (default): colour = (score − baseline mean) / baseline std, diverging around 0, so scores at the random baseline
   * are white whatever the model's size; 'score': the raw score on 0..max. The hover and the table give both.
   */
  scale?: 'z' | 'score';
}

/** Rows = earlier head (writing), columns = later head (reading through Q, K or V); entries with l1 ≥ l2 are greyed. */
export function compositionFigure(r: CompositionData, opts: CompositionFigureOptions = {}): FigureSpec {
  const heads: { layer: number; head: number }[] = [];
  r.layers.forEach((l) => r.heads.forEach((h) => heads.push({ layer: l, head: h })));
  const nh = r.heads.length;
  const labels = heads.map((x) => headLabel(x.layer, x.head));
  const mean = num(r.baseline.mean);
  const std = num(r.baseline.std);
  // A z-score needs a spread: without one (a single baseline sample) the raw score is drawn.
  const useZ = (opts.scale ?? 'z') === 'z' && Number.isFinite(std) && std > 0 && Number.isFinite(mean);
  const zOf = (v: number | null) => (v === null ? null : (v - mean) / std);
  const raw: (number | null)[][] = [];
  const hover: string[][] = [];
  const table: Cell[][] = [];
  heads.forEach((a, i) => {
    const li = Math.floor(i / nh);
    const hi = i % nh;
    raw.push(heads.map((b, j) => (a.layer < b.layer ? finiteOrNull(r.scores[li][hi][Math.floor(j / nh)][j % nh]) : null)));
    hover.push(heads.map((b, j) => {
      const v = raw[i][j];
      const pair = `${headLabel(a.layer, a.head)} → ${headLabel(b.layer, b.head)}`;
      return v === null ? pair : `${pair}<br>${r.mode}-composition ${fmt(v, 4)}${useZ ? `<br>z = ${fmt(zOf(v), 1)} vs the random baseline` : ''}`;
    }));
    heads.forEach((b, j) => {
      if (a.layer < b.layer) table.push([r.mode, a.layer, a.head, b.layer, b.head, raw[i][j], useZ ? zOf(raw[i][j]) : null]);
    });
  });
  const z = useZ ? raw.map((row) => row.map(zOf)) : raw;
  const lim = maxAbs(z, 3);
  const trace: Trace = {
    type: 'heatmap', z,
    ...(useZ
      ? { colorscale: DIVERGING, zmid: 0, zmin: -lim, zmax: lim, colorbar: colorbar(`${r.mode}-composition, z vs random`) }
      : { colorscale: SEQUENTIAL, zmin: 0, colorbar: colorbar(`${r.mode}-composition`) }),
    customdata: hover, hovertemplate: '%{customdata}<extra></extra>', hoverongaps: false,
    xgap: heads.length > 48 ? 0 : 1, ygap: heads.length > 48 ? 0 : 1,
  };
  const shapes = r.layers.slice(1).map((_l, k) => {
    const at = (k + 1) * nh - 0.5;
    return [
      { type: 'line', xref: 'x', yref: 'paper', x0: at, x1: at, y0: 0, y1: 1, line: { color: '#fff', width: 1 } },
      { type: 'line', yref: 'y', xref: 'paper', y0: at, y1: at, x0: 0, x1: 1, line: { color: '#fff', width: 1 } },
    ];
  }).flat();
  const what = r.pastMlp0 ? `${r.mode}-composition, layer-0 heads read past block 0's MLP` : `${r.mode}-composition scores`;
  const baseline = `random baseline ${fmt(mean)} ± ${fmt(std)}, ${r.baseline.samples} pairs`;
  return {
    name: `composition-${r.mode}${r.pastMlp0 ? '-past-mlp0' : ''}`,
    data: [trace],
    layout: heatmapLayout(useZ ? `${what} as z-scores against random matrices (${baseline})` : `${what} (${baseline})`, {
      xaxis: { ...indexAxis(labels, `later head (reads through ${r.mode})`), ...headTicks(r.layers, r.heads), tickangle: 0 },
      yaxis: { ...indexAxis(labels, 'earlier head (writes)', { reversed: true }), ...headTicks(r.layers, r.heads) },
      plot_bgcolor: MASKED_COLOUR,
      shapes,
    }),
    table: { columns: ['mode', 'layer_from', 'head_from', 'layer_to', 'head_to', 'score', 'z_vs_baseline'], rows: table },
  };
}

export interface CopyingData {
  layers: number[];
  heads: number[];
  scores: (number | string)[][];
  /** Read through the effective embedding (W_E through block 0's MLP) over `tokens` tokens instead of W_E. */
  pastMlp0?: boolean;
  tokens?: number;
}

/**
 * A reference level for copying scores: Σλ / Σ|λ| ≥ 0.7 means at least 85 % of the eigenvalue mass is positive (the OV
 * circuit mostly raises the token it reads). A reading aid, not a threshold from the literature.
 */
export const COPYING_REFERENCE = 0.7;

/** One bar per head (L{l}H{h}), the copying score Σλ / Σ|λ| of its full OV circuit, with the labelled 0.7 reference line. */
export function copyingFigure(r: CopyingData): FigureSpec {
  const labels: string[] = [];
  const y: (number | null)[] = [];
  const table: Cell[][] = [];
  r.layers.forEach((l, li) => r.heads.forEach((h, hi) => {
    const v = finiteOrNull(r.scores[li][hi]);
    labels.push(headLabel(l, h));
    y.push(v);
    table.push([l, h, v]);
  }));
  const trace: Trace = {
    type: 'bar', x: labels.map((_s, i) => i), y, customdata: labels,
    marker: {
      color: y.map((v) => v ?? 0), colorscale: [[0, '#b2182b'], [0.5, '#f7f7f7'], [1, '#2166ac']], cmin: -1, cmax: 1,
      colorbar: colorbar('copying score'), line: { color: '#777', width: 0.5 },
    },
    hovertemplate: '%{customdata}: %{y:.3f}<extra></extra>',
  };
  const title = titleOf(r.pastMlp0
    ? `Copying score per head past block 0's MLP (effective embedding · W_OV · W_U, ${r.tokens ?? '?'} tokens)`
    : 'Copying score per head (positive eigenvalues of W_E W_OV W_U)');
  return {
    name: r.pastMlp0 ? 'copying-scores-past-mlp0' : 'copying-scores',
    data: [trace],
    layout: {
      title: title.title,
      margin: { l: 60, r: 20, t: title.top, b: 60 },
      font: { size: 11 },
      xaxis: { ...indexAxis(labels, 'head'), ...headTicks(r.layers, r.heads), tickangle: labels.length > 24 ? 0 : -45 },
      yaxis: { title: { text: 'Σλ / Σ|λ|' }, range: [-1.05, 1.05], zeroline: true, automargin: true },
      shapes: [{ type: 'line', xref: 'paper', x0: 0, x1: 1, y0: COPYING_REFERENCE, y1: COPYING_REFERENCE, line: { color: '#555', dash: 'dot', width: 1 } }],
      annotations: [{
        text: `${COPYING_REFERENCE}: mostly copying`, xref: 'paper', x: 1, xanchor: 'right', y: COPYING_REFERENCE, yanchor: 'bottom',
        showarrow: false, font: { size: 10, color: '#555' },
      }],
    },
    table: { columns: ['layer', 'head', 'copying_score'], rows: table },
  };
}

export interface PositionalData {
  layer: number;
  head: number;
  nPos: number;
  pattern: (number | string)[][];
  previousTokenScore: number | string;
}

/** The positional QK pattern of one head: causal softmax of W_pos W_QK W_posᵀ (previous-token heads show a sub-diagonal). */
export function positionalFigure(r: PositionalData): FigureSpec {
  const z = r.pattern.map((row, q) => row.map((v, k) => (k > q ? null : finiteOrNull(v))));
  const idx = z.map((_r, i) => String(i));
  const table: Cell[][] = [];
  z.forEach((row, q) => row.forEach((v, k) => {
    if (k <= q) table.push([r.layer, r.head, q, k, v]);
  }));
  return {
    name: `positional-${headLabel(r.layer, r.head)}`,
    data: [{
      type: 'heatmap', z, zmin: 0, zmax: 1, colorscale: SEQUENTIAL, colorbar: colorbar('attention'), hoverongaps: false,
      hovertemplate: 'query %{y} → key %{x}: %{z:.3f}<extra></extra>',
    }],
    layout: heatmapLayout(`Positional QK pattern of ${headLabel(r.layer, r.head)} from the weights (softmax of W_pos W_QK W_posᵀ); positional previous-token score ${fmt(num(r.previousTokenScore))}`, {
      xaxis: { ...indexAxis(idx, 'key position', { maxTicks: 16 }), constrain: 'domain' },
      yaxis: { ...indexAxis(idx, 'query position', { reversed: true, maxTicks: 16 }), scaleanchor: 'x', constrain: 'domain' },
    }),
    table: { columns: ['layer', 'head', 'query_pos', 'key_pos', 'pattern'], rows: table },
  };
}

export interface TopCopiedData {
  layer: number;
  head: number;
  rows: { token: number; str: string | null; top: { token: number; str: string | null; value: number | string }[] }[];
  /** Source tokens read through the effective embedding instead of W_E. */
  pastMlp0?: boolean;
}

/** "What does this head copy": for each source token, the tokens its OV circuit raises most (a Plotly table). */
export function topCopiedFigure(r: TopCopiedData): FigureSpec {
  const k = Math.max(0, ...r.rows.map((x) => x.top.length));
  const header = ['source token', ...Array.from({ length: k }, (_v, i) => `#${i + 1}`)];
  const columns: string[][] = [r.rows.map((x) => tokenLabel(x.str ?? String(x.token)))];
  for (let i = 0; i < k; i++) columns.push(r.rows.map((x) => (x.top[i] ? `${tokenLabel(x.top[i].str ?? String(x.top[i].token))} (${fmt(num(x.top[i].value), 2)})` : '')));
  const table: Cell[][] = [];
  r.rows.forEach((x) => x.top.forEach((t, i) => table.push([r.layer, r.head, x.token, x.str, i + 1, t.token, t.str, num(t.value)])));
  return {
    name: `top-copied-${headLabel(r.layer, r.head)}${r.pastMlp0 ? '-past-mlp0' : ''}`,
    data: [{
      type: 'table',
      header: { values: header, align: 'left', fill: { color: '#eef1f5' }, font: { size: 11 } },
      columnwidth: [1, ...Array.from({ length: k }, () => 1.4)],
      cells: { values: columns, align: 'left', font: { family: 'ui-monospace, "DejaVu Sans Mono", monospace', size: 11 }, height: 24 },
    }],
    layout: {
      title: titleOf(`What ${headLabel(r.layer, r.head)} copies: top tokens of its OV circuit${r.pastMlp0 ? " (sources past block 0's MLP)" : ''}`).title,
      margin: { l: 10, r: 10, t: 40, b: 10 },
    },
    table: { columns: ['layer', 'head', 'source_id', 'source_str', 'rank', 'token_id', 'token_str', 'value'], rows: table },
  };
}
