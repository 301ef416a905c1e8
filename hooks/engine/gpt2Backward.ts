/**
 * Builds GPT-2's backward pass into the forward graph's builder (gpt2Graph.ts), from the pieces in
 * graph/backward/ that mirror the forward's (unembed, layerNorm, block = attention + MLP, embed):
 * the gradient of a scalar metric with respect to the value at hook points, named `X_grad` where
 * cached or hooked. Weights get no gradient. Backward nodes read the forward's values by name, so
 * forward and backward are one graph, cut where JavaScript must run (segments.ts): at the logits
 * when a metric's gradient comes from JavaScript, and at gradients that backward hooks read.
 */
import type { HookedTransformerConfig } from '../config.ts';
import { blockHook, hookPointMap, layerNormHooks, type HookName, type OptionalHooks } from '../hookPoints.ts';
import { blockBackward } from './graph/backward/block.ts';
import { GradContext, type GradOptions } from './graph/backward/context.ts';
import { embeddingsBackward } from './graph/backward/embed.ts';
import { layerNormBackward } from './graph/backward/layerNorm.ts';
import { unembedBackward, type SeedKind } from './graph/backward/unembed.ts';
import type { GraphContext } from './graph/context.ts';

export { gradFeeds } from './graph/backward/context.ts';
export { SEED_FEEDS, type SeedKind } from './graph/backward/unembed.ts';

export interface BackwardOptions extends GradOptions {
  seed: SeedKind;
}

/**
 * The lowest layer the backward pass must reach: the lowest of the hook points whose gradient is
 * cached or hooked (-1 when that includes the embeddings; n_layers for ln_final only).
 */
export function lowestGradLayer(cfg: HookedTransformerConfig, optional: OptionalHooks, names: Iterable<HookName>): number {
  const info = hookPointMap(cfg, optional);
  let lowest = cfg.n_layers;
  for (const name of names) {
    const point = info.get(name);
    if (!point) throw new Error(`unknown hook point '${name}' for this model (see model.hookPoints())`);
    if (point.layer === null) lowest = name.startsWith('ln_final') ? lowest : -1;
    else lowest = Math.min(lowest, point.layer);
  }
  return lowest;
}

/**
 * Appends the backward pass to the forward graph of `ctx`: `names.logits` and `names.targets` are
 * the forward's logits and next-token targets (read by the loss seed), `names.tokens` its input,
 * `allowed` its attention mask of readable keys. Returns the hook points whose gradient it emits,
 * in the order the backward pass reaches them.
 */
export function appendBackward(
  ctx: GraphContext,
  opts: BackwardOptions,
  names: { logits: string; targets: string; tokens: string; allowed: string },
): HookName[] {
  const { cfg } = ctx;
  const g = new GradContext(ctx, opts);
  const lowest = lowestGradLayer(cfg, ctx.optional, [...opts.observed, ...opts.cuts]);
  const dFinal = unembedBackward(g, opts.seed, names); // [batch, pos, d_model]
  const finalResid = blockHook(cfg.n_layers - 1, 'hook_resid_post');
  let d = layerNormBackward(g, finalResid, { ln: 'ln_final', layer: null }, layerNormHooks(null, 'ln_final'), dFinal);
  for (let l = cfg.n_layers - 1; l >= Math.max(lowest, 0); l--) d = blockBackward(g, l, names.allowed, d);
  if (lowest < 0) embeddingsBackward(g, d);
  return g.gradOrder();
}
