/** Gradient figures: attribution against activation patching per component (a scatter with their correlation), and input saliency per token. */
import { DIVERGING, fmt, num, positionLabels, titleOf, tokenLabel } from './common.ts';
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
