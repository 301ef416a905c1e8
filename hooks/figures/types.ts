/** Plotly figure specs as plain data ({data, layout}) plus the table behind each figure, for the dashboard and the CLI alike (no DOM). */

/** One Plotly trace (heatmap, bar, scatter, …): plain JSON, passed to Plotly.react / newPlot as is. */
export interface Trace {
  type: 'heatmap' | 'bar' | 'scatter' | 'table';
  [key: string]: unknown;
}

/** A Plotly layout: plain JSON. */
export type Layout = Record<string, unknown>;

export type Cell = string | number | boolean | null;

/** The numbers behind a figure in long format (index columns first, then values), for CSV and JSON downloads. */
export interface Table {
  columns: string[];
  rows: Cell[][];
}

/** What every figure builder returns: the Plotly figure, its data as a table, and a file-name stem for exports. */
export interface FigureSpec {
  name: string;
  data: Trace[];
  layout: Layout;
  table: Table;
}
