/**
 * The backward pass of graph/layerNorm.ts (TransformerLens's LayerNorm / LayerNormPre), through its
 * hook points: hook_normalized's gradient, then hook_scale's (the scale is a value of the forward
 * pass, so the gradient reaches x through it too, as in TransformerLens, which does not detach it).
 * The same derivation as ops/layerNorm.ts's layerNormBackward, split at the scale:
 *   c = x - mean(x), s = sqrt(mean(c²) + eps), y = (c / s) · w + b
 *   dxn = dy · w;  ds = -Σ dxn · c / s²;  dc = dxn / s + ds · c / (d_model · s);  dx = dc - mean(dc)
 */
import type { HookName } from '../../../hookPoints.ts';
import type { LayerNormAt } from '../layerNorm.ts';
import type { GradContext } from './context.ts';

/**
 * dy, the gradient of layerNorm(x)'s output [..., d_model] -> the gradient of x [..., d_model].
 * `hooks`: the LayerNorm's hook points (their gradients are emitted), or null for one without.
 */
export function layerNormBackward(g: GradContext, x: string, at: LayerNormAt, hooks: { scale: HookName; normalized: HookName } | null, dy: string): string {
  const { b, cfg } = g;
  const dyUp = hooks ? g.grad(hooks.normalized, dy) : dy; // [..., d_model]
  const centred = b.sub(x, b.reduceMean(x, [-1], true)); // [..., d_model]
  const scale = b.op('Sqrt', [b.add(b.reduceMean(b.mul(centred, centred), [-1], true), b.f32(cfg.eps))]); // [..., 1], as computed
  // The scale the forward divided by: the hook point's value where it may have been replaced.
  const used = hooks && g.replaced(hooks.scale) ? hooks.scale : scale;
  const dxn = g.lnHasWeights ? b.mul(dyUp, g.weight(`${at.ln}.w`, at.layer)) : dyUp; // [..., d_model]
  const dScale = b.div(b.op('Neg', [b.reduceSum(b.mul(dxn, centred), [-1], true)]), b.mul(used, used)); // [..., 1]
  const dScaleUp = hooks ? g.grad(hooks.scale, dScale) : dScale;
  const viaScale = b.mul(dScaleUp, b.div(centred, b.mul(scale, b.f32(cfg.d_model)))); // [..., d_model]
  const dCentred = b.add(b.div(dxn, used), viaScale);
  return b.sub(dCentred, b.reduceMean(dCentred, [-1], true)); // [..., d_model]
}
