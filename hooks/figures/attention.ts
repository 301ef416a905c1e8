/** Attention figures from POST /api/attention: one head large (query × key, upper triangle greyed), all heads as a grid, the token-to-token lines view. */
import { colorbar, finiteOrNull, fmt, headLabel, heatmapLayout, indexAxis, MASKED_COLOUR, positionLabels, SEQUENTIAL, tokenLabel } from './common.ts';
import type { Cell, FigureSpec, Layout, Trace } from './types.ts';

/** The parts of the /api/attention answer these figures read. */
export interface AttentionData {
  strTokens: string[] | null;
  tokens: number[];
  layers: number[];
  heads: number[];
  /** [layer][head][query_pos][key_pos] */
  patterns: (number | string)[][][][];
}

function labelsOf(a: AttentionData): string[] {
  return a.strTokens ?? a.tokens.map(String);
}

/** Index of `layer` / `head` in the answer's lists, with a clear error when it was not returned. */
export function headIndex(a: AttentionData, layer: number, head: number): { li: number; hi: number } {
  const li = a.layers.indexOf(layer);
  const hi = a.heads.indexOf(head);
  if (li < 0) throw new Error(`attention: layer ${layer} is not in the answer (layers ${a.layers.join(', ')})`);
  if (hi < 0) throw new Error(`attention: head ${head} is not in the answer (heads ${a.heads.join(', ')})`);
  return { li, hi };
}

/** One head's pattern [query][key] with the masked (future) entries as null. */
export function headPattern(a: AttentionData, layer: number, head: number): (number | null)[][] {
  const { li, hi } = headIndex(a, layer, head);
  return a.patterns[li][hi].map((row, q) => row.map((v, k) => (k > q ? null : finiteOrNull(v))));
}

/** The long table of patterns: layer, head, query_pos, key_pos, query_token, key_token, pattern (causal entries only). */
function patternRows(a: AttentionData, pairs: { layer: number; head: number }[]): Cell[][] {
  const toks = labelsOf(a);
  const rows: Cell[][] = [];
  for (const { layer, head } of pairs) {
    const p = headPattern(a, layer, head);
    for (let q = 0; q < p.length; q++) for (let k = 0; k <= q; k++) rows.push([layer, head, q, k, toks[q], toks[k], p[q][k]]);
  }
  return rows;
}
const PATTERN_COLUMNS = ['layer', 'head', 'query_pos', 'key_pos', 'query_token', 'key_token', 'pattern'];

/** Outlines of token `focus`'s row (what it attends to, solid) and column (what attends to it, dotted) in an n × n head figure. */
export function focusShapes(n: number, focus: number | null | undefined): Record<string, unknown>[] {
  if (focus === null || focus === undefined || focus < 0 || focus >= n) return [];
  const line = { color: '#e6550d', width: 2 };
  return [
    { type: 'rect', xref: 'x', yref: 'y', x0: -0.5, x1: focus + 0.5, y0: focus - 0.5, y1: focus + 0.5, line },
    { type: 'rect', xref: 'x', yref: 'y', x0: focus - 0.5, x1: focus + 0.5, y0: focus - 0.5, y1: n - 0.5, line: { ...line, dash: 'dot' } },
  ];
}

export interface HeadFigureOptions {
  /** Outline this token's row (what it attends to) and column (what attends to it). */
  focus?: number | null;
  /** At most this many tick labels per axis (default 40; small plots want fewer). */
  maxTicks?: number;
}

