/**
 * What the features' handlers share to read a request on a model: prompts → tokens, token specs → ids, positions,
 * index checks, metrics, sizes and progress; each error is a UserError (→ 400) naming the request field.
 */
import type { HookedTransformer } from '../../hooks/HookedTransformer.ts';
import { logitDiffMetric, lossMetric, tokenLogprobMetric, tokenProbMetric } from '../../hooks/analysis/index.ts';
import type { DifferentiableMetric } from '../../hooks/gradients.ts';
import type { Tensor } from '../../hooks/tensor.ts';
import { UserError, type JobContext } from '../context.ts';
import { checkAnswerBytes, JSON_BYTES_PER_NUMBER } from './budget.ts';
import type { AblationMetricSpec, MetricEcho } from './schema.ts';
import { nest } from './select.ts';
import type { z } from 'zod';

type Prompt = string | readonly string[] | readonly number[] | readonly (readonly number[])[];

/** Prompt → token ids via the library (its checks become 400s: n_ctx, token ids, missing tokenizer). */
export function preparePrompt(
  model: HookedTransformer,
  prompt: Prompt,
  opts: { prependBos?: boolean; paddingSide?: 'left' | 'right' },
): { tokens: number[][]; attentionMask?: number[][] } {
  try {
    return model.prepareInput(prompt, opts);
  } catch (e) {
    throw new UserError(`prompt: ${(e as Error).message}`);
  }
}


type Grid = number[][];
/** A [n, m] tensor as nested arrays. */
export const grid = (t: Tensor): Grid => nest(t.data, t.shape) as Grid;

/** Runs a library call whose errors are caused by the request field `field` (→ 400 naming it). */
export function userCall<T>(field: string, fn: () => T): T {
  try {
    return fn();
  } catch (e) {
    throw new UserError(`${field}: ${(e as Error).message}`);
  }
}

export function strOf(model: HookedTransformer, id: number): string | null {
  return model.tokenizer ? model.tokenizer.decode([id]) : null;
}

export function strTokens(model: HookedTransformer, tokens: readonly number[]): string[] | null {
  return model.tokenizer ? model.tokenizer.toStrTokens(tokens) : null;
}

/** A token given as a single-token string or an id → its id. */
export function tokenId(model: HookedTransformer, field: string, spec: string | number): number {
  const V = model.cfg.d_vocab;
  if (typeof spec === 'number') {
    if (spec >= V) throw new UserError(`${field}: token id ${spec} is out of range; this model has d_vocab = ${V} (allowed 0..${V - 1})`);
    return spec;
  }
  if (!model.tokenizer) throw new UserError(`${field}: this model was loaded without tokenizer files; give a token id instead of '${spec}'`);
  return userCall(field, () => model.tokenizer!.toSingleToken(spec));
}

export function checkIndex(field: string, i: number, n: number, what: string): void {
  if (i < 0 || i >= n) throw new UserError(`${field}: ${i} is out of range; this model has ${what} = ${n} (allowed 0..${n - 1})`);
}

/** A position (negative counts from the end) → its index in 0..pos-1. */
export function resolvePos(field: string, p: number, pos: number): number {
  const q = p < 0 ? p + pos : p;
  if (q < 0 || q >= pos) throw new UserError(`${field}: position ${p} is out of range for a prompt of ${pos} tokens (allowed ${-pos}..${pos - 1})`);
  return q;
}

export function checkSweep(variants: number, pos: number, ctx: JobContext, hint: string): void {
  const work = variants * pos;
  if (work > ctx.limits.maxSweepTokens) {
    throw new UserError(
      `the sweep is too large: ${variants} runs × ${pos} tokens = ${work} token positions; the limit is ${ctx.limits.maxSweepTokens} (maxSweepTokens): ${hint}`,
    );
  }
}

/** progress + cancel check for the library's onProgress (called after each batched forward pass). */
export function passProgress(ctx: JobContext, offset = 0, total?: number, message?: string) {
  return (done: number, t: number) => {
    ctx.progress(offset + done, total ?? t, message);
    ctx.checkCancelled();
  };
}

export interface Metric {
  /**
   * Of logits [1, pos, d_vocab], with its gradient (a backward pass can start from it); a metric that reads one
   * position is a PositionedMetric, so batched runs unembed only there.
   */
  fn: DifferentiableMetric;
  echo: z.infer<typeof MetricEcho>;
}

/** The request's metric of a run's logits, with its resolved tokens and position. */
export function buildMetric(model: HookedTransformer, m: AblationMetricSpec, tokens: number[][]): Metric {
  const pos = tokens[0].length;
  const s = (id: number) => JSON.stringify(strOf(model, id) ?? `#${id}`);
  if (m.kind === 'logit_diff') {
    const correct = tokenId(model, 'metric.correct', m.correct);
    const incorrect = tokenId(model, 'metric.incorrect', m.incorrect);
    const at = resolvePos('metric.position', m.position ?? -1, pos);
    return {
      fn: logitDiffMetric({ correct, incorrect, positions: at }),
      echo: { kind: 'logit_diff', label: `logit(${s(correct)}) − logit(${s(incorrect)}) @ pos ${at}`, tokens: [correct, incorrect], position: at },
    };
  }
  if (m.kind === 'prob' || m.kind === 'logprob') {
    const token = tokenId(model, 'metric.token', m.token);
    const at = resolvePos('metric.position', m.position ?? -1, pos);
    const prob = m.kind === 'prob';
    return {
      fn: (prob ? tokenProbMetric : tokenLogprobMetric)({ token, positions: at }),
      echo: { kind: m.kind, label: `${prob ? 'P' : 'log P'}(${s(token)}) @ pos ${at}`, tokens: [token], position: at },
    };
  }
  if (pos < 2) throw new UserError('metric: the loss needs a prompt of at least 2 tokens');
  return {
    fn: lossMetric(tokens),
    echo: { kind: 'loss', label: 'mean next-token loss', tokens: [], position: null },
  };
}

/** Refuses an answer of more than maxElements numbers, or more than maxResponseBytes of JSON. */
export function checkSize(count: number, ctx: JobContext, hint: string): void {
  if (count > ctx.limits.maxElements) {
    throw new UserError(`the answer would hold ${count} numbers; the limit is ${ctx.limits.maxElements} (maxElements): ${hint}`);
  }
  checkAnswerBytes(ctx, count * JSON_BYTES_PER_NUMBER, `${count} numbers`, hint);
}

