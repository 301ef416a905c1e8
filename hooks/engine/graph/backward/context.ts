/**
 * What every piece of the backward graph builds with: the forward graph's context (the same
 * builder, so backward nodes read forward values by name) and hook points for gradients. At hook
 * point X the gradient of the metric with respect to X's value (the value that flowed downstream,
 * after any replacement) is `X_grad` (TransformerLens's cache key) where it is cached or hooked;
 * what flows upstream is that gradient, zeroed where the forward replaced X's value (an
 * intervention's mask, the entries a JavaScript forward hook changed), or, where backward hooks
 * run, whatever the engine feeds back as `X::grad_up`.
 */
import type { HookedTransformerConfig } from '../../../config.ts';
import { gradName, hookPointMap, type HookName, type OptionalHooks } from '../../../hookPoints.ts';
import type { GraphBuilder } from '../../../onnx/builder.ts';
import { interventionFeeds, type GraphContext, type WeightFeed } from '../context.ts';

/**
 * Feed names around a hook point's gradient: `upstream`, the gradient that flows on past a hook
 * point with backward hooks (their replacement, or the masked gradient); `changed`, the bool mask
 * of the entries a JavaScript forward hook changed (the hook point's shape).
 */
export const gradFeeds = (hook: HookName) => ({ upstream: `${hook}::grad_up`, changed: `${hook}::changed` });

export interface GradOptions {
  /** Hook points whose gradient is an output (`X_grad`). */
  observed: ReadonlySet<HookName>;
  /** Hook points with backward hooks: the graph is cut at `X_grad` and `X::grad_up` is fed. */
  cuts: ReadonlySet<HookName>;
  /** Hook points with JavaScript forward hooks: `X::changed` is fed. */
  forwardHooked: ReadonlySet<HookName>;
  /** Hook points with an in-graph intervention (its mask `X::mask`). */
  interventions: ReadonlySet<HookName>;
}

export class GradContext {
  private readonly dims: ReadonlyMap<HookName, { dims: readonly unknown[] }>;
  private readonly emittedOrder: HookName[] = [];

  constructor(readonly fwd: GraphContext, private readonly opts: GradOptions) {
    this.dims = hookPointMap(fwd.cfg, fwd.optional);
  }

  get b(): GraphBuilder { return this.fwd.b; }
  get cfg(): HookedTransformerConfig { return this.fwd.cfg; }
  get featureMajor(): boolean { return this.fwd.featureMajor; }
  get lnHasWeights(): boolean { return this.fwd.lnHasWeights; }
  get optional(): OptionalHooks { return this.fwd.optional; }

  weight(name: WeightFeed, layer: number | null): string {
    return this.fwd.weight(name, layer);
  }

  /** Whether the forward value at `name` may have been replaced (so a backward that reads its own op's output must recompute it). */
  replaced(name: HookName): boolean {
    return this.fwd.replaced(name);
  }

  /** Whether the forward computed `name` (hook_result only exists when asked for). */
  needs(name: HookName): boolean {
    return this.fwd.needs(name);
  }

  /**
   * The gradient `value` at hook point `name` (the metric's gradient with respect to the value that
   * flowed downstream): named `name_grad` where it is cached or hooked. Returns the gradient that
   * flows upstream, to the value computed before any replacement at this hook point.
   */
  grad(name: HookName, value: string): string {
    const { b } = this;
    const point = this.dims.get(name);
    if (!point) throw new Error(`internal: the backward graph emits '${name}', which is not one of this model's hook points`);
    const emitted = this.opts.observed.has(name) || this.opts.cuts.has(name);
    if (emitted) {
      b.op('Identity', [value], undefined, gradName(name));
      this.emittedOrder.push(name);
    }
    const shape = point.dims.map((_, i) => `${name}::d${i}`);
    if (this.opts.cuts.has(name)) return b.input(gradFeeds(name).upstream, 'float32', shape);
    let up = emitted ? gradName(name) : value;
    if (this.opts.interventions.has(name)) up = b.where(interventionFeeds(name).mask, b.f32(0), up);
    if (this.opts.forwardHooked.has(name)) up = b.where(b.input(gradFeeds(name).changed, 'bool', shape), b.f32(0), up);
    return up;
  }

  /** The hook points whose gradient this graph emits, in the order the backward pass reaches them. */
  gradOrder(): HookName[] {
    return [...this.emittedOrder];
  }
}
