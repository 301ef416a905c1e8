/** Repeated random tokens (the induction task), induction loss and loss by position (TransformerLens's evals / demo helpers). */
import { randomTokens } from '../datasets/induction.ts';
import type { HookedTransformer, ModelInput } from '../HookedTransformer.ts';
import { Rng } from '../random.ts';
import { Tensor } from '../tensor.ts';

export interface RepeatedTokensOptions {
  /** Length of the random span (repeated once). */
  seqLen: number;
  /** Number of sequences. Default 1. */
  batch?: number;
  seed?: number;
  /** Prepend BOS (default true, as TL's generate_repeated_tokens). */
  prependBos?: boolean;
  /** Tokens to draw from (default every id in [0, d_vocab) except BOS). */
  pool?: ArrayLike<number>;
}

/**
 * TL's generate_repeated_tokens: [batch, 1 + 2·seqLen] = BOS, a span of random tokens, the same span
 * again. Uses the training data's random-token draw.
 */
export function generateRepeatedTokens(cfg: { d_vocab: number; bos_token_id: number; n_ctx: number }, opts: RepeatedTokensOptions): number[][] {
  const { seqLen } = opts;
  const batch = opts.batch ?? 1;
  if (!Number.isInteger(seqLen) || seqLen < 1) throw new Error(`generateRepeatedTokens: seqLen must be a positive integer; got ${seqLen}`);
  if (!Number.isInteger(batch) || batch < 1) throw new Error(`generateRepeatedTokens: batch must be a positive integer; got ${batch}`);
  const prependBos = opts.prependBos ?? true;
  const length = 2 * seqLen + (prependBos ? 1 : 0);
  if (length > cfg.n_ctx) throw new Error(`generateRepeatedTokens: ${length} tokens exceed the model's context n_ctx = ${cfg.n_ctx}`);
  let pool = opts.pool;
  if (!pool) {
    const all = new Int32Array(cfg.d_vocab - (cfg.bos_token_id < cfg.d_vocab ? 1 : 0));
    let k = 0;
    for (let t = 0; t < cfg.d_vocab; t++) if (t !== cfg.bos_token_id) all[k++] = t;
    pool = all;
  }
  for (let i = 0; i < pool.length; i++) {
    const t = pool[i];
    if (!Number.isInteger(t) || t < 0 || t >= cfg.d_vocab) throw new Error(`generateRepeatedTokens: pool token ${t} is not an integer in [0, ${cfg.d_vocab})`);
  }
  const rng = new Rng(opts.seed ?? 0);
  return Array.from({ length: batch }, () => {
    const span = randomTokens(rng, pool!, seqLen);
    return [...(prependBos ? [cfg.bos_token_id] : []), ...span, ...span];
  });
}

/**
 * Per-token next-token loss averaged over the batch: [pos - 1], entry p = the loss of predicting token
 * p + 1 (TL's demo "loss by position").
 */
export async function lossByPosition(model: HookedTransformer, input: ModelInput): Promise<Tensor> {
  const perToken = (await model.forward(input, { returnType: 'loss', lossPerToken: true })) as Tensor; // [batch, pos - 1]
  return perToken.mean(0);
}

/**
 * TL evals.induction_loss: the mean per-token loss on the second copy of repeated random tokens
 * (positions that can be predicted by induction). Returns the loss and the tokens used.
 */
export async function inductionLoss(
  model: HookedTransformer,
  opts: { batchSize?: number; subseqLen?: number; prependBos?: boolean; seed?: number; tokens?: number[][] } = {},
): Promise<{ loss: number; tokens: number[][] }> {
  const subseqLen = opts.subseqLen ?? 384;
  const prependBos = opts.prependBos ?? true;
  const tokens = opts.tokens ?? generateRepeatedTokens(model.cfg, { seqLen: subseqLen, batch: opts.batchSize ?? 32, seed: opts.seed, prependBos });
  const perToken = (await model.forward(tokens, { returnType: 'loss', lossPerToken: true })) as Tensor; // [batch, pos - 1]
  const second = perToken.slice(1, subseqLen + (prependBos ? 1 : 0)); // predictions of the second copy's tokens
  return { loss: second.mean().item(), tokens };
}
