/** The backward pass of graph/mlp.ts: hook_mlp_out, mlp.hook_post and mlp.hook_pre's gradients, down to the MLP's input. */
import { blockHook } from '../../../hookPoints.ts';
import { blockLinearBackward } from '../linear.ts';
import type { GradContext } from './context.ts';

const SQRT_2_OVER_PI = Math.sqrt(2 / Math.PI);

/**
 * The derivative of the MLP's activation at `pre`, as the forward graph computes the activation
 * (ONNX Gelu: exact for 'gelu', the tanh approximation for gelu_new and gelu_fast; Relu), with
 * ops/activations.ts's formulas:
 *   tanh approximation: t = tanh(√(2/π)(x + 0.044715x³)), 0.5(1 + t) + 0.5x(1 - t²)√(2/π)(1 + 3·0.044715x²)
 *   exact:              0.5(1 + erf(x/√2)) + x·exp(-x²/2)/√(2π)
 *   relu:               1 where x > 0, else 0
 */
function activationDerivative(g: GradContext, pre: string): string {
  const { b } = g;
  switch (g.cfg.act_fn) {
    case 'relu':
      return b.op('Cast', [b.op('Greater', [pre, b.f32(0)])], { to: { i: 1 } });
    case 'gelu': {
      const cdf = b.mul(b.f32(0.5), b.add(b.f32(1), b.op('Erf', [b.mul(pre, b.f32(Math.SQRT1_2))])));
      const pdf = b.mul(b.op('Exp', [b.mul(b.mul(pre, pre), b.f32(-0.5))]), b.f32(1 / Math.sqrt(2 * Math.PI)));
      return b.add(cdf, b.mul(pre, pdf));
    }
    default: { // gelu_new, gelu_fast
      const x2 = b.mul(pre, pre);
      const t = b.op('Tanh', [b.mul(b.f32(SQRT_2_OVER_PI), b.add(pre, b.mul(b.f32(0.044715), b.mul(x2, pre))))]);
      const dInner = b.mul(b.f32(SQRT_2_OVER_PI), b.add(b.f32(1), b.mul(b.f32(3 * 0.044715), x2)));
      const dTanh = b.mul(b.sub(b.f32(1), b.mul(t, t)), dInner);
      return b.add(b.mul(b.f32(0.5), b.add(b.f32(1), t)), b.mul(b.mul(b.f32(0.5), pre), dTanh));
    }
  }
}

/** dOut, the gradient of block `layer`'s hook_mlp_out [batch, pos, d_model] -> the gradient of the MLP's input (ln2's output) [batch, pos, d_model]. */
export function mlpBackward(g: GradContext, layer: number, dOut: string): string {
  const { b } = g;
  const dOutUp = g.grad(blockHook(layer, 'hook_mlp_out'), dOut);
  const dPost = blockLinearBackward(g.fwd, dOutUp, layer, 'W_out'); // [batch, pos, d_mlp]
  const dPostUp = g.grad(blockHook(layer, 'mlp.hook_post'), dPost);
  const pre = blockHook(layer, 'mlp.hook_pre'); // the forward value the activation read
  const dPre = b.mul(dPostUp, activationDerivative(g, pre)); // [batch, pos, d_mlp]
  const dPreUp = g.grad(pre, dPre);
  return blockLinearBackward(g.fwd, dPreUp, layer, 'W_in'); // [batch, pos, d_model]
}