/** One head large: y = query (destination) position, x = key (source) position, token labels, upper triangle greyed. */
export function attentionHeadFigure(a: AttentionData, layer: number, head: number, opts: HeadFigureOptions = {}): FigureSpec {
  const z = headPattern(a, layer, head);
  const labels = positionLabels(labelsOf(a));
  const n = labels.length;
  const text = z.map((row, q) => row.map((v, k) => `query ${labels[q]}<br>key ${labels[k]}<br>${v === null ? 'masked (future)' : fmt(v)}`));
  const shapes = focusShapes(n, opts.focus);
  const data: Trace[] = [{
    type: 'heatmap', z, zmin: 0, zmax: 1, colorscale: SEQUENTIAL, colorbar: colorbar('attention'),
    text, hovertemplate: '%{text}<extra></extra>', hoverongaps: false, xgap: n > 40 ? 0 : 1, ygap: n > 40 ? 0 : 1,
  }];
  const layout = heatmapLayout(`Attention pattern ${headLabel(layer, head)}`, {
    xaxis: { ...indexAxis(labels, 'key (source) position', { maxTicks: opts.maxTicks }), side: 'bottom', constrain: 'domain' },
    yaxis: { ...indexAxis(labels, 'query (destination) position', { reversed: true, maxTicks: opts.maxTicks }), scaleanchor: 'x', constrain: 'domain', constraintoward: 'top' },
    plot_bgcolor: MASKED_COLOUR,
    shapes,
  });
  return { name: `attention-${headLabel(layer, head)}`, data, layout, table: { columns: PATTERN_COLUMNS, rows: patternRows(a, [{ layer, head }]) } };
}

/**
 * A pattern [query][key] (null above the diagonal) pooled into blocks of `b` × `b` positions, each block the largest
 * weight in it (a stripe one position wide stays at full strength), null where the whole block is in the future.
 */
export function poolPattern(z: readonly (readonly (number | null)[])[], b: number): (number | null)[][] {
  if (b <= 1) return z.map((row) => [...row]);
  const n = z.length;
  const m = Math.ceil(n / b);
  const out: (number | null)[][] = Array.from({ length: m }, () => new Array<number | null>(m).fill(null));
  for (let q = 0; q < n; q++) {
    const row = z[q];
    const bq = Math.floor(q / b);
    for (let k = 0; k <= q && k < row.length; k++) {
      const v = row[k];
      if (v === null) continue;
      const bk = Math.floor(k / b);
      const cur = out[bq][bk];
      if (cur === null || v > cur) out[bq][bk] = v;
    }
  }
  return out;
}

export interface GridFigureOptions {
  /** Outline this head (the CLI's choice; the dashboard draws its lock box as an on-screen overlay instead: gridHeadOutline). */
  selected?: { layer: number; head: number } | null;
  /** At most this many cells per thumbnail side: longer prompts are max-pooled into blocks (default 48). */
  maxCells?: number;
}

/** The outline of head (layer, head) in attentionGridFigure's layout (a shape). */
export function gridHeadOutline(a: AttentionData, layer: number, head: number): Record<string, unknown> | null {
  const li = a.layers.indexOf(layer);
  const hi = a.heads.indexOf(head);
  if (li < 0 || hi < 0) return null;
  const i = li * a.heads.length + hi;
  const ax = i === 0 ? '' : String(i + 1);
  return { type: 'rect', xref: `x${ax} domain`, yref: `y${ax} domain`, x0: -0.03, x1: 1.03, y0: -0.03, y1: 1.0, line: { color: '#e6550d', width: 3 } };
}

/**
 * All heads as a grid of small heatmaps (rows = layers, columns = heads), one colour scale (0..1).
 * Trace i is the head at layers[floor(i / heads.length)], heads[i % heads.length] (see gridHeadAt).
 * Prompts longer than `maxCells` tokens are drawn max-pooled (the hover names each block's positions); the table
 * always holds every weight.
 */
