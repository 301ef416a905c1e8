/**
 * Metrics of a run's logits: logit difference, per-prompt answer logits, the log-probability of a
 * token, the next-token loss, and TransformerLens-style normalised patching metrics. Each also gives
 * its gradient with respect to the logits (`valueAndGrad`), so a backward pass can start from it
 * (`backwardFrom`).
 */
import type { DifferentiableMetric, MetricGradient } from '../gradients.ts';
import { logSumExp, nextTokenLoss, scoresNextToken, softmaxLine } from '../ops/index.ts';
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

/** A PositionedMetric that gives its gradient too: from full logits (`valueAndGrad`) and from the logits at its positions (`atPositionsValueAndGrad`). */
export interface DifferentiablePositionedMetric extends PositionedMetric {
  readonly valueAndGrad: (logits: Tensor) => MetricGradient;
  readonly atPositionsValueAndGrad: (logits: Tensor) => MetricGradient;
}

export function isPositionedMetric(m: unknown): m is PositionedMetric {
  return typeof m === 'function' && 'positions' in m && typeof (m as { atPositions?: unknown }).atPositions === 'function';
}

/** Makes a PositionedMetric from the metric of full logits and the same metric of logits at `positions` only. */
export function positionedMetric(fn: (logits: Tensor) => number, positions: number | readonly number[], atPositions: (logits: Tensor) => number): PositionedMetric {
  return Object.assign((logits: Tensor) => fn(logits), { positions, atPositions });
}

/** A DifferentiablePositionedMetric from its parts (the value of full logits and of logits at the positions, with and without the gradient). */
function differentiablePositioned(
  fn: (logits: Tensor) => number,
  positions: number | readonly number[],
  atPositions: (logits: Tensor) => number,
  valueAndGrad: (logits: Tensor) => MetricGradient,
  atPositionsValueAndGrad: (logits: Tensor) => MetricGradient,
): DifferentiablePositionedMetric {
  return Object.assign((logits: Tensor) => fn(logits), { positions, atPositions, valueAndGrad, atPositionsValueAndGrad });
}

/** logits [batch, pos, d_vocab], checked. */
function logitsShape(logits: Tensor, what: string): [number, number, number] {
  if (logits.ndim !== 3) throw new Error(`${what}: logits must be [batch, pos, d_vocab]; got [${logits.shape.join(', ')}]`);
  return logits.shape as [number, number, number];
}

/** A token per prompt, checked against d_vocab. */
function tokensPerPrompt(v: number | readonly number[], batch: number, dVocab: number, what: string): number[] {
  const tokens = perPrompt(v, batch, what);
  for (const t of tokens) if (!Number.isInteger(t) || t < 0 || t >= dVocab) throw new Error(`${what}: token ${t} is not an integer in [0, ${dVocab})`);
  return tokens;
}

/** Per prompt the position read (negatives from the end), checked. */
function positionsPerPrompt(v: number | readonly number[], batch: number, pos: number, what: string): number[] {
  return perPrompt(v, batch, what).map((p, b) => {
    const q = p < 0 ? p + pos : p;
    if (!Number.isInteger(q) || q < 0 || q >= pos) throw new Error(`${what}: position ${p} of prompt ${b} is out of range for ${pos} positions`);
    return q;
  });
}

/** The mean logit difference and its gradient: +1/batch at [b, pos_b, correct_b], -1/batch at the incorrect token. */
function logitDiffValueAndGrad(logits: Tensor, opts: LogitDiffOptions): MetricGradient {
  const [batch, pos, dVocab] = logitsShape(logits, 'logitDiff');
  const value = logitDiff(logits, opts);
  const correct = tokensPerPrompt(opts.correct, batch, dVocab, 'logitDiff correct');
  const incorrect = tokensPerPrompt(opts.incorrect, batch, dVocab, 'logitDiff incorrect');
  const positions = positionsPerPrompt(opts.positions ?? -1, batch, pos, 'logitDiff positions');
  const gradient = Tensor.zeros([batch, pos, dVocab]);
  positions.forEach((p, b) => {
    const o = (b * pos + p) * dVocab;
    gradient.data[o + correct[b]] += 1 / batch;
    gradient.data[o + incorrect[b]] -= 1 / batch;
  });
  return { value, gradient };
}

