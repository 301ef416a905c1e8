/**
 * GPT-2's decoding step with a key/value cache as one ONNX graph: new tokens plus the past keys and
 * values of every layer in, logits of the new positions and the grown keys and values out. Built
 * from the same blocks and weight feeds as the hooked forward graph (gpt2Graph.ts).
 */
import type { HookedTransformerConfig } from '../config.ts';
import { GraphBuilder } from '../onnx/builder.ts';
import {
  activation, attentionOutput, attentionPattern, fusedLayerNorm, headProjection, linear, maskedPosEmbed, maskedScores,
  maskPositions, patternTimesValues, unembed, weightDims, weightName,
} from './gpt2Graph.ts';

export interface DecodeGraphOptions {
  /** Whether the LayerNorms carry weights (false once folded: TransformerLens's LNPre). */
  lnHasWeights: boolean;
  /** Emit logits for the last new position only ([batch, 1, d_vocab]) instead of every new one. */
  lastLogitsOnly: boolean;
  /** The matrix weights are feature-major, [out, in] (featureMajor.ts; see gpt2Graph.ts's linear()). */
  featureMajor?: boolean;
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
  const b = new GraphBuilder();
  const { n_heads, d_head } = cfg;
  const fm = opts.featureMajor ?? false;
  const w = (name: string) => b.input(name, 'float32', weightDims(cfg, name, fm));
  const tokens = b.input('tokens', 'int64', ['batch', 'new']);
  const mask = b.input('attention_mask', 'int64', ['batch', 'total']);
  const pastKeys = Array.from({ length: cfg.n_layers }, (_, l) => b.input(kvNames.pastKey(l), 'float32', ['batch', n_heads, 'past', d_head]));
  const pastValues = Array.from({ length: cfg.n_layers }, (_, l) => b.input(kvNames.pastValue(l), 'float32', ['batch', n_heads, 'past', d_head]));

  // Lengths: past from the cache, total from the mask.
  const pastLen = b.op('Slice', [b.op('Shape', [pastKeys[0]]), b.i64([2]), b.i64([3])]); // [1]
  const totalLen = b.op('Slice', [b.op('Shape', [mask]), b.i64([1]), b.i64([2])]); // [1]
  const newMask = b.op('Slice', [mask, pastLen, totalLen, b.i64([1])]); // [batch, new]
  const positions = b.op('Slice', [maskPositions(b, mask), pastLen, totalLen, b.i64([1])]); // [batch, new]

  let resid = b.add(b.gather(w('W_E'), tokens, 0), maskedPosEmbed(b, w('W_pos'), positions, newMask)); // [batch, new, d_model]

  // Query at absolute index past + i may read key j when j <= past + i and key j is not padding.
  const keyRange = b.op('Range', [b.i64([0], true), b.squeeze(totalLen, [0]), b.i64([1], true)]); // [total]
  const queryRange = b.op('Range', [b.squeeze(pastLen, [0]), b.squeeze(totalLen, [0]), b.i64([1], true)]); // [new]
  const causal = b.op('LessOrEqual', [b.unsqueeze(keyRange, [0]), b.unsqueeze(queryRange, [1])]); // [new, total]
  const keyOk = b.unsqueeze(b.op('Cast', [mask], { to: { i: 9 } }), [1, 2]); // [batch, 1, 1, total]
  const allowed = b.op('And', [causal, keyOk]); // [batch, 1, new, total]

  const lnWeights = (prefix: string) => (opts.lnHasWeights ? { w: w(`${prefix}.w`), b: w(`${prefix}.b`) } : null);
  const outputs = ['logits'];
  for (let l = 0; l < cfg.n_layers; l++) {
    const W = (name: string) => w(weightName.block(l, name));
    const x1 = fusedLayerNorm(b, cfg, resid, lnWeights(`blocks.${l}.ln1`));
    const heads = (which: 'Q' | 'K' | 'V') => b.transpose(headProjection(b, cfg, x1, W(`W_${which}`), W(`b_${which}`), fm), [0, 2, 1, 3]); // [batch, head, new, d_head]
    const qh = heads('Q');
    const keys = b.op('Concat', [pastKeys[l], heads('K')], { axis: { i: 2 } }, kvNames.presentKey(l)); // [batch, head, total, d_head]
    const values = b.op('Concat', [pastValues[l], heads('V')], { axis: { i: 2 } }, kvNames.presentValue(l));
    outputs.push(keys, values);
    const scores = maskedScores(b, cfg, qh, b.transpose(keys, [0, 1, 3, 2]), allowed); // [batch, head, new, total]
    const z = patternTimesValues(b, attentionPattern(b, scores, true), values); // [batch, new, head, d_head]
    const residMid = b.add(resid, attentionOutput(b, cfg, z, W('W_O'), W('b_O'), fm));
    const x2 = fusedLayerNorm(b, cfg, residMid, lnWeights(`blocks.${l}.ln2`));
    const post = activation(b, cfg, linear(b, x2, W('W_in'), W('b_in'), fm));
    resid = b.add(residMid, linear(b, post, W('W_out'), W('b_out'), fm)); // [batch, new, d_model]
  }
  let xf = fusedLayerNorm(b, cfg, resid, lnWeights('ln_final'));
  if (opts.lastLogitsOnly) xf = b.op('Slice', [xf, b.i64([-1]), b.i64([2 ** 62]), b.i64([1])]); // [batch, 1, d_model]
  unembed(b, cfg, xf, fm, 'logits'); // [batch, new | 1, d_vocab]
  return { builder: b, outputs };
}