export function attentionGridFigure(a: AttentionData, opts: GridFigureOptions = {}): FigureSpec {
  const nl = a.layers.length;
  const nh = a.heads.length;
  const labels = positionLabels(labelsOf(a));
  const n = labels.length;
  const b = Math.max(1, Math.ceil(n / (opts.maxCells ?? 48)));
  const m = Math.ceil(n / b);
  const span = (i: number) => (b === 1 ? labels[i] : `${i * b}–${Math.min(n, (i + 1) * b) - 1} (largest weight in the block)`);
  // The hover text of a cell is the same for every head but its label: built once.
  const cellText = Array.from({ length: m }, (_r, q) => Array.from({ length: m }, (_c, k) => `query ${span(q)}<br>key ${span(k)}`));
  const data: Trace[] = [];
  const layout: Layout = heatmapLayout(b > 1 ? `All heads (${b}×${b} positions a cell)` : 'All heads', {
    grid: { rows: nl, columns: nh, pattern: 'independent', xgap: 0.08, ygap: 0.12 },
    margin: { l: 50, r: 20, t: 40, b: 20 },
    annotations: [] as unknown[],
    shapes: [] as unknown[],
  });
  const pairs: { layer: number; head: number }[] = [];
  for (let li = 0; li < nl; li++) {
    for (let hi = 0; hi < nh; hi++) {
      const i = li * nh + hi;
      const layer = a.layers[li];
      const head = a.heads[hi];
      pairs.push({ layer, head });
      const ax = i === 0 ? '' : String(i + 1);
      const z = poolPattern(headPattern(a, layer, head), b);
      data.push({
        type: 'heatmap', z, zmin: 0, zmax: 1, colorscale: SEQUENTIAL, xaxis: `x${ax}`, yaxis: `y${ax}`,
        showscale: i === 0, ...(i === 0 ? { colorbar: colorbar('attention') } : {}),
        customdata: cellText,
        hovertemplate: `${headLabel(layer, head)}<br>%{customdata}<br>%{z:.3f}<extra></extra>`, hoverongaps: false,
      });
      const hidden = { showticklabels: false, ticks: '', showgrid: false, zeroline: false };
      // square cells: the subplot shrinks to a square inside its grid slot (constrain: domain) instead of padding its range
      layout[`xaxis${ax}`] = { ...hidden, range: [-0.5, m - 0.5], constrain: 'domain' };
      layout[`yaxis${ax}`] = {
        ...hidden, range: [m - 0.5, -0.5], scaleanchor: `x${ax}`, constrain: 'domain',
        ...(hi === 0 ? { title: { text: `L${layer}`, standoff: 2 } } : {}),
      };
      // Up to 8 heads a row each subplot is labelled L{l}H{h}; wider grids label only the top row (H{h}) so labels never collide.
      if (nh <= 8 || li === 0) {
        (layout.annotations as unknown[]).push({
          text: nh <= 8 ? headLabel(layer, head) : `H${head}`, showarrow: false, xref: `x${ax} domain`, yref: `y${ax} domain`,
          x: 0.5, y: 1, yanchor: 'bottom', yshift: 2, font: { size: 10 },
        });
      }
    }
  }
  if (opts.selected) {
    const outline = gridHeadOutline(a, opts.selected.layer, opts.selected.head);
    if (outline) (layout.shapes as unknown[]).push(outline);
  }
  return { name: 'attention-grid', data, layout, table: { columns: PATTERN_COLUMNS, rows: patternRows(a, pairs) } };
}

/** The (layer, head) drawn by trace `curveNumber` of attentionGridFigure. */
export function gridHeadAt(a: AttentionData, curveNumber: number): { layer: number; head: number } {
  const nh = a.heads.length;
  return { layer: a.layers[Math.floor(curveNumber / nh)], head: a.heads[curveNumber % nh] };
}

/** What token `pos` attends to most and what attends to it most: the top-k (position, weight) pairs each way. */
export function attentionFocus(pattern: (number | null)[][], pos: number, k = 3): { attendsTo: [number, number][]; attendedBy: [number, number][] } {
  const top = (pairs: [number, number][]) => pairs.filter(([, w]) => w > 0).sort((x, y) => y[1] - x[1]).slice(0, k);
  const row = pattern[pos] ?? [];
  const attendsTo = top(row.map((v, j) => [j, v ?? 0]));
  const attendedBy = top(pattern.map((r, q) => [q, r[pos] ?? 0]));
  return { attendsTo, attendedBy };
}

/**
 * The focused token's lines in attentionLinesFigure as shapes (drawn over the figure: a focus changes no trace, so the
 * chart redraws only its shapes): every weight ≥ minWeight into or out of `focus`, thicker for larger weights.
 */
