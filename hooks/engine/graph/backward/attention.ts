/**
 * The backward pass of graph/attention.ts: from hook_attn_out's gradient through hook_result (when
 * the forward computed it), hook_z, hook_pattern, hook_attn_scores and hook_q/k/v down to the
 * inputs of the q, k and v projections. The derivation is the trainer's attention backward
 * (training/ops/kernels.ts), per head:
 *   z = P V:            dP = dz Vᵀ,  dV = Pᵀ dz
 *   P = softmax(S):     dS = P ⊙ (dP - Σ_k dP ⊙ P)
 *   S = Q Kᵀ / √d_head: dQ = dS K / √d_head,  dK = dSᵀ Q / √d_head  (masked scores pass nothing)
 */
import { blockHook } from '../../../hookPoints.ts';
import { blockLinearBackward } from '../linear.ts';
import type { GradContext } from './context.ts';

/** The gradients of the projections' inputs: [batch, pos, d_model], or per head [batch, pos, head, d_model]. */
export interface QkvInputGrads {
  Q: string;
  K: string;
  V: string;
}

/** dy [batch, pos, head, d_head], the gradient of x W_which + b_which -> the gradient of x ([batch, pos, (head,) d_model]). */
function projectBackward(g: GradContext, layer: number, which: 'Q' | 'K' | 'V', dy: string, perHead: boolean): string {
  const { b, cfg } = g;
  const { n_heads, d_head, d_model } = cfg;
  if (!perHead) return blockLinearBackward(g.fwd, b.reshape(dy, [0, 0, n_heads * d_head]), layer, `W_${which}`); // [batch, pos, d_model]
  const weight = g.weight(`W_${which}`, layer);
  const perHeadWT = g.featureMajor
    ? b.reshape(weight, [n_heads, d_head, d_model]) // [H, d_model] -> [head, d_head, d_model]
    : b.transpose(b.reshape(weight, [d_model, n_heads, d_head]), [1, 2, 0]); // [d_model, H] -> [head, d_head, d_model]
  return b.squeeze(b.matmul(b.unsqueeze(dy, [3]), perHeadWT), [3]); // [batch, pos, head, 1, d_head] · [head, d_head, d_model] -> [batch, pos, head, d_model]
}

/** hook_attn_out's gradient [batch, pos, d_model] -> hook_z's, through hook_result [batch, pos, head, d_model] when the forward computed it. */
function attentionOutputBackward(g: GradContext, layer: number, dOut: string): string {
  const { b, cfg } = g;
  const { n_heads, d_head, d_model } = cfg;
  const resultName = blockHook(layer, 'attn.hook_result');
  if (!g.needs(resultName)) return b.reshape(blockLinearBackward(g.fwd, dOut, layer, 'W_O'), [0, 0, n_heads, d_head]); // [batch, pos, head, d_head]
  const dResult = b.op('Expand', [b.unsqueeze(dOut, [2]), b.i64([1, 1, n_heads, 1])]); // [batch, pos, head, d_model]
  const dResultUp = g.grad(resultName, dResult);
  const W_O = g.weight('W_O', layer); // [d_model, H] feature-major, else [H, d_model]
  const perHeadWT = g.featureMajor
    ? b.transpose(b.reshape(W_O, [d_model, n_heads, d_head]), [1, 0, 2]) // [head, d_model, d_head]
    : b.transpose(b.reshape(W_O, [n_heads, d_head, d_model]), [0, 2, 1]); // [head, d_model, d_head]
  return b.squeeze(b.matmul(b.unsqueeze(dResultUp, [3]), perHeadWT), [3]); // [batch, pos, head, d_head]
}

/** The pattern as the softmax computed it (the forward's value, or recomputed from the scores where the pattern was replaced). */
function softmaxOutput(g: GradContext, layer: number): string {
  const { b } = g;
  const pattern = blockHook(layer, 'attn.hook_pattern');
  if (!g.replaced(pattern)) return pattern;
  const soft = b.op('Softmax', [blockHook(layer, 'attn.hook_attn_scores')], { axis: { i: -1 } });
  return b.where(b.op('IsNaN', [soft]), b.f32(0), soft); // [batch, head, query_pos, key_pos]
}

/**
 * Attention of block `layer` backward: dOut, the gradient of hook_attn_out [batch, pos, d_model] ->
 * the gradients of the q, k and v projections' inputs (per head when `perHead`). `allowed`: the
 * forward's mask of the keys each query may read.
 */
export function attentionBackward(g: GradContext, layer: number, perHead: boolean, allowed: string, dOut: string): QkvInputGrads {
  const { b, cfg } = g;
  const at = (s: 'attn.hook_q' | 'attn.hook_k' | 'attn.hook_v' | 'attn.hook_pattern' | 'attn.hook_attn_scores' | 'attn.hook_z') => blockHook(layer, s);
  const dOutUp = g.grad(blockHook(layer, 'hook_attn_out'), dOut);
  const dzUp = g.grad(at('attn.hook_z'), attentionOutputBackward(g, layer, dOutUp)); // [batch, pos, head, d_head]
  const dzh = b.transpose(dzUp, [0, 2, 1, 3]); // [batch, head, query_pos, d_head]

  // z = pattern · v
  const vT = b.transpose(at('attn.hook_v'), [0, 2, 3, 1]); // [batch, head, d_head, key_pos]
  const dPattern = b.matmul(dzh, vT); // [batch, head, query_pos, key_pos]
  const dvh = b.matmul(b.transpose(at('attn.hook_pattern'), [0, 1, 3, 2]), dzh); // [batch, head, key_pos, d_head]
  const dvUp = g.grad(at('attn.hook_v'), b.transpose(dvh, [0, 2, 1, 3])); // [batch, pos, head, d_head]

  // pattern = softmax(scores); masked scores (-inf) pass nothing: the softmax is 0 there.
  const dPatternUp = g.grad(at('attn.hook_pattern'), dPattern);
  const p = softmaxOutput(g, layer);
  const dScores = b.mul(p, b.sub(dPatternUp, b.reduceSum(b.mul(dPatternUp, p), [-1], true))); // [batch, head, query_pos, key_pos]
  const dScoresUp = g.grad(at('attn.hook_attn_scores'), dScores);

  // scores = q · kᵀ / √d_head where allowed
  const dRaw = b.div(b.where(allowed, dScoresUp, b.f32(0)), b.f32(Math.sqrt(cfg.d_head))); // [batch, head, query_pos, key_pos]
  const dqh = b.matmul(dRaw, b.transpose(at('attn.hook_k'), [0, 2, 1, 3])); // [batch, head, query_pos, d_head]
  const dkh = b.matmul(b.transpose(dRaw, [0, 1, 3, 2]), b.transpose(at('attn.hook_q'), [0, 2, 1, 3])); // [batch, head, key_pos, d_head]
  const dqUp = g.grad(at('attn.hook_q'), b.transpose(dqh, [0, 2, 1, 3])); // [batch, pos, head, d_head]
  const dkUp = g.grad(at('attn.hook_k'), b.transpose(dkh, [0, 2, 1, 3]));

  return {
    Q: projectBackward(g, layer, 'Q', dqUp, perHead),
    K: projectBackward(g, layer, 'K', dkUp, perHead),
    V: projectBackward(g, layer, 'V', dvUp, perHead),
  };
}
