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

/**
 * A categorical axis over 0..n-1 with explicit tick text (numeric positions, so repeated labels stay distinct).
 * `reversed` puts index 0 at the top (a y axis); x axes with long or many labels get slanted ticks, y axes never.
 */
export function indexAxis(labels: readonly string[], title: string, opts: { reversed?: boolean; maxTicks?: number; y?: boolean } = {}): Layout {
  const n = labels.length;
  const step = Math.max(1, Math.ceil(n / (opts.maxTicks ?? 40)));
  const tickvals: number[] = [];
  for (let i = 0; i < n; i += step) tickvals.push(i);
  const longest = tickvals.reduce((m, i) => Math.max(m, labels[i].replace(/&[a-z]+;/g, 'x').length), 0);
  // Slant x tick labels when they would not fit side by side (~6.5 px per character in 600 px); upright when many.
  const crowded = !opts.y && !opts.reversed && tickvals.length * longest * 6.5 > 600;
  return {
    title: { text: title },
    tickmode: 'array',
    tickvals,
    ticktext: tickvals.map((i) => labels[i]),
    range: opts.reversed ? [n - 0.5, -0.5] : [-0.5, n - 0.5],
    showgrid: false,
    zeroline: false,
    automargin: true,
    // Plotly's default overflow check measures every tick label once per tick label (quadratic in the ticks: 160 ms a
    // redraw at 128 positions); automargin already keeps labels inside the figure.
    ticklabeloverflow: 'allow',
    tickangle: crowded ? (tickvals.length > 16 ? -90 : -45) : 0,
  };
}

/** A long title broken at a space into lines of at most `width` characters (Plotly never wraps titles itself). */
export function wrapTitle(text: string, width = 72): string {
  const lines: string[] = [];
  let line = '';
  for (const word of text.split(' ')) {
    if (line && line.length + 1 + word.length > width) {
      lines.push(line);
      line = word;
    } else line = line ? `${line} ${word}` : word;
  }
  lines.push(line);
  return lines.join('<br>');
}

/** A figure title (wrapped) and the top margin it needs. */
export function titleOf(text: string, size = 14): { title: Layout; top: number } {
  const wrapped = wrapTitle(text);
  const lines = wrapped.split('<br>').length;
  return { title: { text: wrapped, font: { size }, x: 0, xanchor: 'left' }, top: 22 + lines * (size + 6) };
}

/**
 * Ticks for an axis of all heads in order (L0H0, L0H1, …): one per head up to 24 heads, else one per layer at the
 * centre of its heads ("L3"), so labels never crowd (hovers still name each head).
 */
export function headTicks(layers: readonly number[], heads: readonly number[]): { tickvals: number[]; ticktext: string[] } {
  const nh = heads.length;
  if (layers.length * nh <= 24) {
    const tickvals: number[] = [];
    const ticktext: string[] = [];
    layers.forEach((l, li) => heads.forEach((h, hi) => (tickvals.push(li * nh + hi), ticktext.push(headLabel(l, h)))));
    return { tickvals, ticktext };
  }
  return { tickvals: layers.map((_l, li) => li * nh + (nh - 1) / 2), ticktext: layers.map((l) => `L${l}`) };
}

/** The layout every heatmap starts from. */
export function heatmapLayout(title: string, extra: Layout = {}): Layout {
  const t = titleOf(title);
  const margin = { l: 60, r: 20, t: t.top, b: 50, ...((extra.margin as Layout | undefined) ?? {}) };
  return {
    title: t.title,
    font: { family: 'system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", sans-serif', size: 11 },
    paper_bgcolor: '#ffffff',
    plot_bgcolor: MASKED_COLOUR,
    hoverlabel: { font: { family: 'ui-monospace, "DejaVu Sans Mono", monospace', size: 11 } },
    ...extra,
    margin: { ...margin, t: Math.max(t.top, Number(margin.t)) },
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
