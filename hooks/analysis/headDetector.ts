/**
 * TransformerLens's head detector: scores every attention head's pattern against a detection pattern
 * (previous-token, duplicate-token, induction, or a user-given [pos, pos] pattern).
 */
import type { ActivationCache } from '../ActivationCache.ts';
import type { HookedTransformer } from '../HookedTransformer.ts';
import { blockHook } from '../hookPoints.ts';
import { Tensor } from '../tensor.ts';

export type HeadName = 'previous_token_head' | 'duplicate_token_head' | 'induction_head';
export const HEAD_NAMES: readonly HeadName[] = ['previous_token_head', 'duplicate_token_head', 'induction_head'];
export type ErrorMeasure = 'mul' | 'abs';

export interface DetectHeadOptions {
  /** Only these heads ([layer, head] pairs, or layer → heads); the others score -1, as TL. */
  heads?: readonly (readonly [number, number])[] | Readonly<Record<number, readonly number[]>>;
  /** A cache of this one sequence (with blocks.L.attn.hook_pattern) to reuse. */
  cache?: ActivationCache;
  /** Ignore attention to position 0 (BOS). */
  excludeBos?: boolean;
  /** Ignore attention to the current token (the diagonal). */
  excludeCurrentToken?: boolean;
  /** 'mul' (default): share of attention on the pattern's 1s. 'abs': 1 − mean |difference| · pos, rounded to 3 decimals. */
  errorMeasure?: ErrorMeasure;
}

/** [pos, pos] with 1 where query p attends to key p − 1 (TL get_previous_token_head_detection_pattern). */
export function getPreviousTokenHeadDetectionPattern(tokens: readonly number[]): Tensor {
  const n = tokens.length;
  const out = Tensor.zeros([n, n]);
  for (let q = 1; q < n; q++) out.set(1, q, q - 1);
  return out;
}

/** [pos, pos] with 1 where an earlier key holds the same token as the query (TL get_duplicate_token_head_detection_pattern). */
export function getDuplicateTokenHeadDetectionPattern(tokens: readonly number[]): Tensor {
  const n = tokens.length;
  const out = Tensor.zeros([n, n]);
  for (let q = 0; q < n; q++) for (let k = 0; k < q; k++) if (tokens[q] === tokens[k]) out.set(1, q, k);
  return out;
}

/** [pos, pos] with 1 at key k + 1 for every earlier duplicate k of the query's token (TL get_induction_head_detection_pattern). */
export function getInductionHeadDetectionPattern(tokens: readonly number[]): Tensor {
  const n = tokens.length;
  const dup = getDuplicateTokenHeadDetectionPattern(tokens);
  const out = Tensor.zeros([n, n]);
  // shift right by one (column 0 cleared), keep the lower triangle
  for (let q = 0; q < n; q++) for (let k = 1; k <= q; k++) out.set(dup.get(q, k - 1), q, k);
  return out;
}

/** TL compute_head_attention_similarity_score for one head's [q_pos, k_pos] pattern (the input is not modified). */
export function computeHeadAttentionSimilarityScore(
  attentionPattern: Tensor,
  detectionPattern: Tensor,
  opts: { excludeBos?: boolean; excludeCurrentToken?: boolean; errorMeasure?: ErrorMeasure } = {},
): number {
  const [n, m] = attentionPattern.shape;
  if (attentionPattern.ndim !== 2 || n !== m) throw new Error(`head detector: the attention pattern must be square [pos, pos]; got [${attentionPattern.shape.join(', ')}]`);
  if (detectionPattern.shape.join(',') !== `${n},${n}`) throw new Error(`head detector: the detection pattern must be [${n}, ${n}] like the attention pattern; got [${detectionPattern.shape.join(', ')}]`);
  const measure = opts.errorMeasure ?? 'mul';
  const excluded = (q: number, k: number) => (opts.excludeBos && k === 0) || (opts.excludeCurrentToken && q === k);
  const a = attentionPattern.data;
  const d = detectionPattern.data;
  if (measure === 'mul') {
    let num = 0;
    let den = 0;
    for (let q = 0; q < n; q++) {
      for (let k = 0; k < n; k++) {
        if (excluded(q, k)) continue;
        num += a[q * n + k] * d[q * n + k];
        den += a[q * n + k];
      }
    }
    return num / den;
  }
  if (measure !== 'abs') throw new Error(`head detector: errorMeasure '${String(measure)}' is not allowed; use 'mul' or 'abs'`);
  let sum = 0;
  for (let q = 0; q < n; q++) {
    for (let k = 0; k < n; k++) {
      const diff = Math.abs(a[q * n + k] - d[q * n + k]);
      if (k > q && diff !== 0) throw new Error('head detector: with "abs", the attention and detection patterns must both be lower triangular');
      if (!excluded(q, k)) sum += diff;
    }
  }
  // TL: 1 - round(mean(|diff|) · size, 3), with the mean over all size² entries
  return 1 - Math.round((sum / (n * n)) * n * 1000) / 1000;
}

