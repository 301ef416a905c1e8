/** TransformerLens's Unembed (x W_U + b_U) and what the engine reads around it: rows at chosen positions, token log-probs. */
import type { GraphBuilder } from '../../onnx/builder.ts';
import type { GraphContext } from './context.ts';
import { linear } from './linear.ts';

/** The final LayerNormed residual [batch, pos, d_model] -> logits [batch, pos, d_vocab]. */
export function unembed(ctx: GraphContext, x: string, out?: string): string {
  return linear(ctx.b, x, ctx.weight('W_U', null), ctx.weight('b_U', null), ctx.featureMajor, out);
}

/** Only the rows at `positions` [batch, k] (int64): x [batch, pos, d_model] -> [batch, k, d_model]. */
export function gatherRows(b: GraphBuilder, d_model: number, x: string, positions: string): string {
  const index = b.op('Expand', [b.unsqueeze(positions, [2]), b.op('Concat', [b.op('Shape', [positions]), b.i64([d_model])], { axis: { i: 0 } })]);
  return b.op('GatherElements', [x, index], { axis: { i: 1 } });
}

/** log Σ exp over the last axis: logits [..., d_vocab] -> [...]. */
export function reduceLogSumExp(b: GraphBuilder, logits: string, out?: string): string {
  return b.op('ReduceLogSumExp', [logits, b.i64([-1])], { keepdims: { i: 0 } }, out);
}

/** The logit of each row's target: logits [..., d_vocab], targets [...] (int64) -> [...]. */
export function targetLogits(b: GraphBuilder, logits: string, targets: string, out?: string): string {
  return b.squeeze(b.op('GatherElements', [logits, b.unsqueeze(targets, [-1])], { axis: { i: -1 } }), [-1], out);
}

/** log p(targets[b, p]) = logits[b, p, target] - logsumexp(logits[b, p]): logits [batch, pos, d_vocab], targets [batch, pos] -> [batch, pos]. */
export function tokenLogprobs(b: GraphBuilder, logits: string, targets: string, out?: string): string {
  const lse = reduceLogSumExp(b, logits); // [batch, pos]
  return b.sub(targetLogits(b, logits, targets), lse, out);
}
