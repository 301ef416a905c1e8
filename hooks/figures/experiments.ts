/** Figures of dataset experiments: means over items along an axis (layers, positions), with standard errors as error bars. */
import { fmt, num, titleOf } from './common.ts';
import type { Cell, FigureSpec, Trace } from './types.ts';

export interface MeanSeries {
  name: string;
  /** One mean per x label, and its standard error ("NaN" below two items). */
  mean: (number | string)[];
  stderr: (number | string)[];
}

export interface MeanSeriesOptions {
  name: string;
  title: string;
  /** The x axis: a label per step (e.g. "L0 resid_pre"). */
  x: string[];
  xTitle: string;
  yTitle: string;
  series: MeanSeries[];
  /** Items averaged (shown in the title). */
  n: number;
}

const PALETTE = ['#2166ac', '#b2182b', '#1b7837', '#762a83', '#e08214', '#4d4d4d'];

/** One line per series over `x`, error bars ± 1 standard error. */
export function meanSeriesFigure(o: MeanSeriesOptions): FigureSpec {
  const finite = (v: number | string) => (Number.isFinite(num(v)) ? num(v) : null);
  const data: Trace[] = o.series.map((s, i) => ({
    type: 'scatter', mode: 'lines+markers', name: s.name, x: o.x, y: s.mean.map(finite),
    error_y: { type: 'data', array: s.stderr.map((v) => finite(v) ?? 0), visible: true, thickness: 1 },
    line: { color: PALETTE[i % PALETTE.length], width: 1.5 }, marker: { size: 5 },
    hovertemplate: `${s.name}<br>%{x}: %{y:.4g}<extra></extra>`,
  }));
  const title = titleOf(`${o.title} (mean ± s.e. over ${o.n} items)`, 13);
  const rows: Cell[][] = [];
  o.series.forEach((s) => o.x.forEach((x, i) => rows.push([x, s.name, finite(s.mean[i]), finite(s.stderr[i])])));
  return {
    name: o.name,
    data,
    layout: {
      title: title.title,
      margin: { l: 60, r: 20, t: title.top, b: 60 },
      font: { size: 11 },
      xaxis: { title: { text: o.xTitle }, type: 'category', automargin: true },
      yaxis: { title: { text: o.yTitle }, zeroline: true, automargin: true },
      legend: { orientation: 'h', x: 1, xanchor: 'right', y: 1.02, yanchor: 'bottom' },
    },
    table: { columns: [o.xTitle, 'series', 'mean', 'stderr'], rows },
  };
}

/** "3.142 ± 0.012" */
export function meanLabel(mean: number | string, stderr: number | string): string {
  const se = num(stderr);
  return Number.isFinite(se) ? `${fmt(num(mean))} ± ${fmt(se)}` : fmt(num(mean));
}
