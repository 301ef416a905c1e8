/**
 * What a backward pass differentiates (`backwardFrom` of runWithCache / runWithHooks): the run's
 * loss, a metric that gives its gradient with respect to the logits, or that gradient itself; and
 * how each becomes the engine's seed (engine.ts's EngineSeed).
 */
import type { EngineSeed, SeedGradient } from './engine/engine.ts';
import { scoresNextToken } from './ops/index.ts';
import { Tensor } from './tensor.ts';

/** A metric's value at some logits and its gradient with respect to them (same shape as the logits). */
export type MetricGradient = SeedGradient;

/**
 * A metric of the logits [batch, pos, d_vocab] that also gives its gradient with respect to them:
 * what `backwardFrom` takes (the library's logitDiffMetric, lossMetric, tokenLogprobMetric and
 * normalisedMetric of them are).
 */
export interface DifferentiableMetric {
  (logits: Tensor): number;
  readonly valueAndGrad: (logits: Tensor) => MetricGradient;
  /**
   * A metric that reads one position per prompt (a PositionedMetric) says which, and gives its value
   * and gradient from the logits there [batch, 1, d_vocab]: a backward pass then unembeds only there.
   */
  readonly positions?: number | readonly number[];
  readonly atPositionsValueAndGrad?: (logits: Tensor) => MetricGradient;
}

/** A gradient with respect to the logits given by its non-zero entries: [batch, pos, token] and the value of each. */
export interface SparseLogitGradient {
  indices: readonly (readonly [number, number, number])[];
  values: readonly number[];
}

/**
 * The scalar a backward pass differentiates: `'loss'` (the run's mean next-token loss,
 * TransformerLens's lm_cross_entropy_loss, computed in the graph), a DifferentiableMetric, or any
 * metric given by its gradient with respect to the logits (`{ gradient }`: dense [batch, pos,
 * d_vocab], or sparse); for the latter the value reported is Σ gradient · logits.
 */
export type BackwardFrom = 'loss' | DifferentiableMetric | { gradient: Tensor | SparseLogitGradient };

export function isDifferentiableMetric(m: unknown): m is DifferentiableMetric {
  return typeof m === 'function' && typeof (m as { valueAndGrad?: unknown }).valueAndGrad === 'function';
}

/** Per prompt, the position a metric reads (negatives count from the end of the padded row), checked: [batch][1]. */
export function metricPositions(positions: number | readonly number[], batch: number, pos: number, what: string): number[][] {
  const per = typeof positions === 'number' ? new Array<number>(batch).fill(positions) : [...positions];
  if (per.length !== batch) throw new Error(`${what}: the metric reads ${per.length} positions for a batch of ${batch}; give one per prompt or a single number`);
  return per.map((p, b) => {
    const q = p < 0 ? p + pos : p;
    if (!Number.isInteger(q) || q < 0 || q >= pos) throw new Error(`${what}: the metric's position ${p} of prompt ${b} is out of range for ${pos} positions`);
    return [q];
  });
}

/** Σ gradient · logits over matching entries (the value of the linear metric whose gradient is `gradient`). */
function dot(a: Tensor, b: Tensor): number {
  let s = 0;
  for (let i = 0; i < a.data.length; i++) if (a.data[i] !== 0) s += a.data[i] * b.data[i];
  return s;
}

/** A scalar a metric returned, checked. */
function scalar(out: MetricGradient, what: string): MetricGradient {
  if (!out || typeof out.value !== 'number') {
    throw new Error(`${what}: the metric must be a scalar (one number) with its gradient; it gave ${out === null ? 'null' : Array.isArray(out?.value) ? 'an array' : typeof out?.value}`);
  }
  return out;
}

