/** Induction figures from POST /api/heads/detect: head-detector score heatmaps, loss by position on repeated tokens. */
import { num, titleOf } from './common.ts';
import { headGridFigure } from './heads.ts';
import type { FigureSpec, Trace } from './types.ts';

export type DetectKindName = 'previous_token' | 'duplicate_token' | 'induction';

export interface HeadsDetectData {
  /** [sequence][pos] the tokens scored on (the API's answer has them; titles then say what was scored). */
  tokens?: number[][];
  layers: number[];
  heads: number[];
  scores: { kind: DetectKindName; values: (number | string)[][] }[];
  lossByPosition: { loss: (number | string)[]; firstRepeat: number | string; secondRepeat: number | string } | null;
}

/** TransformerLens detect_head scores: attention-based (the share of a head's attention on the detection pattern). */
const TITLES: Record<DetectKindName, string> = {
  previous_token: 'Previous-token score',
  duplicate_token: 'Duplicate-token score',
  induction: 'Induction score',
};

export function scoresOf(r: HeadsDetectData, kind: DetectKindName): { layers: number[]; heads: number[]; values: (number | string)[][] } {
  const s = r.scores.find((x) => x.kind === kind);
  if (!s) throw new Error(`heads/detect: no ${kind} scores in the answer (have ${r.scores.map((x) => x.kind).join(', ')})`);
  return { layers: r.layers, heads: r.heads, values: s.values };
}

/** Sequences and span length of a repeated-random-tokens answer (BOS + span + span), or null for a prompt. */
export function repeatedShape(r: HeadsDetectData): { batch: number; seqLen: number } | null {
  if (!r.lossByPosition || !r.tokens?.length) return null;
  return { batch: r.tokens.length, seqLen: Math.floor((r.tokens[0].length - 1) / 2) };
}

/**
 * The highest TransformerLens induction score a head can reach on BOS + span + span: detect_head's 'mul' score is the
 * attention on the detection pattern's 1s divided by all attention, and only the span's second copy (seqLen of the
 * 2·seqLen + 1 queries) has an earlier occurrence to look after, so a perfect induction head scores seqLen / (2·seqLen + 1)
 * (< 0.5). Dividing by it gives the share of the second copy's attention on the induction target.
 */
export function inductionCeiling(seqLen: number): number {
  return seqLen / (2 * seqLen + 1);
}

export function headScoreFigure(r: HeadsDetectData, kind: DetectKindName, selected?: { layer: number; head: number }[]): FigureSpec {
  const shape = repeatedShape(r);
  // short enough for a third of the dashboard's width
  const on = shape ? `, ${shape.batch} × [BOS + ${shape.seqLen} + ${shape.seqLen} random]` : r.tokens ? `, a ${r.tokens[0].length}-token prompt` : '';
  const ceiling = kind === 'induction' && shape ? inductionCeiling(shape.seqLen) : null;
  return headGridFigure(scoresOf(r, kind), {
    title: `${TITLES[kind]}${on}`,
    valueName: 'score', ...(ceiling === null ? {} : { colorbarTitle: `score (ceiling ${ceiling.toFixed(2)})` }),
    scale: 'sequential', zmin: 0, zmax: 1, selected, name: `head-scores-${kind}`,
  });
}

/**
 * Loss predicting each token of BOS + span + span: positions 1..seqLen (first copy, unpredictable) and
 * seqLen+1..2·seqLen (second copy, predictable by induction), with the two means as dashed lines.
 */
export function lossByPositionFigure(r: HeadsDetectData): FigureSpec {
  const lp = r.lossByPosition;
  if (!lp) throw new Error('heads/detect: no lossByPosition (only answers for repeated tokens have it)');
  const loss = lp.loss.map(num);
  const seqLen = Math.floor(loss.length / 2);
  // loss[i] predicts token i+1; the first copy spans tokens 1..seqLen.
  const first = loss.map((v, i) => (i + 1 <= seqLen ? v : null));
  const second = loss.map((v, i) => (i + 1 > seqLen ? v : null));
  const x = loss.map((_v, i) => i + 1);
  const line = (name: string, y: (number | null)[], color: string): Trace => ({
    type: 'scatter', mode: 'lines+markers', name, x, y, line: { color, width: 1.5 }, marker: { size: 4 },
    hovertemplate: `${name}<br>predicting token %{x}: loss %{y:.3f}<extra></extra>`, connectgaps: false,
  });
  const mean = (name: string, v: number, x0: number, x1: number, color: string): Trace => ({
    type: 'scatter', mode: 'lines', name, x: [x0, x1], y: [v, v], line: { color, dash: 'dash', width: 1 }, hovertemplate: `${name}: %{y:.3f}<extra></extra>`,
  });
  const title = titleOf('Loss by position on repeated random tokens', 14);
  return {
    name: 'loss-by-position',
    data: [
      line('first copy', first, '#b2182b'),
      line('second copy', second, '#2166ac'),
      mean(`mean first ${num(lp.firstRepeat).toFixed(2)}`, num(lp.firstRepeat), 1, seqLen, '#b2182b'),
      mean(`mean second ${num(lp.secondRepeat).toFixed(2)}`, num(lp.secondRepeat), seqLen + 1, loss.length, '#2166ac'),
    ],
    layout: {
      title: title.title,
      margin: { l: 60, r: 20, t: title.top + 24, b: 50 },
      font: { size: 11 },
      xaxis: { title: { text: 'position of the predicted token' }, automargin: true },
      yaxis: { title: { text: 'loss (nats)' }, rangemode: 'tozero', automargin: true },
      // its own line between the title and the plot (beside the title it ran into it)
      legend: { orientation: 'h', x: 0, xanchor: 'left', y: 1.02, yanchor: 'bottom' },
    },
    table: { columns: ['predicted_pos', 'copy', 'loss'], rows: loss.map((v, i) => [i + 1, i + 1 <= seqLen ? 'first' : 'second', v]) },
  };
}