/** `logitDiff` with these options as a PositionedMetric (TL's `logits_to_ave_logit_diff`), with its gradient. */
export function logitDiffMetric(opts: LogitDiffOptions): DifferentiablePositionedMetric {
  const positions = opts.positions ?? -1;
  const at = { ...opts, positions: 0 };
  return differentiablePositioned((l) => logitDiff(l, opts), positions, (l) => logitDiff(l, at), (l) => logitDiffValueAndGrad(l, opts), (l) => logitDiffValueAndGrad(l, at));
}

export interface TokenLogprobOptions {
  /** The token per prompt (or one for all). */
  token: number | readonly number[];
  /** The position read per prompt (or one for all; negatives count from the end). Default -1 (last). */
  positions?: number | readonly number[];
}

/**
 * The mean over prompts of log p(token_b | position pos_b) (or with `prob`, of p itself), and with `grad` its
 * gradient: (onehot - softmax) / batch at that row for the log-probability, p · (onehot - softmax) / batch for p.
 */
function tokenLogprob(logits: Tensor, opts: TokenLogprobOptions, grad: boolean, prob = false): MetricGradient | number {
  const what = prob ? 'tokenProb' : 'tokenLogprob';
  const [batch, pos, dVocab] = logitsShape(logits, what);
  const tokens = tokensPerPrompt(opts.token, batch, dVocab, `${what} token`);
  const positions = positionsPerPrompt(opts.positions ?? -1, batch, pos, `${what} positions`);
  const gradient = grad ? Tensor.zeros([batch, pos, dVocab]) : null;
  let sum = 0;
  positions.forEach((p, b) => {
    const o = (b * pos + p) * dVocab;
    const lp = logits.data[o + tokens[b]] - logSumExp(logits.data, o, dVocab);
    sum += prob ? Math.exp(lp) : lp;
    if (!gradient) return;
    const scale = (prob ? Math.exp(lp) : 1) / batch;
    softmaxLine(logits.data, gradient.data, o, dVocab);
    for (let t = 0; t < dVocab; t++) gradient.data[o + t] *= -scale;
    gradient.data[o + tokens[b]] += scale;
  });
  return gradient ? { value: sum / batch, gradient } : sum / batch;
}

/** The mean log-probability of a token at a position per prompt, as a PositionedMetric with its gradient. */
export function tokenLogprobMetric(opts: TokenLogprobOptions): DifferentiablePositionedMetric {
  const positions = opts.positions ?? -1;
  const at = { ...opts, positions: 0 };
  return differentiablePositioned(
    (l) => tokenLogprob(l, opts, false) as number, positions, (l) => tokenLogprob(l, at, false) as number,
    (l) => tokenLogprob(l, opts, true) as MetricGradient, (l) => tokenLogprob(l, at, true) as MetricGradient,
  );
}

/** The mean probability of a token at a position per prompt, as a PositionedMetric with its gradient. */
export function tokenProbMetric(opts: TokenLogprobOptions): DifferentiablePositionedMetric {
  const positions = opts.positions ?? -1;
  const at = { ...opts, positions: 0 };
  return differentiablePositioned(
    (l) => tokenLogprob(l, opts, false, true) as number, positions, (l) => tokenLogprob(l, at, false, true) as number,
    (l) => tokenLogprob(l, opts, true, true) as MetricGradient, (l) => tokenLogprob(l, at, true, true) as MetricGradient,
  );
}

/**
 * TransformerLens's mean next-token loss (lm_cross_entropy_loss) of `tokens` [batch, pos] as a metric of
 * the logits, with its gradient (w · (softmax - onehot(next token)) at each scored position). A backward
 * pass from the run's own loss is `backwardFrom: 'loss'`, which computes this in the graph.
 */
