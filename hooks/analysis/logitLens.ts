/**
 * The logit lens: project the residual stream entering each layer (and the final one) through ln_final
 * and the unembedding, and read off the top tokens and the rank / probability / logit of target tokens.
 */
import type { ActivationCache } from '../ActivationCache.ts';
import { withModel } from './cache.ts';
import type { HookedTransformer, ModelInput } from '../HookedTransformer.ts';
import { blockHook, type HookName } from '../hookPoints.ts';
import { Tensor } from '../tensor.ts';
import { sliceIndices, type SliceInput } from '../slice.ts';

export interface LogitLensOptions {
  /** Also read resid_mid of every layer. */
  inclMid?: boolean;
  /** Apply ln_final (full LayerNorm, each layer's own statistics) before the unembedding; default true. */
  applyLn?: boolean;
  /** Positions to read (default all). */
  positions?: SliceInput;
  /** How many top tokens per layer and position (default 5). */
  topK?: number;
  /**
   * Target tokens to track: 'next' (the token that follows each position; -1 at the last), one id or
   * single-token string for all positions, one per prompt, or [batch, positions] ids.
   */
  target?: LogitLensTarget;
  /** Several targets tracked from the same unembedding (one pass for all): `targets` in the result, in this order. */
  targets?: readonly LogitLensTarget[];
  prependBos?: boolean;
  attentionMask?: readonly (readonly number[])[];
  /** onnxruntime threads for the unembedding matmul (0 = one per physical core). */
  threads?: number;
}

/** A tracked target: see LogitLensOptions.target. */
export type LogitLensTarget = 'next' | number | string | readonly number[] | readonly (readonly number[])[];

/** A tracked target's ids [batch, positions] (-1 = none) and [layer, batch, positions] rank (0 = top), probability and logit. */
export interface LogitLensTargetResult {
  tokens: number[][];
  rank: Tensor;
  prob: Tensor;
  logit: Tensor;
}

export interface LogitLensResult {
  /** Component labels: `0_pre`, (`0_mid`,) …, `final_post`. */
  labels: string[];
  tokens: number[][];
  /** The positions read. */
  positions: number[];
  /** [layer, batch, positions, k] token ids and probabilities. */
  topTokens: Tensor;
  topProbs: Tensor;
  /** With `target`: that target's ranks, probabilities and logits. */
  target?: LogitLensTargetResult;
  /** With `targets`: one result per target, in order. */
  targets?: LogitLensTargetResult[];
}

/** Runs the model on `input` and reads the logit lens off its cache. */
export async function logitLens(model: HookedTransformer, input: ModelInput, opts: LogitLensOptions = {}): Promise<LogitLensResult> {
  const { tokens, attentionMask } = model.prepareInput(input, { prependBos: opts.prependBos, attentionMask: opts.attentionMask });
  const names: HookName[] = [];
  for (let l = 0; l < model.cfg.n_layers; l++) {
    names.push(blockHook(l, 'hook_resid_pre'));
    if (opts.inclMid) names.push(blockHook(l, 'hook_resid_mid'));
  }
  names.push(blockHook(model.cfg.n_layers - 1, 'hook_resid_post'), 'ln_final.hook_scale');
  const [, raw] = await model.runWithCache(tokens, { namesFilter: names, returnType: 'none', ...(attentionMask ? { attentionMask } : {}) });
  const cache = withModel(raw, model);
  return logitLensFromCache(cache, tokens, opts);
}

