/** Gradient figures: attribution against activation patching per component (a scatter with their correlation), and input saliency per token. */
import { pearsonCorrelation } from '../ops/correlation.ts';
import { DIVERGING, fmt, headLabel, num, positionLabels, titleOf, tokenLabel } from './common.ts';
import type { PatchData } from './ioi.ts';
import type { FigureSpec, Trace } from './types.ts';

export interface AttributionScatterData {
  /** What was patched ("head outputs (all positions)", …). */
  kind: string;
  /** One label per component (L3H5, "L2 pos 4", …). */
  labels: string[];
  activation: (number | string)[];
  attribution: (number | string)[];
  /** Pearson's r of the two (null when either is constant). */
  r: number | string | null;
}

/** One point per component (activation patching on x, attribution patching on y) and the y = x line. */
export function attributionScatterFigure(d: AttributionScatterData): FigureSpec {
  const x = d.activation.map(num);
  const y = d.attribution.map(num);
  const finite = [...x, ...y].filter(Number.isFinite);
  const lo = Math.min(0, ...finite);
  const hi = Math.max(1, ...finite);
  const points: Trace = {
    type: 'scatter', mode: 'markers', x, y, text: d.labels.map(tokenLabel), name: 'component',
    marker: { size: 7, color: '#2166ac', opacity: 0.75 },
    hovertemplate: '%{text}<br>activation %{x:.3f}<br>attribution %{y:.3f}<extra></extra>',
  };
  const diagonal: Trace = {
    type: 'scatter', mode: 'lines', x: [lo, hi], y: [lo, hi], name: 'attribution = activation',
    line: { color: '#999', dash: 'dot', width: 1 }, hoverinfo: 'skip',
  };
  const r = d.r === null ? null : num(d.r);
  const title = titleOf(`Attribution vs activation patching: ${d.kind} (Pearson r = ${r === null || !Number.isFinite(r) ? 'n/a' : fmt(r)}, ${x.length} components)`, 13);
  return {
    name: `attribution-vs-activation-${d.kind.replace(/[^a-z0-9]+/gi, '-').toLowerCase()}`,
    data: [points, diagonal],
    layout: {
      title: title.title,
      margin: { l: 60, r: 20, t: title.top, b: 50 },
      font: { size: 11 },
      showlegend: false,
      xaxis: { title: { text: 'activation patching (clean = 1, corrupted = 0)' }, zeroline: true, automargin: true },
      yaxis: { title: { text: 'attribution patching' }, zeroline: true, automargin: true },
    },
    table: { columns: ['component', 'activation', 'attribution'], rows: d.labels.map((l, i) => [l, x[i], y[i]]) },
  };
}

/** The components of patching result `index` in order, labelled (L3 · 4: tok, L3H5, L3H5 · 4: tok), with their values. */
function components(r: PatchData, index: number): { labels: string[]; values: (number | string)[] } {
  const res = r.results[index];
  const strTokens = r.cleanStrTokens ?? r.cleanTokens.map(String);
  const labels: string[] = [];
  const values: (number | string)[] = [];
  const walk = (v: unknown, d: number, idx: Record<string, number>): void => {
    if (d === res.dims.length) {
      const where = idx.pos === undefined ? '' : ` · ${idx.pos}: ${strTokens[idx.pos]}`;
      labels.push(`${idx.head === undefined ? `L${idx.layer}` : headLabel(idx.layer, idx.head)}${where}`);
      values.push(v as number | string);
      return;
    }
    (v as unknown[]).forEach((x, i) => walk(x, d + 1, { ...idx, [res.dims[d]]: i }));
  };
  walk(res.values, 0, {});
  return { labels, values };
}

/** Result `index` of activation patching against the same result of attribution patching (the same request), with Pearson's r. */
export function patchComparisonFigure(activation: PatchData, attribution: PatchData, index: number): FigureSpec {
  const a = components(activation, index);
  const b = components(attribution, index);
  if (a.values.length !== b.values.length) throw new Error(`patchComparisonFigure: result ${index} has ${a.values.length} activation and ${b.values.length} attribution values`);
  const kind = activation.results[index].kind;
  return attributionScatterFigure({ kind, labels: a.labels, activation: a.values, attribution: b.values, r: pearsonCorrelation(b.values.map(num), a.values.map(num)) });
}

export interface SaliencyData {
  tokens: number[];
  strTokens: (string | null)[] | null;
  method: string;
  /** Per token, its summed attribution. */
  scores: (number | string)[];
}

/** One bar per input token, coloured by sign (blue raises the metric, red lowers it). */
export function saliencyFigure(d: SaliencyData): FigureSpec {
  const y = d.scores.map(num);
  const labels = positionLabels(d.strTokens ?? d.tokens.map(String));
  const scale = Math.max(1e-9, ...y.filter(Number.isFinite).map(Math.abs));
  const trace: Trace = {
    type: 'bar', x: labels.map((_l, i) => i), y, marker: { color: y, colorscale: DIVERGING, cmin: -scale, cmax: scale }, text: labels,
    hovertemplate: '%{text}<br>score %{y:.4f}<extra></extra>',
  };
  const title = titleOf(`Input saliency (${d.method === 'integrated_gradients' ? 'integrated gradients' : 'gradient × input'}) per token`, 13);
  return {
    name: `saliency-${d.method}`,
    data: [trace],
    layout: {
      title: title.title,
      margin: { l: 60, r: 20, t: title.top, b: 80 },
      font: { size: 11 },
      xaxis: { tickmode: 'array', tickvals: labels.map((_l, i) => i), ticktext: labels, tickangle: labels.length > 12 ? -45 : 0, automargin: true },
      yaxis: { title: { text: 'attribution' }, zeroline: true, automargin: true },
    },
    table: { columns: ['pos', 'token', 'str', 'score'], rows: d.tokens.map((t, i) => [i, t, d.strTokens?.[i] ?? null, y[i]]) },
  };
}