export function lossMetric(tokens: readonly (readonly number[])[], opts: { attentionMask?: readonly (readonly number[])[] } = {}): DifferentiableMetric {
  const mask = opts.attentionMask;
  const check = (logits: Tensor): [number, number, number] => {
    const shape = logitsShape(logits, 'lossMetric');
    if (shape[0] !== tokens.length || shape[1] !== tokens[0]?.length) throw new Error(`lossMetric: logits [${shape.join(', ')}] do not match the tokens [${tokens.length}, ${tokens[0]?.length}]`);
    if (shape[1] < 2) throw new Error('lossMetric: the loss needs at least 2 tokens per prompt');
    return shape;
  };
  const value = (logits: Tensor) => {
    const [batch, pos, dVocab] = check(logits);
    const lp = (b: number, p: number) => {
      const o = (b * pos + p) * dVocab;
      return logits.data[o + tokens[b][p + 1]] - logSumExp(logits.data, o, dVocab);
    };
    return nextTokenLoss(lp, batch, pos, mask, false, 'lossMetric') as number;
  };
  const valueAndGrad = (logits: Tensor): MetricGradient => {
    const [batch, pos, dVocab] = check(logits);
    const v = value(logits);
    let count = 0;
    for (let b = 0; b < batch; b++) for (let p = 0; p < pos - 1; p++) if (scoresNextToken(mask, b, p)) count++;
    const gradient = Tensor.zeros([batch, pos, dVocab]);
    for (let b = 0; b < batch; b++) {
      for (let p = 0; p < pos - 1; p++) {
        if (!scoresNextToken(mask, b, p)) continue;
        const o = (b * pos + p) * dVocab;
        softmaxLine(logits.data, gradient.data, o, dVocab);
        for (let t = 0; t < dVocab; t++) gradient.data[o + t] /= count;
        gradient.data[o + tokens[b][p + 1]] -= 1 / count;
      }
    }
    return { value: v, gradient };
  };
  return Object.assign((logits: Tensor) => value(logits), { valueAndGrad });
}

/**
 * TL's normalised patching metric: (metric(logits) - corrupted) / (clean - corrupted), so the clean
 * run scores 1 and the corrupted run 0. A PositionedMetric stays one, and a metric with a gradient keeps it (divided by clean - corrupted).
 */
export function normalisedMetric(metric: DifferentiablePositionedMetric, clean: number, corrupted: number): DifferentiablePositionedMetric;
export function normalisedMetric(metric: PositionedMetric, clean: number, corrupted: number): PositionedMetric;
export function normalisedMetric(metric: DifferentiableMetric, clean: number, corrupted: number): DifferentiableMetric;
export function normalisedMetric(metric: (logits: Tensor) => number, clean: number, corrupted: number): (logits: Tensor) => number;
export function normalisedMetric(metric: (logits: Tensor) => number, clean: number, corrupted: number): (logits: Tensor) => number {
  const span = clean - corrupted;
  if (!Number.isFinite(span) || span === 0) {
    throw new Error(`normalisedMetric: clean (${clean}) and corrupted (${corrupted}) baselines must differ and be finite`);
  }
  const norm = (m: (logits: Tensor) => number) => (logits: Tensor) => (m(logits) - corrupted) / span;
  const normGrad = (m: (logits: Tensor) => MetricGradient) => (logits: Tensor): MetricGradient => {
    const { value, gradient } = m(logits);
    return { value: (value - corrupted) / span, gradient: gradient.div(span) };
  };
  const parts = metric as Partial<DifferentiablePositionedMetric>;
  const out: (logits: Tensor) => number = isPositionedMetric(metric) ? positionedMetric(norm(metric), metric.positions, norm(metric.atPositions)) : norm(metric);
  return Object.assign(out, {
    ...(parts.valueAndGrad ? { valueAndGrad: normGrad(parts.valueAndGrad) } : {}),
    ...(parts.atPositionsValueAndGrad ? { atPositionsValueAndGrad: normGrad(parts.atPositionsValueAndGrad) } : {}),
  });
}

