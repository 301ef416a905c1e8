/** The logit lens heatmap from POST /api/logit-lens: rows = residual stream components (0_pre … final_post), columns = positions. */
import { colorbar, fmt, heatmapLayout, indexAxis, num, positionLabels, SEQUENTIAL, tokenLabel } from './common.ts';
import type { Cell, FigureSpec, Trace } from './types.ts';

/** The parts of the /api/logit-lens answer the figure reads. */
export interface LogitLensData {
  tokens: number[];
  strTokens: string[] | null;
  labels: string[];
  positions: number[];
  /** [label][pos][k] */
  top: { token: number; str: string | null; prob: number | string }[][][];
  targets: { token: number; str: string | null; prob: (number | string)[][]; rank: (number | string)[][]; logit: (number | string)[][] }[];
}

export type LensMetric = 'prob' | 'logprob' | 'rank';

export interface LogitLensOptions {
  metric?: LensMetric;
  /** 'top': the top-1 token of each cell; a number: that entry of `targets`. */
  of?: 'top' | number;
  /** Write in each cell the top-1 token (or, for a target, its value) (default: when there are at most 24 positions). */
  cellText?: boolean;
  /** At most this many position tick labels (default 40; a figure wide enough for every label passes the positions). */
  maxTicks?: number;
}

/** A target's value in a cell: probability to two decimals, log-probability to one, rank as a whole number. */
function targetCellText(metric: LensMetric, prob: number, rank: number): string {
  if (metric === 'rank') return Number.isFinite(rank) ? String(rank) : '';
  if (metric === 'logprob') return Number.isFinite(prob) && prob > 0 ? Math.log(prob).toFixed(1) : '';
  return !Number.isFinite(prob) ? '' : prob < 0.005 ? '<.01' : prob.toFixed(2);
}

/** "0_pre" → "L0 resid_pre", "final_post" → "final". */
export function lensRowLabel(label: string): string {
  if (label === 'final_post') return 'final';
  const m = /^(\d+)_(pre|mid|post)$/.exec(label);
  return m ? `L${m[1]} resid_${m[2]}` : label;
}

export function logitLensFigure(r: LogitLensData, opts: LogitLensOptions = {}): FigureSpec {
  const of = opts.of ?? 'top';
  const target = of === 'top' ? null : r.targets[of];
  if (of !== 'top' && !target) throw new Error(`logitLensFigure: target ${of} is not in the answer (${r.targets.length} targets)`);
  const metric: LensMetric = target === null && opts.metric === 'rank' ? 'prob' : (opts.metric ?? 'prob');
  const strTokens = r.strTokens ?? r.tokens.map(String);
  const xLabels = positionLabels(r.positions.map((p) => strTokens[p]));
  const rows = r.labels.map(lensRowLabel);
  const raw = (li: number, pi: number): number =>
    target === null ? num(r.top[li][pi][0]?.prob) : metric === 'rank' ? num(target.rank[li][pi]) : num(target.prob[li][pi]);
  const value = (li: number, pi: number): number => {
    const v = raw(li, pi);
    if (metric === 'logprob') return Math.log(v);
    if (metric === 'rank') return Math.log10(1 + v);
    return v;
  };
  const z = r.labels.map((_l, li) => r.positions.map((_p, pi) => {
    const v = value(li, pi);
    return Number.isFinite(v) ? v : null;
  }));
  // Cells name what is coloured: the top-1 token, or the target's own value (its token is in the title).
  const cells = r.labels.map((_l, li) => r.positions.map((_p, pi) => (target
    ? targetCellText(metric, num(target.prob[li][pi]), num(target.rank[li][pi]))
    : tokenLabel(r.top[li][pi][0]?.str ?? String(r.top[li][pi][0]?.token)))));
  const hover = r.labels.map((_l, li) => r.positions.map((_p, pi) => {
    const lines = r.top[li][pi].map((t, k) => `${k + 1}. ${tokenLabel(t.str ?? String(t.token))}  ${fmt(num(t.prob))}`);
    const head = `${rows[li]} · pos ${xLabels[pi]}`;
    const tgt = target ? `<br>target ${tokenLabel(target.str)}: p=${fmt(num(target.prob[li][pi]))} rank=${num(target.rank[li][pi])}` : '';
    return `${head}${tgt}<br>${lines.join('<br>')}`;
  }));
  const showText = opts.cellText ?? r.positions.length <= 24;
  const metricName = metric === 'prob' ? 'probability' : metric === 'logprob' ? 'log-probability' : 'rank';
  const whose = target ? `target ${tokenLabel(target.str ?? String(target.token))}` : 'top-1 token';
  const cb = colorbar(metric === 'rank' ? 'rank (log)' : metricName);
  if (metric === 'rank') Object.assign(cb, { tickvals: [0, 1, 2, 3, 4, 5], ticktext: ['0', '9', '99', '999', '9999', '99999'] });
  const trace: Trace = {
    type: 'heatmap', z, colorscale: SEQUENTIAL, reversescale: metric === 'rank', colorbar: cb,
    ...(metric === 'prob' ? { zmin: 0, zmax: 1 } : metric === 'logprob' ? { zmax: 0 } : { zmin: 0 }),
    customdata: hover, hovertemplate: '%{customdata}<extra></extra>', xgap: 1, ygap: 1,
    ...(showText ? { text: cells, texttemplate: '%{text}', textfont: { size: r.positions.length > 14 ? 8 : 10 } } : {}),
  };
  const table: Cell[][] = [];
  r.labels.forEach((label, li) => r.positions.forEach((p, pi) => {
    const t = r.top[li][pi][0];
    table.push([label, p, strTokens[p], t?.token ?? null, t?.str ?? null, t ? num(t.prob) : null, raw(li, pi)]);
  }));
  return {
    name: `logit-lens-${metric}`,
    data: [trace],
    layout: heatmapLayout(`Logit lens: ${metricName} of the ${whose}`, {
      xaxis: { ...indexAxis(xLabels, 'position', { maxTicks: opts.maxTicks }), title: { text: 'position', standoff: 12 } },
      yaxis: indexAxis(rows, 'residual stream', { y: true }),
      margin: { l: 110, r: 20, t: 40, b: 60 },
    }),
    table: { columns: ['component', 'pos', 'token', 'top1_id', 'top1_str', 'top1_prob', metric === 'rank' ? 'rank' : 'prob'], rows: table },
  };
}
