/**
 * TransformerLens's TransformerBlock: resid_pre -> ln1 -> attention -> resid_mid -> ln2 -> MLP ->
 * resid_post, with the optional per-head attention inputs (hook_attn_in, hook_q/k/v_input) and hook_mlp_in.
 */
import { blockHook, layerNormHooks } from '../../hookPoints.ts';
import { attention, type LayerKvCache, type QkvInputs } from './attention.ts';
import type { GraphContext } from './context.ts';
import { layerNorm } from './layerNorm.ts';
import { mlp } from './mlp.ts';

/** x [batch, pos, d_model] -> x repeated for every head, [batch, pos, head, d_model]. */
function repeatHeads(ctx: GraphContext, x: string, out: string): void {
  const { b } = ctx;
  b.op('Expand', [b.unsqueeze(x, [2]), b.i64([1, 1, ctx.cfg.n_heads, 1])], undefined, out);
}

/** ln1 of block `layer` on resid_pre: the inputs of q, k and v (per head with TransformerLens's attn_in or split q/k/v inputs). */
function attentionInputs(ctx: GraphContext, layer: number, residPre: string): QkvInputs {
  const at = { ln: 'ln1', layer } as const;
  const hooks = layerNormHooks(layer, 'ln1');
  if (ctx.optional.useSplitQkvInput) {
    const perHeadInput = (s: 'hook_q_input' | 'hook_k_input' | 'hook_v_input') => ctx.hook(blockHook(layer, s), (out) => repeatHeads(ctx, residPre, out));
    if (ctx.optional.useAttnIn) ctx.hook(blockHook(layer, 'hook_attn_in'), (out) => repeatHeads(ctx, residPre, out));
    const [qIn, kIn, vIn] = [perHeadInput('hook_q_input'), perHeadInput('hook_k_input'), perHeadInput('hook_v_input')];
    // TransformerLens applies ln1 to each input; its cache keeps the last call's (the value input's).
    return { Q: layerNorm(ctx, qIn, at, null), K: layerNorm(ctx, kIn, at, null), V: layerNorm(ctx, vIn, at, hooks), perHead: true };
  }
  const attnIn = ctx.optional.useAttnIn ? ctx.hook(blockHook(layer, 'hook_attn_in'), (out) => repeatHeads(ctx, residPre, out)) : residPre;
  const x1 = layerNorm(ctx, attnIn, at, hooks); // [batch, pos, (head,) d_model]
  return { Q: x1, K: x1, V: x1, perHead: ctx.optional.useAttnIn === true };
}

/** Block `layer`: resid [batch, pos, d_model] -> hook_resid_post [batch, pos, d_model]. */
export function block(ctx: GraphContext, layer: number, resid: string, allowed: string, cache?: LayerKvCache): string {
  const { b } = ctx;
  const residPre = ctx.hook(blockHook(layer, 'hook_resid_pre'), (out) => b.op('Identity', [resid], undefined, out));
  const attnOut = attention(ctx, layer, attentionInputs(ctx, layer, residPre), allowed, cache); // [batch, pos, d_model]
  const residMid = ctx.hook(blockHook(layer, 'hook_resid_mid'), (out) => b.add(residPre, attnOut, out));
  const mlpIn = ctx.optional.useHookMlpIn ? ctx.hook(blockHook(layer, 'hook_mlp_in'), (out) => b.op('Identity', [residMid], undefined, out)) : residMid;
  const mlpOut = mlp(ctx, layer, layerNorm(ctx, mlpIn, { ln: 'ln2', layer }, layerNormHooks(layer, 'ln2'))); // [batch, pos, d_model]
  return ctx.hook(blockHook(layer, 'hook_resid_post'), (out) => b.add(residMid, mlpOut, out));
}
