/**
 * Text figures in the manner of CircuitsVis's colored_tokens: the prompt's tokens, each with one value to colour it by
 * (attention from or to a chosen token in one head, the loss of predicting it, the logit lens's view of a target token).
 * Plain data with its table, like the Plotly builders; the dashboard draws the tokens as text.
 */
import { headLabel, num } from './common.ts';
import type { AttentionData } from './attention.ts';
import { headPattern } from './attention.ts';
import { lensRowLabel, type LogitLensData } from './logitLens.ts';
import type { Cell, Table } from './types.ts';

/** How values map to colours: 'linear' from 0 to `max`, 'rank' (log10(1 + rank), rank 0 darkest), or 'signed' from -max to max (0 in the middle). */
export type TextScale = 'linear' | 'rank' | 'signed';

export interface TextFigure {
  /** File-name stem for exports. */
  name: string;
  title: string;
  /** The token strings, one per position (BOS included). */
  tokens: string[];
  /** One value per position; null where the quantity does not exist (the future of a query, the first token's loss). */
  values: (number | null)[];
  /** What a value is ("attention", "loss (nats)", …): legend and table column. */
  valueName: string;
  scale: TextScale;
  /** The top of the colour scale (the largest value, or for ranks the largest rank). */
  max: number;
  /** A position drawn outlined (the chosen token), or null. */
  marked: number | null;
  /** One hover line per position. */
  hover: string[];
  table: Table;
}

function maxOf(values: readonly (number | null)[], floor: number): number {
  let m = floor;
  for (const v of values) if (v !== null && Number.isFinite(v)) m = Math.max(m, v);
  return m;
}

function strTokensOf(r: { strTokens: string[] | null; tokens: number[] }): string[] {
  return r.strTokens ?? r.tokens.map(String);
}

/**
 * Attention of one head, `direction` 'from': what token `pos` attends to (its pattern row; later tokens have no value);
 * 'to': how much each token attends to `pos` (its column; earlier tokens have none).
 */
export function attentionTextFigure(a: AttentionData, layer: number, head: number, pos: number, direction: 'from' | 'to'): TextFigure {
  const p = headPattern(a, layer, head); // [query][key], null above the diagonal
  const tokens = strTokensOf(a);
  const n = tokens.length;
  if (!Number.isInteger(pos) || pos < 0 || pos >= n) throw new Error(`attentionTextFigure: position ${pos} is outside the prompt (0..${n - 1})`);
  const values = tokens.map((_t, i) => (direction === 'from' ? (i <= pos ? p[pos][i] : null) : (i >= pos ? p[i][pos] : null)));
  const who = `${pos}: ${JSON.stringify(tokens[pos])}`;
  const hl = headLabel(layer, head);
  const hover = values.map((v, i) => (v === null
    ? `${i}: ${JSON.stringify(tokens[i])} — ${direction === 'from' ? 'after' : 'before'} the chosen token`
    : direction === 'from' ? `${who} → ${i}: ${JSON.stringify(tokens[i])}: ${v.toFixed(3)}` : `${i}: ${JSON.stringify(tokens[i])} → ${who}: ${v.toFixed(3)}`));
  return {
    name: `text-attention-${direction}-${hl}-pos${pos}`,
    title: direction === 'from' ? `${hl}: attention from token ${who} to each earlier token` : `${hl}: attention to token ${who} from each later token`,
    tokens, values, valueName: 'attention', scale: 'linear', max: maxOf(values, 1e-9), marked: pos, hover,
    table: {
      columns: ['layer', 'head', 'direction', 'chosen_pos', 'pos', 'token', 'attention'],
      rows: values.map((v, i): Cell[] => [layer, head, direction, pos, i, tokens[i], v]),
    },
  };
}

/** The parts of the /api/forward answer the loss figure reads (the first prompt of the batch). */
export interface ForwardData {
  tokens: number[][];
  strTokens: string[][] | null;
  lossPerToken: (number | string | null)[][];
  top: { token: number; str: string | null; prob: number | string }[][][];
}

/** Each token coloured by the loss of predicting it from the tokens before (the first token has none). */
export function lossTextFigure(f: ForwardData): TextFigure {
  const ids = f.tokens[0];
  const tokens = f.strTokens?.[0] ?? ids.map(String);
  const loss = f.lossPerToken[0];
  const values = tokens.map((_t, i) => (i === 0 ? null : (() => {
    const v = num(loss[i - 1]);
    return Number.isFinite(v) ? v : null;
  })()));
  const hover = values.map((v, i) => {
    if (i === 0) return `0: ${JSON.stringify(tokens[0])} — nothing before it to predict it from`;
    const best = f.top[0][i - 1]?.[0];
    const guess = best ? `; the model's top guess was ${JSON.stringify(best.str ?? String(best.token))} (p ${num(best.prob).toFixed(3)})` : '';
    return `${i}: ${JSON.stringify(tokens[i])}: loss ${v === null ? '—' : v.toFixed(3)} nats (p ${v === null ? '—' : Math.exp(-v).toFixed(3)})${guess}`;
  });
  return {
    name: 'text-loss', title: 'Loss of predicting each token from the ones before it (nats)', tokens, values,
    valueName: 'loss (nats)', scale: 'linear', max: maxOf(values, 1e-9), marked: null, hover,
    table: { columns: ['pos', 'token', 'loss'], rows: values.map((v, i): Cell[] => [i, tokens[i], v]) },
  };
}

