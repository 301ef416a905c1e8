/** TransformerLens's LayerNorm / LayerNormPre over the last axis, with its hook_scale and hook_normalized. */
import type { HookName } from '../../hookPoints.ts';
import type { GraphContext } from './context.ts';

/** Which LayerNorm: ln1 / ln2 of a block, or ln_final (layer null). */
export interface LayerNormAt {
  ln: 'ln1' | 'ln2' | 'ln_final';
  layer: number | null;
}

/** The LayerNorm's weight and bias inputs, or null once folded (LNPre: unit scale, zero bias). */
function lnWeights(ctx: GraphContext, at: LayerNormAt): { w: string; b: string } | null {
  if (!ctx.lnHasWeights) return null;
  return { w: ctx.weight(`${at.ln}.w`, at.layer), b: ctx.weight(`${at.ln}.b`, at.layer) };
}

/**
 * x [..., d_model] -> LayerNorm(x) [..., d_model]. `hooks`: the LayerNorm's hook points, or null
 * for a LayerNorm without them (the query and key inputs with split q/k/v inputs). onnxruntime's
 * fused LayerNormalization computes it, its InvStdDev output giving hook_scale = sqrt(var + eps)
 * when asked for; when the scale is hooked or intervened on, the LayerNorm is written out so that
 * the new scale flows on.
 */
export function layerNorm(ctx: GraphContext, x: string, at: LayerNormAt, hooks: { scale: HookName; normalized: HookName } | null): string {
  const { b, cfg } = ctx;
  const weights = lnWeights(ctx, at);
  const wt = weights?.w ?? b.f32Fill(cfg.d_model, 1);
  const bs = weights?.b ?? b.f32Fill(cfg.d_model, 0);
  const fused = (out: string, invStd?: string) =>
    b.opMulti('LayerNormalization', [x, wt, bs], invStd ? [out, '', invStd] : [out], { axis: { i: -1 }, epsilon: { f: cfg.eps } });
  if (hooks === null) {
    const out = b.tmp('ln');
    fused(out);
    return out;
  }
  if (!ctx.replaced(hooks.scale)) {
    const invStd = ctx.observed(hooks.scale) ? b.tmp('inv_std') : undefined; // [..., 1]
    const normalized = ctx.hook(hooks.normalized, (out) => fused(out, invStd)); // [..., d_model]
    if (invStd) ctx.hook(hooks.scale, (out) => b.op('Reciprocal', [invStd], undefined, out)); // [..., 1]
    return normalized;
  }
  // By hand: centre, scale by sqrt(var + eps) (the hook point), then the LayerNorm's weights.
  const centred = b.sub(x, b.reduceMean(x, [-1], true)); // [..., d_model]
  const scale = ctx.hook(hooks.scale, (out) => {
    const variance = b.reduceMean(b.mul(centred, centred), [-1], true);
    b.op('Sqrt', [b.add(variance, b.f32(cfg.eps))], undefined, out); // [..., 1]
  });
  return ctx.hook(hooks.normalized, (out) => {
    const normalized = b.div(centred, scale); // [..., d_model]
    if (weights) b.add(b.mul(normalized, weights.w), weights.b, out);
    else b.op('Identity', [normalized], undefined, out);
  });
}
