/**
 * GPT-2's decoding step with a key/value cache as one ONNX graph: new tokens plus the past keys and
 * values of every layer in, logits of the new positions and the grown keys and values out. Built
 * from the same pieces and weight feeds as the hooked forward graph (graph/), without hook points.
 */
import type { HookedTransformerConfig } from '../config.ts';
import type { GraphBuilder } from '../onnx/builder.ts';
import { block } from './graph/block.ts';
import type { HookName } from '../hookPoints.ts';
import { PlainContext } from './graph/context.ts';
import type { SaeSplice } from './graph/sae.ts';
import { allowedKeys, axisLength, embeddings, maskPositions } from './graph/embed.ts';
import { layerNorm } from './graph/layerNorm.ts';
import { unembed } from './graph/unembed.ts';

export interface DecodeGraphOptions {
  /** Whether the LayerNorms carry weights (false once folded: TransformerLens's LNPre). */
  lnHasWeights: boolean;
  /** Emit logits for the last new position only ([batch, 1, d_vocab]) instead of every new one. */
  lastLogitsOnly: boolean;
  /** The matrix weights are feature-major, [out, in] (see graph/linear.ts). */
  featureMajor?: boolean;
  /** Hook points where a fed vector `<hook>::add` is added at every new position (steering). */
  additions?: ReadonlySet<HookName>;
  /** Sparse autoencoders spliced at hook points (no hook points of their own here). */
  saes?: readonly SaeSplice[];
}

/** Feed and output names of the cache: past_* are fed [batch, head, past, d_head], present_* come out [batch, head, past + new, d_head]. */
export const kvNames = {
  pastKey: (l: number) => `past_key.${l}`,
  pastValue: (l: number) => `past_value.${l}`,
  presentKey: (l: number) => `present_key.${l}`,
  presentValue: (l: number) => `present_value.${l}`,
};

export interface BuiltDecodeGraph {
  builder: GraphBuilder;
  /** `logits` then present_key.L, present_value.L for every layer. */
  outputs: string[];
}

/**
 * Inputs: `tokens` [batch, new] int64; `attention_mask` [batch, past + new] int64 (1 = real token;
 * left padding of the prompt stays 0 for the whole generation); past_key.L / past_value.L
 * [batch, head, past, d_head] (past may be 0: the prefill). Positions are TransformerLens's
 * cumsum(mask) - 1 over the whole sequence, taken at the new tokens.
 */
export function buildDecodeGraph(cfg: HookedTransformerConfig, opts: DecodeGraphOptions): BuiltDecodeGraph {
  const ctx = new PlainContext(cfg, { featureMajor: opts.featureMajor ?? false, lnHasWeights: opts.lnHasWeights, hasAttentionMask: true, optional: {}, additions: opts.additions, saes: opts.saes });
  const { b } = ctx;
  const { n_heads, d_head } = cfg;
  const tokens = b.input('tokens', 'int64', ['batch', 'new']);
  const mask = b.input('attention_mask', 'int64', ['batch', 'total']);
  const cache = Array.from({ length: cfg.n_layers }, (_, l) => ({
    pastKey: b.input(kvNames.pastKey(l), 'float32', ['batch', n_heads, 'past', d_head]),
    pastValue: b.input(kvNames.pastValue(l), 'float32', ['batch', n_heads, 'past', d_head]),
    presentKey: kvNames.presentKey(l),
    presentValue: kvNames.presentValue(l),
  }));

  // Lengths: past from the cache, total from the mask.
  const pastLen = axisLength(b, cache[0].pastKey, 2); // [1]
  const totalLen = axisLength(b, mask, 1); // [1]
  const newMask = b.op('Slice', [mask, pastLen, totalLen, b.i64([1])]); // [batch, new]
  const positions = b.op('Slice', [maskPositions(b, mask), pastLen, totalLen, b.i64([1])]); // [batch, new]
  let resid = embeddings(ctx, tokens, { positions, mask: newMask }); // [batch, new, d_model]
  // Query at absolute index past + i may read key j when j <= past + i and key j is not padding.
  const allowed = allowedKeys(b, totalLen, mask, pastLen); // [batch, 1, new, total]
  for (let l = 0; l < cfg.n_layers; l++) resid = block(ctx, l, resid, allowed, cache[l]); // [batch, new, d_model]
  let xf = layerNorm(ctx, resid, { ln: 'ln_final', layer: null }, null); // [batch, new, d_model]
  if (opts.lastLogitsOnly) xf = b.op('Slice', [xf, b.i64([-1]), b.i64([2 ** 62]), b.i64([1])]); // [batch, 1, d_model]
  unembed(ctx, xf, 'logits'); // [batch, new | 1, d_vocab]
  return { builder: b, outputs: ['logits', ...cache.flatMap((c) => [c.presentKey, c.presentValue])] };
}
