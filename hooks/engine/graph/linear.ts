/** Linear maps in the graph: x W + b with W as the model feeds it ([in, out], or feature-major [out, in]), and their backward pass. */
import type { GraphBuilder } from '../../onnx/builder.ts';
import type { GraphContext } from './context.ts';

/**
 * x [..., in] · W + bias -> [..., out]. `weight` is W [in, out], or with `featureMajor` Wᵀ
 * [out, in], multiplied as MatMul(x, Transpose(Wᵀ)), which onnxruntime fuses into one
 * FusedMatMul(transB). A fed weight (not prepacked) is packed by every run, and onnxruntime's
 * MLAS packs a transposed B from whole rows, much faster than the column panels of an [in, out]
 * one: fed, GPT-2 small runs within ~10-20% of prepacked weights at 64 tokens, ~5% at 1024.
 */
export function linear(b: GraphBuilder, x: string, weight: string, bias: string, featureMajor: boolean, out?: string): string {
  return b.add(b.matmul(x, featureMajor ? b.transpose(weight, [1, 0]) : weight), bias, out);
}

/** x W_name + b_name of block `layer` (W_in/b_in, W_out/b_out, W_O/b_O, …). */
export function blockLinear(ctx: GraphContext, x: string, layer: number, W: 'W_Q' | 'W_K' | 'W_V' | 'W_O' | 'W_in' | 'W_out', out?: string): string {
  const bias = `b_${W.slice(2)}`;
  return linear(ctx.b, x, ctx.weight(W, layer), ctx.weight(bias, layer), ctx.featureMajor, out);
}

/**
 * The backward pass of linear() with respect to its input: dy [..., out] -> dy Wᵀ [..., in]. A
 * feature-major Wᵀ [out, in] is multiplied as it is fed (no transpose); an [in, out] W is transposed.
 */
export function linearBackward(b: GraphBuilder, dy: string, weight: string, featureMajor: boolean, out?: string): string {
  return b.matmul(dy, featureMajor ? weight : b.transpose(weight, [1, 0]), out);
}

/** dy Wᵀ for W_name of block `layer`: the gradient of blockLinear()'s input. */
export function blockLinearBackward(ctx: GraphContext, dy: string, layer: number, W: 'W_Q' | 'W_K' | 'W_V' | 'W_O' | 'W_in' | 'W_out', out?: string): string {
  return linearBackward(ctx.b, dy, ctx.weight(W, layer), ctx.featureMajor, out);
}
