/**
 * What every piece of the GPT-2 graph builds with: the ONNX builder, the config, the weight feeds
 * by TransformerLens name, and hook points (TransformerLens's HookPoint: an identity step around a
 * value, named after the hook). The hooked forward graph emits each hook point as a named value
 * (replaced in the graph where an intervention says so); the KV-cache decoding graph uses the same
 * pieces with plain values (no hook points).
 */
import type { HookedTransformerConfig } from '../../config.ts';
import { hookPointMap, type HookName, type OptionalHooks } from '../../hookPoints.ts';
import { GraphBuilder } from '../../onnx/builder.ts';
import { weightDims, weightKey } from '../../weightStore.ts';

/** A weight's name within its layer: `W_Q`, `b_in`, `ln1.w`, … (`W_E`, `W_pos`, `W_U`, `b_U`, `ln_final.w` outside the blocks). */
export type WeightFeed = string;

/** Feed names of an in-graph intervention at a hook point. */
export const interventionFeeds = (hook: HookName) => ({ mask: `${hook}::mask`, value: `${hook}::value` });

export interface GraphContext {
  readonly b: GraphBuilder;
  readonly cfg: HookedTransformerConfig;
  /** The matrix weights are fed feature-major, [out, in] (see linear()). */
  readonly featureMajor: boolean;
  /** Whether the LayerNorms carry weights (false once folded: TransformerLens's LNPre). */
  readonly lnHasWeights: boolean;
  /** Whether an attention mask (padding) is fed: fully masked pattern rows become 0. */
  readonly hasAttentionMask: boolean;
  /** TransformerLens's optional hook points this model has. */
  readonly optional: OptionalHooks;
  /** The weight `name` of `layer` (null outside the blocks) as a graph input, declared on first use. */
  weight(name: WeightFeed, layer: number | null): string;
  /**
   * Emits hook point `name`: `compute(out)` writes its value into `out`; returns the name of the
   * value that flows on (the hook point itself, or a plain value where there are no hook points).
   */
  hook(name: HookName, compute: (out: string) => void): string;
  /** Whether `name`'s value is asked for (cached, hooked or intervened on): optional values like hook_result are computed then. */
  needs(name: HookName): boolean;
  /** Whether `name` is observed (its value must exist as a graph value). */
  observed(name: HookName): boolean;
  /** Whether the value at `name` may be replaced (hooked from JavaScript or intervened on): what flows on must then be computed from it. */
  replaced(name: HookName): boolean;
}

interface ContextOptions {
  featureMajor: boolean;
  lnHasWeights: boolean;
  hasAttentionMask: boolean;
  optional: OptionalHooks;
}

abstract class BaseContext implements GraphContext {
  readonly b = new GraphBuilder();
  readonly featureMajor: boolean;
  readonly lnHasWeights: boolean;
  readonly hasAttentionMask: boolean;
  readonly optional: OptionalHooks;

  constructor(readonly cfg: HookedTransformerConfig, opts: ContextOptions) {
    this.featureMajor = opts.featureMajor;
    this.lnHasWeights = opts.lnHasWeights;
    this.hasAttentionMask = opts.hasAttentionMask;
    this.optional = opts.optional;
  }

  weight(name: WeightFeed, layer: number | null): string {
    return this.b.input(weightKey(name, layer), 'float32', weightDims(this.cfg, name, this.featureMajor));
  }

  abstract hook(name: HookName, compute: (out: string) => void): string;
  abstract needs(name: HookName): boolean;
  abstract observed(name: HookName): boolean;
  abstract replaced(name: HookName): boolean;
}

/** Where a graph has no hook points (the KV-cache decoding graph): each hook point is just its value. */
export class PlainContext extends BaseContext {
  hook(_name: HookName, compute: (out: string) => void): string {
    const out = this.b.tmp('v');
    compute(out);
    return out;
  }
  needs(): boolean { return false; }
  observed(): boolean { return false; }
  replaced(): boolean { return false; }
}

export interface HookedContextOptions extends ContextOptions {
  /** Hook points whose values must exist as such (cached, hooked from JS, or read by the caller). */
  observed: ReadonlySet<HookName>;
  /** Hook points with an in-graph intervention `Where(mask, value, raw)`. */
  interventions: ReadonlySet<HookName>;
  /** Hook points hooked from JavaScript (the graph is cut there; their replacement flows on). */
  cuts: ReadonlySet<HookName>;
  /** Hook points whose gradient a backward pass emits or hooks (their value must exist: hook_result is computed). */
  gradients?: ReadonlySet<HookName>;
}

/** The hooked forward graph: every hook point is a value named after it, replaced where an intervention says so. */
export class HookedContext extends BaseContext {
  private readonly points: ReadonlyMap<HookName, { dims: readonly unknown[] }>;
  private readonly emitted = new Set<HookName>();

  constructor(cfg: HookedTransformerConfig, private readonly opts: HookedContextOptions) {
    super(cfg, opts);
    this.points = hookPointMap(cfg, opts.optional);
  }

  hook(name: HookName, compute: (out: string) => void): string {
    const point = this.points.get(name);
    if (!point) throw new Error(`internal: the graph emits '${name}', which is not one of this model's hook points`);
    this.emitted.add(name);
    if (!this.opts.interventions.has(name)) {
      compute(name);
      return name;
    }
    // Where(mask, value, raw): the fed mask and value have the hook point's rank, broadcast to its shape.
    const raw = `${name}::raw`;
    compute(raw);
    const feeds = interventionFeeds(name);
    const dims = point.dims.map((_, i) => `${name}::d${i}`);
    this.b.input(feeds.mask, 'bool', dims);
    this.b.input(feeds.value, 'float32', dims);
    this.b.where(feeds.mask, feeds.value, raw, name);
    return name;
  }

  needs(name: HookName): boolean {
    return this.opts.observed.has(name) || this.opts.interventions.has(name) || (this.opts.gradients?.has(name) ?? false);
  }

  observed(name: HookName): boolean {
    return this.opts.observed.has(name);
  }

  replaced(name: HookName): boolean {
    return this.opts.cuts.has(name) || this.opts.interventions.has(name);
  }

  /** The hook points this graph has, in forward order (the order of the one list). */
  hookOrder(): HookName[] {
    return [...this.points.keys()].filter((n) => this.emitted.has(n));
  }
}