/**
 * The IOI metric of the patching demo: the mean logit difference (IO − S at the end position),
 * normalised so the clean run gives 1 and the corrupted run 0.
 */
export function ioiMetric(opts: LogitDiffOptions & { clean: number; corrupted: number }): DifferentiablePositionedMetric {
  return normalisedMetric(logitDiffMetric(opts), opts.clean, opts.corrupted);
}

/** A token in a metric spec: its id, or its text (exactly one token, e.g. " Mary"), which needs the model's tokenizer. */
export type TokenRef = number | string;

/** A metric described by data (the server's and the CLI's requests): tokens by id or by text. */
export type MetricSpec =
  | { kind: 'logit_diff'; correct: TokenRef | readonly TokenRef[]; incorrect: TokenRef | readonly TokenRef[]; position?: number | readonly number[] }
  | { kind: 'logprob'; token: TokenRef | readonly TokenRef[]; position?: number | readonly number[] }
  | { kind: 'prob'; token: TokenRef | readonly TokenRef[]; position?: number | readonly number[] }
  | { kind: 'loss' };

/** What metricFromSpec needs of a model: its vocabulary size, and its tokenizer for tokens given as text. */
export interface MetricSpecModel {
  readonly cfg: { d_vocab: number };
  readonly tokenizer: unknown | null;
  toSingleToken(text: string): number;
}

/** A token ref resolved to an id: a text needs the tokenizer (a clear error without one) and must be one token. */
export function resolveTokenRef(model: MetricSpecModel, ref: TokenRef, what: string): number {
  if (typeof ref === 'number') {
    if (!Number.isInteger(ref) || ref < 0 || ref >= model.cfg.d_vocab) throw new Error(`${what}: token id ${ref} is not an integer in [0, ${model.cfg.d_vocab})`);
    return ref;
  }
  if (typeof ref !== 'string') throw new Error(`${what}: a token is an id or its text; got ${typeof ref}`);
  if (!model.tokenizer) {
    throw new Error(`${what}: the token ${JSON.stringify(ref)} is named by its text, which needs a tokenizer, but this model was loaded without tokenizer files; give its token id instead`);
  }
  try {
    return model.toSingleToken(ref);
  } catch (e) {
    throw new Error(`${what}: ${e instanceof Error ? e.message : String(e)}`);
  }
}

/**
 * The metric a spec describes, on prompts of `tokens` [batch, pos] (the loss reads them): the mean
 * logit difference, the mean log-probability of a token, or the mean next-token loss — each with its
 * gradient, so it can seed a backward pass (or the mean probability of a token). Tokens given as text are resolved with the model's tokenizer.
 */
export function metricFromSpec(
  model: MetricSpecModel,
  spec: MetricSpec,
  tokens: readonly (readonly number[])[],
  opts: { attentionMask?: readonly (readonly number[])[] } = {},
): DifferentiableMetric {
  const ids = (v: TokenRef | readonly TokenRef[], what: string) =>
    typeof v === 'number' || typeof v === 'string' ? resolveTokenRef(model, v, what) : v.map((t, i) => resolveTokenRef(model, t, `${what}[${i}]`));
  switch (spec.kind) {
    case 'logit_diff':
      return logitDiffMetric({ correct: ids(spec.correct, 'metric.correct'), incorrect: ids(spec.incorrect, 'metric.incorrect'), positions: spec.position ?? -1 });
    case 'logprob':
      return tokenLogprobMetric({ token: ids(spec.token, 'metric.token'), positions: spec.position ?? -1 });
    case 'prob':
      return tokenProbMetric({ token: ids(spec.token, 'metric.token'), positions: spec.position ?? -1 });
    case 'loss':
      return lossMetric(tokens, opts);
    default:
      throw new Error(`metric.kind must be 'logit_diff', 'logprob', 'prob' or 'loss'; got '${String((spec as { kind?: unknown }).kind)}'`);
  }
}
