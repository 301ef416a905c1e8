/** Shared pieces of the figure builders: token labels safe for Plotly's text, tick arrays, colour scales, heatmap layout. */
import type { Layout } from './types.ts';

/** A diverging scale: red for negative, white at zero, blue for positive (use with zmid: 0). */
export const DIVERGING: [number, string][] = [
  [0, '#b2182b'], [0.25, '#ef8a62'], [0.5, '#f7f7f7'], [0.75, '#67a9cf'], [1, '#2166ac'],
];
/** A sequential scale for probabilities and scores (light = low, dark = high). */
export const SEQUENTIAL = 'Viridis';
/** The colour of cells without a value (masked positions, the upper triangle of a causal pattern). */
export const MASKED_COLOUR = '#d9d9d9';

/**
 * A token or label as Plotly should draw it: Plotly reads `<…>` and `&…;` as markup, so they are escaped;
 * newlines and tabs are made visible (↵, ⇥) so a label never breaks a line.
 */
export function tokenLabel(s: string | null | undefined): string {
  if (s === null || s === undefined) return '∅';
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/\r?\n/g, '↵').replace(/\t/g, '⇥');
}

/** Tick labels `i: token` for positions (indices keep repeated tokens apart). */
export function positionLabels(strTokens: readonly (string | null)[]): string[] {
  return strTokens.map((t, i) => `${i}: ${tokenLabel(t)}`);
}

/** Head labels L{l}H{h} in row-major order [n_layers, n_heads]. */
export function headLabel(layer: number, head: number): string {
  return `L${layer}H${head}`;
}

/** A categorical axis over 0..n-1 with explicit tick text (numeric positions, so repeated labels stay distinct). */
export function indexAxis(labels: readonly string[], title: string, opts: { reversed?: boolean; maxTicks?: number } = {}): Layout {
  const n = labels.length;
  const step = Math.max(1, Math.ceil(n / (opts.maxTicks ?? 40)));
  const tickvals: number[] = [];
  for (let i = 0; i < n; i += step) tickvals.push(i);
  const longest = labels.reduce((m, s) => Math.max(m, s.length), 0);
  return {
    title: { text: title },
    tickmode: 'array',
    tickvals,
    ticktext: tickvals.map((i) => labels[i]),
    range: opts.reversed ? [n - 0.5, -0.5] : [-0.5, n - 0.5],
    showgrid: false,
    zeroline: false,
    automargin: true,
    ...(longest * Math.min(n, 40) > 60 ? { tickangle: -45 } : {}),
  };
}

/** The layout every heatmap starts from. */
export function heatmapLayout(title: string, extra: Layout = {}): Layout {
  return {
    title: { text: title, font: { size: 14 }, x: 0, xanchor: 'left' },
    margin: { l: 60, r: 20, t: 40, b: 50 },
    font: { family: 'system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", sans-serif', size: 11 },
    paper_bgcolor: '#ffffff',
    plot_bgcolor: MASKED_COLOUR,
    hoverlabel: { font: { family: 'ui-monospace, "DejaVu Sans Mono", monospace', size: 11 } },
    ...extra,
  };
}

/** A colour bar with a title (every heatmap has one). */
export function colorbar(title: string): Record<string, unknown> {
  return { title: { text: title, side: 'right' }, thickness: 12, len: 0.9, outlinewidth: 0 };
}

/** Decodes the API's number encoding ("Infinity", "-Infinity", "NaN" strings) to a number. */
export function num(v: number | string | null | undefined): number {
  if (typeof v === 'number') return v;
  if (v === 'Infinity') return Infinity;
  if (v === '-Infinity') return -Infinity;
  return NaN;
}

/** A value Plotly can draw: finite numbers as is, everything else null (a gap shown in the masked colour). */
export function finiteOrNull(v: number | string | null | undefined): number | null {
  const x = num(v);
  return Number.isFinite(x) ? x : null;
}

/** The largest |z| over finite values (for symmetric diverging scales), at least `floor`. */
export function maxAbs(z: readonly (readonly (number | null)[])[], floor = 1e-9): number {
  let m = floor;
  for (const row of z) for (const v of row) if (v !== null && Number.isFinite(v)) m = Math.max(m, Math.abs(v));
  return m;
}

/** Short number text for cells and hovers. */
export function fmt(v: number | null, digits = 3): string {
  if (v === null || !Number.isFinite(v)) return String(v);
  const a = Math.abs(v);
  if (a !== 0 && (a < 1e-3 || a >= 1e4)) return v.toExponential(2);
  return v.toFixed(digits);
}