export function focusLineShapes(a: AttentionData, layer: number, head: number, focus: number | null | undefined, minWeight = 0.05): Record<string, unknown>[] {
  const z = headPattern(a, layer, head);
  if (focus === null || focus === undefined || focus < 0 || focus >= z.length) return [];
  const out: Record<string, unknown>[] = [];
  const line = (k: number, q: number, w: number) => out.push({
    type: 'line', xref: 'x', yref: 'y', x0: 0, x1: 1, y0: k, y1: q, line: { color: '#e6550d', width: 1 + 4 * w },
  });
  for (let k = 0; k <= focus; k++) if ((z[focus][k] ?? 0) >= minWeight) line(k, focus, z[focus][k] ?? 0);
  for (let q = focus + 1; q < z.length; q++) if ((z[q][focus] ?? 0) >= minWeight) line(focus, q, z[q][focus] ?? 0);
  return out;
}

/**
 * Token-to-token lines: source tokens on the left, destination tokens on the right, a line for each weight
 * ≥ minWeight (darker and thicker for larger weights). With `focus`, only lines into or out of that token.
 */
export function attentionLinesFigure(a: AttentionData, layer: number, head: number, opts: { focus?: number | null; minWeight?: number } = {}): FigureSpec {
  const z = headPattern(a, layer, head);
  const toks = labelsOf(a).map(tokenLabel);
  const n = toks.length;
  const minW = opts.minWeight ?? 0.05;
  const buckets = [0.2, 0.4, 0.6, 0.8, 1.0001];
  const edges: [number, number, number][][] = buckets.map(() => []);
  for (let q = 0; q < n; q++) {
    for (let k = 0; k <= q; k++) {
      const w = z[q][k] ?? 0;
      if (w < minW) continue;
      if (opts.focus !== null && opts.focus !== undefined && q !== opts.focus && k !== opts.focus) continue;
      edges[buckets.findIndex((b) => w < b)].push([k, q, w]);
    }
  }
  const data: Trace[] = edges.map((es, b) => {
    const x: (number | null)[] = [];
    const y: (number | null)[] = [];
    for (const [k, q] of es) x.push(0, 1, null), y.push(k, q, null);
    return {
      type: 'scatter', mode: 'lines', x, y, hoverinfo: 'skip', showlegend: false,
      line: { color: `rgba(33, 102, 172, ${0.25 + 0.18 * b})`, width: 1 + 1.5 * b },
    };
  });
  const ys = toks.map((_t, i) => i);
  const side = (x: number, pos: 'left' | 'right'): Trace => ({
    type: 'scatter', mode: 'text+markers', x: ys.map(() => x), y: ys, text: toks.map((t, i) => `${i}: ${t}`),
    textposition: pos === 'left' ? 'middle left' : 'middle right', marker: { size: 6, color: '#444' }, showlegend: false,
    hovertemplate: `${pos === 'left' ? 'source' : 'destination'} %{text}<extra></extra>`,
  });
  data.push(side(0, 'left'), side(1, 'right'));
  const rows: Cell[][] = [];
  edges.flat().forEach(([k, q, w]) => rows.push([layer, head, q, k, w]));
  rows.sort((r1, r2) => (r1[2] as number) - (r2[2] as number) || (r1[3] as number) - (r2[3] as number));
  const layout: Layout = {
    ...heatmapLayout(`Token-to-token attention ${headLabel(layer, head)} (weights ≥ ${minW})`),
    plot_bgcolor: '#ffffff',
    xaxis: { visible: false, range: [-0.8, 1.8] },
    yaxis: { visible: false, range: [n - 0.5, -0.5] },
    annotations: [
      { text: 'source (key)', x: 0, y: -0.5, xref: 'x', yref: 'y', yanchor: 'bottom', showarrow: false, font: { size: 11 } },
      { text: 'destination (query)', x: 1, y: -0.5, xref: 'x', yref: 'y', yanchor: 'bottom', showarrow: false, font: { size: 11 } },
    ],
  };
  return { name: `attention-lines-${headLabel(layer, head)}`, data, layout, table: { columns: ['layer', 'head', 'query_pos', 'key_pos', 'pattern'], rows } };
}
