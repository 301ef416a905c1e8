/** Metrics of a run's logits: logit difference, per-prompt answer logits, and TransformerLens-style normalised patching metrics. */
import { Tensor } from '../tensor.ts';

export interface LogitDiffOptions {
  /** The correct answer token per prompt (or one for all). */
  correct: number | readonly number[];
  /** The incorrect answer token per prompt (or one for all). */
  incorrect: number | readonly number[];
  /** The position read per prompt (or one for all; negatives count from the end). Default -1 (last). */
  positions?: number | readonly number[];
}

function perPrompt(v: number | readonly number[], batch: number, what: string): number[] {
  if (typeof v === 'number') return new Array<number>(batch).fill(v);
  if (v.length !== batch) throw new Error(`${what}: got ${v.length} values for a batch of ${batch}; give one per prompt or a single number`);
  return [...v];
}

/** logits[b, pos_b, correct_b] - logits[b, pos_b, incorrect_b] for each prompt b. logits: [batch, pos, d_vocab]. */
export function logitDiffs(logits: Tensor, opts: LogitDiffOptions): number[] {
  if (logits.ndim !== 3) throw new Error(`logitDiff: logits must be [batch, pos, d_vocab]; got [${logits.shape.join(', ')}]`);
  const [batch, pos, dVocab] = logits.shape;
  const correct = perPrompt(opts.correct, batch, 'logitDiff correct');
  const incorrect = perPrompt(opts.incorrect, batch, 'logitDiff incorrect');
  const positions = perPrompt(opts.positions ?? -1, batch, 'logitDiff positions');
  return correct.map((c, b) => {
    const p = positions[b] < 0 ? positions[b] + pos : positions[b];
    if (!Number.isInteger(p) || p < 0 || p >= pos) throw new Error(`logitDiff: position ${positions[b]} of prompt ${b} is out of range for ${pos} positions`);
    for (const t of [c, incorrect[b]]) {
      if (!Number.isInteger(t) || t < 0 || t >= dVocab) throw new Error(`logitDiff: token ${t} is not an integer in [0, ${dVocab})`);
    }
    const o = (b * pos + p) * dVocab;
    return logits.data[o + c] - logits.data[o + incorrect[b]];
  });
}

/** The mean logit difference over the batch (TL's IOI `logits_to_ave_logit_diff`). */
export function logitDiff(logits: Tensor, opts: LogitDiffOptions): number {
  const d = logitDiffs(logits, opts);
  return d.reduce((a, b) => a + b, 0) / d.length;
}

/**
 * A metric that declares the logits it reads: one position per prompt. Batched runs (ablation sweeps, activation
 * patching) given one compute logits only there — the unembedding is a large share of a pass at short prompts —
 * and call `atPositions` on them; called directly, it reads full logits like any metric.
 */
export interface PositionedMetric {
  (logits: Tensor): number;
  /** Per prompt (or one for all), the position read; negatives count from the end of the (padded) row. */
  readonly positions: number | readonly number[];
  /** The same metric of logits computed only at `positions`: [batch, 1, d_vocab]. */
  readonly atPositions: (logits: Tensor) => number;
}

export function isPositionedMetric(m: unknown): m is PositionedMetric {
  return typeof m === 'function' && 'positions' in m && typeof (m as { atPositions?: unknown }).atPositions === 'function';
}

/** Makes a PositionedMetric from the metric of full logits and the same metric of logits at `positions` only. */
export function positionedMetric(fn: (logits: Tensor) => number, positions: number | readonly number[], atPositions: (logits: Tensor) => number): PositionedMetric {
  return Object.assign((logits: Tensor) => fn(logits), { positions, atPositions });
}

/** `logitDiff` with these options as a PositionedMetric (TL's `logits_to_ave_logit_diff`). */
export function logitDiffMetric(opts: LogitDiffOptions): PositionedMetric {
  const positions = opts.positions ?? -1;
  return positionedMetric((l) => logitDiff(l, opts), positions, (l) => logitDiff(l, { ...opts, positions: 0 }));
}

/**
 * TL's normalised patching metric: (metric(logits) - corrupted) / (clean - corrupted), so the clean
 * run scores 1 and the corrupted run 0. A PositionedMetric stays one.
 */
export function normalisedMetric(metric: PositionedMetric, clean: number, corrupted: number): PositionedMetric;
export function normalisedMetric(metric: (logits: Tensor) => number, clean: number, corrupted: number): (logits: Tensor) => number;
export function normalisedMetric(metric: (logits: Tensor) => number, clean: number, corrupted: number): (logits: Tensor) => number {
  const span = clean - corrupted;
  if (!Number.isFinite(span) || span === 0) {
    throw new Error(`normalisedMetric: clean (${clean}) and corrupted (${corrupted}) baselines must differ and be finite`);
  }
  const norm = (m: (logits: Tensor) => number) => (logits: Tensor) => (m(logits) - corrupted) / span;
  return isPositionedMetric(metric) ? positionedMetric(norm(metric), metric.positions, norm(metric.atPositions)) : norm(metric);
}

/**
 * The IOI metric of the patching demo: the mean logit difference (IO − S at the end position),
 * normalised so the clean run gives 1 and the corrupted run 0.
 */
export function ioiMetric(opts: LogitDiffOptions & { clean: number; corrupted: number }): PositionedMetric {
  return normalisedMetric(logitDiffMetric(opts), opts.clean, opts.corrupted);
}
