/** Layers × heads heatmaps (ablation sweeps, head-detector scores, direct logit attribution, patching per head) and head rankings. */
import { colorbar, DIVERGING, finiteOrNull, headLabel, heatmapLayout, indexAxis, maxAbs, SEQUENTIAL } from './common.ts';
import type { Cell, FigureSpec, Layout, Trace } from './types.ts';

export interface HeadGrid {
  layers: number[];
  heads: number[];
  /** [layer][head] */
  values: (number | string)[][];
}

export interface HeadGridOptions {
  title: string;
  /** Colour-bar title and the value column's name. */
  valueName: string;
  /** A colour-bar title other than valueName (the table column keeps valueName). */
  colorbarTitle?: string;
  /** diverging: red < 0 < blue, symmetric around 0; sequential: Viridis over [zmin, zmax]. */
  scale: 'diverging' | 'sequential';
  zmin?: number;
  zmax?: number;
  /** Heads to outline (an ablation set, a locked head). */
  selected?: { layer: number; head: number }[];
  /** Write the value in each cell (default when there are at most 16 × 16 cells). */
  cellText?: boolean;
  name: string;
  /** Extra table columns (name, value per [li][hi]). */
  extra?: { column: string; values: (number | string)[][] }[];
}

/** A cell's value in at most 5 characters (-0.00 … 99.99, then whole numbers), so it stays inside its cell. */
export function cellText(v: number | null): string {
  if (v === null || !Number.isFinite(v)) return '';
  return Math.abs(v) < 99.995 ? v.toFixed(2) : Math.abs(v) < 1e5 ? String(Math.round(v)) : v.toExponential(0);
}

/** Outlines of heads in a headGridFigure (x = head, y = layer): an ablation set, a chosen head. */
export function headOutlines(heads: readonly { layer: number; head: number }[]): Record<string, unknown>[] {
  return heads.map(({ layer, head }) => ({
    type: 'rect', xref: 'x', yref: 'y', x0: head - 0.5, x1: head + 0.5, y0: layer - 0.5, y1: layer + 0.5, line: { color: '#111', width: 3 },
  }));
}

export function headGridFigure(g: HeadGrid, o: HeadGridOptions): FigureSpec {
  const z = g.values.map((row) => row.map(finiteOrNull));
  const hover = g.layers.map((l) => g.heads.map((h) => headLabel(l, h)));
  const lim = maxAbs(z);
  const scale = o.scale === 'diverging'
    ? { colorscale: DIVERGING, zmid: 0, zmin: o.zmin ?? -lim, zmax: o.zmax ?? lim }
    : { colorscale: SEQUENTIAL, ...(o.zmin !== undefined ? { zmin: o.zmin } : {}), ...(o.zmax !== undefined ? { zmax: o.zmax } : {}) };
  const showText = o.cellText ?? g.layers.length * g.heads.length <= 256;
  const trace: Trace = {
    type: 'heatmap', z, x: g.heads, y: g.layers, ...scale, colorbar: colorbar(o.colorbarTitle ?? o.valueName),
    customdata: hover, hovertemplate: `%{customdata}<br>${o.valueName}: %{z:.4g}<extra></extra>`, xgap: 1, ygap: 1,
    ...(showText ? { text: z.map((row) => row.map(cellText)), texttemplate: '%{text}', textfont: { size: 9 } } : {}),
  };
  const shapes = headOutlines(o.selected ?? []);
  const layout: Layout = heatmapLayout(o.title, {
    xaxis: { ...indexAxis(g.heads.map(String), 'head'), tickvals: g.heads, ticktext: g.heads.map(String), range: [Math.min(...g.heads) - 0.5, Math.max(...g.heads) + 0.5] },
    yaxis: { ...indexAxis(g.layers.map(String), 'layer', { y: true }), tickvals: g.layers, ticktext: g.layers.map(String), range: [Math.max(...g.layers) + 0.5, Math.min(...g.layers) - 0.5] },
    shapes,
  });
  const rows: Cell[][] = [];
  g.layers.forEach((l, li) => g.heads.forEach((h, hi) => {
    rows.push([l, h, z[li][hi], ...(o.extra ?? []).map((e) => finiteOrNull(e.values[li][hi]))]);
  }));
  return { name: o.name, data: [trace], layout, table: { columns: ['layer', 'head', o.valueName, ...(o.extra ?? []).map((e) => e.column)], rows } };
}

/** Heads ranked by value, largest first (NaN and non-finite values last). */
export function rankHeads(g: HeadGrid, limit = Infinity): { layer: number; head: number; label: string; value: number }[] {
  const out: { layer: number; head: number; label: string; value: number }[] = [];
  g.layers.forEach((l, li) => g.heads.forEach((h, hi) => out.push({ layer: l, head: h, label: headLabel(l, h), value: finiteOrNull(g.values[li][hi]) ?? -Infinity })));
  return out.sort((a, b) => b.value - a.value || a.layer - b.layer || a.head - b.head).slice(0, limit);
}
