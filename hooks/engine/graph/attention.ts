/**
 * TransformerLens's Attention: q, k, v per head, causal scores, the pattern, z, and the heads'
 * output through W_O (hook_q … hook_z, hook_result when asked for, hook_attn_out). With a
 * key/value cache (the decoding graph) the past keys and values come first.
 */
import { blockHook } from '../../hookPoints.ts';
import type { GraphContext } from './context.ts';
import { blockLinear } from './linear.ts';

/** The LayerNormed inputs of q, k and v: [batch, pos, d_model], or per head [batch, pos, head, d_model]. */
export interface QkvInputs {
  Q: string;
  K: string;
  V: string;
  perHead: boolean;
}

/** One layer's key/value cache: past_* fed [batch, head, past, d_head], present_* = past + new out. */
export interface LayerKvCache {
  pastKey: string;
  pastValue: string;
  presentKey: string;
  presentValue: string;
}

/** x W_which + b_which split into heads: [batch, pos, (head,) d_model] -> [batch, pos, head, d_head]. */
function project(ctx: GraphContext, layer: number, which: 'Q' | 'K' | 'V', x: string, perHead: boolean, out: string): void {
  const { b, cfg } = ctx;
  const { n_heads, d_head, d_model } = cfg;
  if (!perHead) {
    const flat = blockLinear(ctx, x, layer, `W_${which}`); // [batch, pos, n_heads·d_head]
    b.reshape(flat, [0, 0, n_heads, d_head], out);
    return;
  }
  const weight = ctx.weight(`W_${which}`, layer);
  const bias = ctx.weight(`b_${which}`, layer);
  const perHeadW = ctx.featureMajor
    ? b.transpose(b.reshape(weight, [n_heads, d_head, d_model]), [0, 2, 1]) // [H, d_model] -> [head, d_model, d_head]
    : b.transpose(b.reshape(weight, [d_model, n_heads, d_head]), [1, 0, 2]); // [d_model, H] -> [head, d_model, d_head]
  const x5 = b.unsqueeze(x, [3]); // [batch, pos, head, 1, d_model]
  const projected = b.squeeze(b.matmul(x5, perHeadW), [3]); // [batch, pos, head, d_head]
  b.add(projected, b.reshape(bias, [n_heads, d_head]), out);
}

/** k [batch, pos, head, d_head] -> the keys transposed for the scores, [batch, head, d_head, key_pos] (after the past keys with a cache). */
function keysT(ctx: GraphContext, k: string, cache?: LayerKvCache): string {
  const { b } = ctx;
  if (!cache) return b.transpose(k, [0, 2, 3, 1]);
  const keys = b.op('Concat', [cache.pastKey, b.transpose(k, [0, 2, 1, 3])], { axis: { i: 2 } }, cache.presentKey); // [batch, head, past + pos, d_head]
  return b.transpose(keys, [0, 1, 3, 2]);
}

/** v [batch, pos, head, d_head] -> the values per head, [batch, head, key_pos, d_head] (after the past values with a cache). */
function valuesPerHead(ctx: GraphContext, v: string, cache?: LayerKvCache): string {
  const vh = ctx.b.transpose(v, [0, 2, 1, 3]);
  return cache ? ctx.b.op('Concat', [cache.pastValue, vh], { axis: { i: 2 } }, cache.presentValue) : vh;
}

/** z [batch, pos, head, d_head] -> hook_attn_out [batch, pos, d_model]; through hook_result [batch, pos, head, d_model] when it is asked for. */
function attentionOutput(ctx: GraphContext, layer: number, z: string): string {
  const { b, cfg } = ctx;
  const { n_heads, d_head, d_model } = cfg;
  const resultName = blockHook(layer, 'attn.hook_result');
  if (!ctx.needs(resultName)) {
    return ctx.hook(blockHook(layer, 'hook_attn_out'), (out) => blockLinear(ctx, b.reshape(z, [0, 0, n_heads * d_head]), layer, 'W_O', out));
  }
  const W_O = ctx.weight('W_O', layer); // [H, d_model], or [d_model, H] feature-major
  const b_O = ctx.weight('b_O', layer);
  const result = ctx.hook(resultName, (out) => {
    const perHead = ctx.featureMajor
      ? b.transpose(b.reshape(W_O, [d_model, n_heads, d_head]), [1, 2, 0]) // [head, d_head, d_model]
      : b.reshape(W_O, [n_heads, d_head, d_model]); // [head, d_head, d_model]
    const z5 = b.unsqueeze(z, [3]); // [batch, pos, head, 1, d_head]
    b.squeeze(b.matmul(z5, perHead), [3], out); // [batch, pos, head, d_model]
  });
  return ctx.hook(blockHook(layer, 'hook_attn_out'), (out) => b.add(b.reduceSum(result, [2], false), b_O, out));
}

/**
 * Attention of block `layer` on its LayerNormed inputs: -> hook_attn_out [batch, pos, d_model].
 * `allowed` says which keys each query may read ([query_pos, key_pos] or [batch, 1, query_pos, key_pos]).
 */
export function attention(ctx: GraphContext, layer: number, x: QkvInputs, allowed: string, cache?: LayerKvCache): string {
  const { b, cfg } = ctx;
  const q = ctx.hook(blockHook(layer, 'attn.hook_q'), (out) => project(ctx, layer, 'Q', x.Q, x.perHead, out)); // [batch, pos, head, d_head]
  const k = ctx.hook(blockHook(layer, 'attn.hook_k'), (out) => project(ctx, layer, 'K', x.K, x.perHead, out)); // [batch, pos, head, d_head]
  const v = ctx.hook(blockHook(layer, 'attn.hook_v'), (out) => project(ctx, layer, 'V', x.V, x.perHead, out)); // [batch, pos, head, d_head]
  const scores = ctx.hook(blockHook(layer, 'attn.hook_attn_scores'), (out) => {
    const qh = b.transpose(q, [0, 2, 1, 3]); // [batch, head, query_pos, d_head]
    const raw = b.div(b.matmul(qh, keysT(ctx, k, cache)), b.f32(Math.sqrt(cfg.d_head))); // [batch, head, query_pos, key_pos]
    b.where(allowed, raw, b.f32(-Infinity), out); // -inf where a key may not be read
  });
  const pattern = ctx.hook(blockHook(layer, 'attn.hook_pattern'), (out) => {
    const soft = b.op('Softmax', [scores], { axis: { i: -1 } }); // [batch, head, query_pos, key_pos]
    // With a mask, a query row with every key masked (left padding) is 0, as in TransformerLens.
    if (ctx.hasAttentionMask) b.where(b.op('IsNaN', [soft]), b.f32(0), soft, out);
    else b.op('Identity', [soft], undefined, out);
  });
  const z = ctx.hook(blockHook(layer, 'attn.hook_z'), (out) => {
    const zh = b.matmul(pattern, valuesPerHead(ctx, v, cache)); // [batch, head, query_pos, d_head]
    b.transpose(zh, [0, 2, 1, 3], out); // [batch, pos, head, d_head]
  });
  return attentionOutput(ctx, layer, z);
}