/** The logit lens of a cache (with resid_pre of every layer and the last resid_post) for its `tokens`. */
export async function logitLensFromCache(cache: ActivationCache, tokens: number[][], opts: LogitLensOptions = {}): Promise<LogitLensResult> {
  const model = cache.model;
  if (!model) throw new Error('logitLensFromCache: the cache has no model; use a cache from model.runWithCache');
  const { d_model, d_vocab } = model.cfg;
  const k = opts.topK ?? 5;
  if (!Number.isInteger(k) || k < 0 || k > d_vocab) throw new Error(`logitLens: topK must be an integer in 0…${d_vocab}; got ${opts.topK}`);
  const pos = tokens[0].length;
  const positions = sliceIndices(opts.positions, pos, 'logitLens positions');
  const [stack, labels] = cache.accumulatedResid({ inclMid: opts.inclMid, applyLn: opts.applyLn ?? true, posSlice: [...positions], returnLabels: true });
  const L = stack.shape[0];
  const batch = tokens.length;
  const P = positions.length;
  const rows = stack.reshape([L * batch * P, d_model]);
  const R = L * batch * P;
  // The unembedding [rows, d_model] · W_U (~10 GFLOP for GPT-2), its log-sum-exp and top k run on onnxruntime,
  // reading W_U transposed as the model stores it (no copy).
  const kk = Math.max(k, 1); // onnxruntime's TopK takes k ≥ 1
  const head = await model.kernels.unembedTopK(rows, model.weights.matrix('W_U'), model.weights.vector('b_U'), kk, { threads: opts.threads });
  const topTokens = new Float32Array(R * k);
  const topProbs = new Float32Array(R * k);
  for (let r = 0; r < R; r++) {
    for (let j = 0; j < k; j++) {
      topTokens[r * k + j] = Number(head.topIds[r * kk + j]);
      topProbs[r * k + j] = Math.exp(head.topLogits[r * kk + j] - head.lse[r]);
    }
  }
  const shape4 = [L, batch, P, k];
  const result: LogitLensResult = {
    labels,
    tokens,
    positions,
    topTokens: new Tensor(topTokens, shape4),
    topProbs: new Tensor(topProbs, shape4),
  };
  /** Rank, probability and logit of one target spec's tokens, read off the same unembedding. */
  const track = (spec: LogitLensTarget): LogitLensTargetResult => {
    const targets = targetTokens(spec, tokens, positions, model.cfg.d_vocab, (s) => {
      if (!model.toSingleToken) throw new Error(`logitLens: target '${s}' needs a model with a tokenizer; pass a token id`);
      return model.toSingleToken(s);
    });
    const rank = new Float32Array(R);
    const prob = new Float32Array(R);
    const logit = new Float32Array(R);
    for (let r = 0; r < R; r++) {
      const b = Math.floor(r / P) % batch;
      const t = targets[b][r % P];
      if (t < 0) {
        rank[r] = prob[r] = logit[r] = NaN;
        continue;
      }
      const o = r * d_vocab;
      const v = head.logits[o + t];
      let above = 0;
      for (let j = 0; j < d_vocab; j++) if (head.logits[o + j] > v) above++;
      rank[r] = above;
      prob[r] = Math.exp(v - head.lse[r]);
      logit[r] = v;
    }
    return { tokens: targets, rank: new Tensor(rank, [L, batch, P]), prob: new Tensor(prob, [L, batch, P]), logit: new Tensor(logit, [L, batch, P]) };
  };
  if (opts.target !== undefined) result.target = track(opts.target);
  if (opts.targets !== undefined) result.targets = opts.targets.map(track);
  return result;
}

function targetTokens(
  target: LogitLensTarget,
  tokens: number[][],
  positions: number[],
  dVocab: number,
  single: (s: string) => number,
): number[][] {
  const batch = tokens.length;
  const check = (t: number): number => {
    if (!Number.isInteger(t) || t < -1 || t >= dVocab) throw new Error(`logitLens: target token ${t} is not an integer in [0, ${dVocab})`);
    return t;
  };
  if (target === 'next') return tokens.map((row) => positions.map((p) => (p + 1 < row.length ? row[p + 1] : -1)));
  if (typeof target === 'string') {
    const id = single(target);
    return tokens.map(() => positions.map(() => id));
  }
  if (typeof target === 'number') return tokens.map(() => positions.map(() => check(target)));
  if (target.length > 0 && Array.isArray(target[0])) {
    const rows = target as readonly (readonly number[])[];
    if (rows.length !== batch || rows.some((r) => r.length !== positions.length)) {
      throw new Error(`logitLens: target ids must be [batch=${batch}, positions=${positions.length}]`);
    }
    return rows.map((r) => r.map(check));
  }
  const perPrompt = target as readonly number[];
  if (perPrompt.length !== batch) throw new Error(`logitLens: got ${perPrompt.length} targets for ${batch} prompts; give one per prompt`);
  return perPrompt.map((t) => positions.map(() => check(t)));
}