function isLowerTriangular(t: Tensor): boolean {
  const n = t.shape[0];
  for (let q = 0; q < n; q++) for (let k = q + 1; k < n; k++) if (t.data[q * n + k] !== 0) return false;
  return true;
}

/** The detection pattern for a head name and a sequence's tokens. */
export function detectionPatternFor(name: HeadName, tokens: readonly number[]): Tensor {
  switch (name) {
    case 'previous_token_head': return getPreviousTokenHeadDetectionPattern(tokens);
    case 'duplicate_token_head': return getDuplicateTokenHeadDetectionPattern(tokens);
    case 'induction_head': return getInductionHeadDetectionPattern(tokens);
    default: throw new Error(`detection pattern must be a Tensor or one of ${HEAD_NAMES.join(', ')}; got '${String(name)}'`);
  }
}

/**
 * TL detect_head: the score of every head, [n_layers, n_heads] (heads not asked for are -1). `seq` is
 * a text (tokenized with BOS, as TL), a list of token ids, or a list of these (the scores are averaged
 * over the sequences; each gets its own detection pattern when the pattern is given by name).
 */
export async function detectHead(
  model: HookedTransformer,
  seq: string | readonly number[] | readonly (string | readonly number[])[],
  detectionPattern: Tensor | HeadName,
  opts: DetectHeadOptions = {},
): Promise<Tensor> {
  const { n_layers, n_heads, n_ctx } = model.cfg;
  const isList = Array.isArray(seq) && seq.length > 0 && (typeof seq[0] === 'string' || Array.isArray(seq[0]));
  if (isList) {
    if (opts.cache) throw new Error('detectHead: a cache can only be reused for a single sequence');
    const scores = [];
    for (const s of seq as readonly (string | readonly number[])[]) scores.push(await detectHead(model, s, detectionPattern, opts));
    return scores.reduce((a, b) => a.add(b)).div(scores.length);
  }
  const tokens = typeof seq === 'string' ? model.toTokens(seq)[0] : [...(seq as readonly number[])];
  const n = tokens.length;
  if (!(1 < n && n < n_ctx)) throw new Error(`detectHead: the sequence must have more than 1 token and fit the context (n_ctx = ${n_ctx}); got ${n}`);
  const pattern = typeof detectionPattern === 'string' ? detectionPatternFor(detectionPattern, tokens) : detectionPattern;
  if (pattern.ndim !== 2 || pattern.shape[0] !== n || pattern.shape[1] !== n || !isLowerTriangular(pattern)) {
    throw new Error(`detectHead: the detection pattern must be a lower triangular [${n}, ${n}] tensor (sequence length ${n}); got [${pattern.shape.join(', ')}]${pattern.ndim === 2 && pattern.shape[0] === pattern.shape[1] ? ' with entries above the diagonal' : ''}`);
  }
  const layer2heads = new Map<number, number[]>();
  if (!opts.heads) for (let l = 0; l < n_layers; l++) layer2heads.set(l, Array.from({ length: n_heads }, (_, h) => h));
  else if (Array.isArray(opts.heads)) for (const [l, h] of opts.heads as readonly (readonly [number, number])[]) layer2heads.set(l, [...(layer2heads.get(l) ?? []), h]);
  else for (const [l, hs] of Object.entries(opts.heads)) layer2heads.set(Number(l), [...(hs as readonly number[])]);
  for (const [l, hs] of layer2heads) {
    if (!Number.isInteger(l) || l < 0 || l >= n_layers) throw new Error(`detectHead: layer ${l} is out of range; allowed 0…${n_layers - 1}`);
    for (const h of hs) if (!Number.isInteger(h) || h < 0 || h >= n_heads) throw new Error(`detectHead: head ${h} is out of range; allowed 0…${n_heads - 1}`);
  }
  const names = [...layer2heads.keys()].map((l) => blockHook(l, 'attn.hook_pattern'));
  const cache = opts.cache ?? (await model.runWithCache([tokens], { namesFilter: names, returnType: 'none' }))[1];
  const matches = Tensor.full([n_layers, n_heads], -1);
  for (const [l, hs] of layer2heads) {
    let pat = cache.get(blockHook(l, 'attn.hook_pattern')); // [batch?, head, q, k]
    if (pat.ndim === 4) {
      if (pat.shape[0] !== 1) throw new Error(`detectHead: the cache holds a batch of ${pat.shape[0]}; give a cache of this one sequence`);
      pat = pat.index(0, 0);
    }
    for (const h of hs) matches.set(computeHeadAttentionSimilarityScore(pat.index(0, h), pattern, opts), l, h);
  }
  return matches;
}