/**
 * The logit lens's view of target `of` at one depth (`labelIndex` into r.labels): each token coloured by the target's
 * probability (or rank, 0 = top) as the next token after it, read from the residual stream at that depth.
 */
export function lensTextFigure(r: LogitLensData, of: number, labelIndex: number, metric: 'prob' | 'rank'): TextFigure {
  const target = r.targets[of];
  if (!target) throw new Error(`lensTextFigure: target ${of} is not in the answer (${r.targets.length} targets)`);
  const label = r.labels[labelIndex];
  if (label === undefined) throw new Error(`lensTextFigure: row ${labelIndex} is not in the answer (rows ${r.labels.join(', ')})`);
  const all = strTokensOf(r);
  const tokens = r.positions.map((p) => all[p]);
  const tgt = JSON.stringify(target.str ?? String(target.token));
  const values = r.positions.map((_p, pi) => {
    const v = num(metric === 'rank' ? target.rank[labelIndex][pi] : target.prob[labelIndex][pi]);
    return Number.isFinite(v) ? v : null;
  });
  const row = lensRowLabel(label);
  const hover = values.map((v, pi) => `${r.positions[pi]}: ${JSON.stringify(tokens[pi])} → next token ${tgt} at ${row}: ${metric === 'rank' ? `rank ${v}` : `p ${v === null ? '—' : v.toFixed(4)}`}`
    + ` (rank ${num(target.rank[labelIndex][pi])}, p ${num(target.prob[labelIndex][pi]).toFixed(4)})`);
  return {
    name: `text-lens-${metric}-${label}`,
    title: `Logit lens at ${row}: ${metric === 'rank' ? 'rank (0 = top)' : 'probability'} of ${tgt} as the token after each token`,
    tokens, values, valueName: metric === 'rank' ? `rank of ${target.str ?? target.token}` : `p(${target.str ?? target.token})`,
    scale: metric === 'rank' ? 'rank' : 'linear', max: maxOf(values, metric === 'rank' ? 1 : 1e-9), marked: null, hover,
    table: {
      columns: ['component', 'pos', 'token', 'target', metric],
      rows: values.map((v, pi): Cell[] => [label, r.positions[pi], tokens[pi], target.str ?? target.token, v]),
    },
  };
}

/** The parts of the /api/saliency answer the saliency figure reads. */
export interface SaliencyTextData {
  tokens: number[];
  strTokens: string[] | null;
  method: 'grad_x_input' | 'integrated_gradients';
  metric: { label: string };
  value: number | string;
  baselineValue: number | string | null;
  scores: (number | string)[];
}

/** Each token coloured by its saliency (gradient × input or integrated gradients of the metric): blue raises the metric, red lowers it. */
export function saliencyTextFigure(r: SaliencyTextData): TextFigure {
  const tokens = strTokensOf(r);
  const values = r.scores.map((v) => (Number.isFinite(num(v)) ? num(v) : null));
  const max = maxOf(values.map((v) => (v === null ? null : Math.abs(v))), 1e-9);
  const how = r.method === 'integrated_gradients' ? 'integrated gradients' : 'gradient × input';
  const total = values.reduce<number>((a, v) => a + (v ?? 0), 0);
  const change = r.baselineValue === null ? '' : ` (they add up to ${total.toFixed(3)}; metric − metric at the baseline = ${(num(r.value) - num(r.baselineValue)).toFixed(3)})`;
  return {
    name: `text-saliency-${r.method}`,
    title: `Saliency (${how}) of ${r.metric.label} = ${num(r.value).toFixed(3)} per token${change}`,
    tokens, values, valueName: 'attribution', scale: 'signed', max, marked: null,
    hover: values.map((v, i) => `${i}: ${JSON.stringify(tokens[i])}: ${v === null ? '—' : v.toFixed(4)}`),
    table: { columns: ['pos', 'token', 'method', 'score'], rows: values.map((v, i): Cell[] => [i, tokens[i], r.method, v]) },
  };
}

/** A value's place on the figure's colour scale, 0..1 (null stays null). */
export function textScaleAt(f: Pick<TextFigure, 'scale' | 'max'>, v: number | null): number | null {
  if (v === null || !Number.isFinite(v)) return null;
  if (f.scale === 'rank') return 1 - Math.log10(1 + v) / Math.log10(1 + Math.max(1, f.max));
  if (f.scale === 'signed') return f.max > 0 ? Math.min(1, Math.max(0, (v / f.max + 1) / 2)) : 0.5;
  return f.max > 0 ? v / f.max : 0;
}
