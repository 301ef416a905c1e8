/** TransformerLens's MLP: W_in, the activation function, W_out (mlp.hook_pre, mlp.hook_post, hook_mlp_out). */
import { blockHook } from '../../hookPoints.ts';
import type { GraphContext } from './context.ts';
import { blockLinear } from './linear.ts';

/** The activation function of the MLP (gelu_new and gelu_fast are the tanh approximation). */
function activation(ctx: GraphContext, pre: string, out: string): void {
  const { b } = ctx;
  switch (ctx.cfg.act_fn) {
    case 'relu': b.op('Relu', [pre], undefined, out); return;
    case 'gelu': b.op('Gelu', [pre], undefined, out); return;
    default: b.op('Gelu', [pre], { approximate: { s: 'tanh' } }, out); // gelu_new, gelu_fast
  }
}

/** The MLP of block `layer` on its LayerNormed input x [batch, pos, d_model] -> hook_mlp_out [batch, pos, d_model]. */
export function mlp(ctx: GraphContext, layer: number, x: string): string {
  const pre = ctx.hook(blockHook(layer, 'mlp.hook_pre'), (out) => blockLinear(ctx, x, layer, 'W_in', out)); // [batch, pos, d_mlp]
  const post = ctx.hook(blockHook(layer, 'mlp.hook_post'), (out) => activation(ctx, pre, out)); // [batch, pos, d_mlp]
  return ctx.hook(blockHook(layer, 'hook_mlp_out'), (out) => blockLinear(ctx, post, layer, 'W_out', out)); // [batch, pos, d_model]
}