/** The rows of a sparse gradient: per prompt its distinct positions (padded with position 0 and zero rows to the same count) and the dense rows. */
function sparseRows(g: SparseLogitGradient, batch: number, pos: number, dVocab: number): { positions: number[][]; rows: Tensor } {
  if (g.indices.length !== g.values.length) throw new Error(`backwardFrom.gradient: ${g.indices.length} indices but ${g.values.length} values`);
  const perPrompt = Array.from({ length: batch }, () => new Map<number, number>()); // position -> row
  g.indices.forEach((ix, i) => {
    const [b, p, t] = ix;
    const ok = (v: number, n: number) => Number.isInteger(v) && v >= 0 && v < n;
    if (!Array.isArray(ix) || ix.length !== 3 || !ok(b, batch) || !ok(p, pos) || !ok(t, dVocab)) {
      throw new Error(`backwardFrom.gradient.indices[${i}] = [${String(ix)}]; each must be [batch, pos, token] within [${batch}, ${pos}, ${dVocab}]`);
    }
    if (!Number.isFinite(g.values[i])) throw new Error(`backwardFrom.gradient.values[${i}] is ${g.values[i]}; values must be finite numbers`);
    const rows = perPrompt[b];
    if (!rows.has(p)) rows.set(p, rows.size);
  });
  const k = Math.max(1, ...perPrompt.map((m) => m.size));
  const positions = perPrompt.map((m) => {
    const row = new Array<number>(k).fill(0);
    for (const [p, r] of m) row[r] = p;
    return row;
  });
  const rows = Tensor.zeros([batch, k, dVocab]);
  g.indices.forEach(([b, p, t], i) => {
    rows.data[(b * k + perPrompt[b].get(p)!) * dVocab + t] += g.values[i];
  });
  return { positions, rows };
}

export interface SeedContext {
  tokens: number[][];
  attentionMask?: number[][];
  dVocab: number;
}

/** The engine's seed for `from` on a run of `ctx.tokens` (the in-graph loss needs the next-token targets, which the caller feeds). */
export function compileSeed(from: BackwardFrom, ctx: SeedContext): EngineSeed {
  const batch = ctx.tokens.length;
  const pos = ctx.tokens[0].length;
  if (from === 'loss') {
    if (pos < 2) throw new Error('a backward pass from the loss needs at least 2 tokens per prompt');
    // TransformerLens's mean next-token loss: 1 / count at each scored position.
    let count = 0;
    for (let b = 0; b < batch; b++) for (let p = 0; p < pos - 1; p++) if (scoresNextToken(ctx.attentionMask, b, p)) count++;
    if (count === 0) throw new Error('backwardFrom: the attention mask leaves no (token, next token) pair to score');
    const weights = ctx.tokens.map((row, b) => row.map((_, p) => (p < pos - 1 && scoresNextToken(ctx.attentionMask, b, p) ? 1 / count : 0)));
    return { kind: 'loss', weights };
  }
  if (isDifferentiableMetric(from)) {
    if (from.positions !== undefined && from.atPositionsValueAndGrad) {
      const at = from.atPositionsValueAndGrad;
      return { kind: 'logits', positions: metricPositions(from.positions, batch, pos, 'backwardFrom'), fn: (l) => scalar(at(l), 'backwardFrom') };
    }
    return { kind: 'logits', fn: (l) => scalar(from.valueAndGrad(l), 'backwardFrom') };
  }
  if (typeof from === 'function') {
    throw new Error('backwardFrom: this metric has no gradient (valueAndGrad); use a library metric (logitDiffMetric, lossMetric, tokenLogprobMetric, normalisedMetric of them), or give its gradient with respect to the logits as { gradient }');
  }
  if (from && typeof from === 'object' && 'gradient' in from) {
    const g = from.gradient;
    if (g instanceof Tensor) {
      const want = [batch, pos, ctx.dVocab];
      if (g.shape.join(',') !== want.join(',')) {
        throw new Error(`backwardFrom.gradient has shape [${g.shape.join(', ')}]; a gradient with respect to the logits must be [${want.join(', ')}] (batch, pos, d_vocab) — a scalar metric's`);
      }
      return { kind: 'logits', fn: (l) => ({ value: dot(g, l), gradient: g }) };
    }
    const { positions, rows } = sparseRows(g, batch, pos, ctx.dVocab);
    return { kind: 'logits', positions, fn: (l) => ({ value: dot(rows, l), gradient: rows }) };
  }
  throw new Error("backwardFrom must be 'loss', a metric with a gradient (logitDiffMetric, lossMetric, tokenLogprobMetric, normalisedMetric of them) or { gradient: Tensor [batch, pos, d_vocab] | { indices, values } }");
}
