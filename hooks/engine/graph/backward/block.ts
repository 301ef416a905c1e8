/**
 * The backward pass of graph/block.ts: hook_resid_post's gradient -> the MLP and ln2 -> hook_resid_mid's
 * (the sum of what reaches it around and through the MLP) -> attention and ln1 (per head with
 * TransformerLens's attn_in or split q/k/v inputs) -> hook_resid_pre's, which flows into the previous
 * block's resid_post.
 */
import { blockHook, layerNormHooks } from '../../../hookPoints.ts';
import { attentionBackward, type QkvInputGrads } from './attention.ts';
import type { GradContext } from './context.ts';
import { layerNormBackward } from './layerNorm.ts';
import { mlpBackward } from './mlp.ts';

/** [batch, pos, head, d_model] -> the gradient of the repeated [batch, pos, d_model]: the sum over heads. */
const sumHeads = (g: GradContext, d: string) => g.b.reduceSum(d, [2], false);

/**
 * The gradients of the q, k and v inputs -> the gradient of resid_pre that goes through ln1 (and
 * TransformerLens's per-head input hook points), [batch, pos, d_model].
 */
function attentionInputsBackward(g: GradContext, layer: number, d: QkvInputGrads): string {
  const { b } = g;
  const at = { ln: 'ln1', layer } as const;
  const hooks = layerNormHooks(layer, 'ln1');
  const residPre = blockHook(layer, 'hook_resid_pre');
  if (g.optional.useSplitQkvInput) {
    // TransformerLens applies ln1 to each input (its hook points record the value input's).
    const perHeadInput = (s: 'hook_q_input' | 'hook_k_input' | 'hook_v_input', dLn: string, withHooks: boolean) => {
      const name = blockHook(layer, s);
      return sumHeads(g, g.grad(name, layerNormBackward(g, name, at, withHooks ? hooks : null, dLn)));
    };
    const dq = perHeadInput('hook_q_input', d.Q, false);
    const dk = perHeadInput('hook_k_input', d.K, false);
    const dv = perHeadInput('hook_v_input', d.V, true);
    // hook_attn_in is computed beside the split inputs but read by nothing: no gradient reaches it.
    const attnIn = blockHook(layer, 'hook_attn_in');
    if (g.optional.useAttnIn) g.grad(attnIn, b.mul(attnIn, b.f32(0)));
    return b.add(b.add(dq, dk), dv);
  }
  const dx1 = b.add(b.add(d.Q, d.K), d.V); // [batch, pos, (head,) d_model]
  if (!g.optional.useAttnIn) return layerNormBackward(g, residPre, at, hooks, dx1);
  const attnIn = blockHook(layer, 'hook_attn_in');
  return sumHeads(g, g.grad(attnIn, layerNormBackward(g, attnIn, at, hooks, dx1)));
}

/**
 * Block `layer` backward: dPost, the gradient of its hook_resid_post [batch, pos, d_model] -> the
 * gradient of the residual stream entering it (upstream of its hook_resid_pre).
 */
export function blockBackward(g: GradContext, layer: number, allowed: string, dPost: string): string {
  const { b } = g;
  const dPostUp = g.grad(blockHook(layer, 'hook_resid_post'), dPost);
  const mlpIn = g.optional.useHookMlpIn ? blockHook(layer, 'hook_mlp_in') : blockHook(layer, 'hook_resid_mid');
  const dMlpInput = layerNormBackward(g, mlpIn, { ln: 'ln2', layer }, layerNormHooks(layer, 'ln2'), mlpBackward(g, layer, dPostUp));
  const dMidViaMlp = g.optional.useHookMlpIn ? g.grad(blockHook(layer, 'hook_mlp_in'), dMlpInput) : dMlpInput;
  const dMidUp = g.grad(blockHook(layer, 'hook_resid_mid'), b.add(dPostUp, dMidViaMlp));
  const perHead = g.optional.useSplitQkvInput === true || g.optional.useAttnIn === true; // as graph/block.ts's attentionInputs
  const dQkv = attentionBackward(g, layer, perHead, allowed, dMidUp);
  return g.grad(blockHook(layer, 'hook_resid_pre'), b.add(dMidUp, attentionInputsBackward(g, layer, dQkv)));
}
