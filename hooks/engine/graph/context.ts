/**
 * What every piece of the GPT-2 graph builds with: the ONNX builder, the config, the weight feeds
 * by TransformerLens name, and hook points (TransformerLens's HookPoint: an identity step around a
 * value, named after the hook). The hooked forward graph emits each hook point as a named value
 * (replaced in the graph where an intervention says so); the KV-cache decoding graph uses the same
 * pieces with plain values (no hook points). In both, a fed vector can be added at a hook point
 * (steering), and a sparse autoencoder spliced in at one (sae.ts): what flows on is then its output.
 */
import type { HookedTransformerConfig } from '../../config.ts';
import { hookPointMap, withSaeHookPoints, type HookName, type HookPointInfo, type OptionalHooks } from '../../hookPoints.ts';
import { GraphBuilder } from '../../onnx/builder.ts';
import { weightDims, weightKey } from '../../weightStore.ts';
import { spliceSae, type SaeSplice } from './sae.ts';

/** A weight's name within its layer: `W_Q`, `b_in`, `ln1.w`, … (`W_E`, `W_pos`, `W_U`, `b_U`, `ln_final.w` outside the blocks). */
export type WeightFeed = string;

/** Feed names of an in-graph intervention at a hook point: the replacement's mask and value, and the vector added. */
export const interventionFeeds = (hook: HookName) => ({ mask: `${hook}::mask`, value: `${hook}::value`, add: `${hook}::add` });

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
  /** Whether the value at `name` may be replaced or edited (hooked from JavaScript, intervened on, added to): what flows on must then be computed from it. */
  replaced(name: HookName): boolean;
}

export interface ContextOptions {
  featureMajor: boolean;
  lnHasWeights: boolean;
  hasAttentionMask: boolean;
  optional: OptionalHooks;
  /** Hook points where a fed vector `<hook>::add` (the hook point's rank, broadcast to its shape) is added: steering. */
  additions?: ReadonlySet<HookName>;
  /** Sparse autoencoders spliced at hook points. */
  saes?: readonly SaeSplice[];
}

abstract class BaseContext implements GraphContext {
  readonly b = new GraphBuilder();
  readonly featureMajor: boolean;
  readonly lnHasWeights: boolean;
  readonly hasAttentionMask: boolean;
  readonly optional: OptionalHooks;
  protected readonly additions: ReadonlySet<HookName>;
  private readonly saes: ReadonlyMap<HookName, SaeSplice>;
  /** The hook points of this graph (the model's and its spliced SAEs'), in forward order. */
  protected readonly points: ReadonlyMap<HookName, HookPointInfo>;

  constructor(readonly cfg: HookedTransformerConfig, opts: ContextOptions) {
    this.featureMajor = opts.featureMajor;
    this.lnHasWeights = opts.lnHasWeights;
    this.hasAttentionMask = opts.hasAttentionMask;
    this.optional = opts.optional;
    this.additions = opts.additions ?? new Set();
    const saes = opts.saes ?? [];
    this.saes = new Map(saes.map((s) => [s.hook, s]));
    this.points = withSaeHookPoints(hookPointMap(cfg, opts.optional), saes.map((s) => ({ hook: s.hook, d_in: s.spec.d_in, d_sae: s.spec.d_sae, useErrorTerm: s.useErrorTerm })));
  }

  weight(name: WeightFeed, layer: number | null): string {
    return this.b.input(weightKey(name, layer), 'float32', weightDims(this.cfg, name, this.featureMajor));
  }

  /**
   * Emits hook point `name` (its value, edited where the graph says so), then splices in the SAE
   * attached there, whose output is what flows on.
   */
  hook(name: HookName, compute: (out: string) => void): string {
    const point = this.points.get(name);
    if (!point) throw new Error(`internal: the graph emits '${name}', which is not one of this model's hook points`);
    const value = this.emit(name, point, compute);
    const splice = this.saes.get(name);
    return splice ? spliceSae(this, splice, value, point.dims.length) : value;
  }

  /** value + the fed vector `<name>::add` (the hook point's rank, broadcast to its shape), into `out`. */
  protected addSteering(name: HookName, point: HookPointInfo, value: string, out?: string): string {
    const dims = point.dims.map((_, i) => `${name}::d${i}`);
    return this.b.add(value, this.b.input(interventionFeeds(name).add, 'float32', dims), out);
  }

  /** The value of hook point `name`: `compute(out)` writes the raw value into `out`; replacements, then additions, follow. */
  protected abstract emit(name: HookName, point: HookPointInfo, compute: (out: string) => void): string;
  abstract needs(name: HookName): boolean;
  abstract observed(name: HookName): boolean;
  abstract replaced(name: HookName): boolean;
}

/** Where a graph has no hook points (the KV-cache decoding graph): each hook point is just its value. */
export class PlainContext extends BaseContext {
  protected emit(name: HookName, point: HookPointInfo, compute: (out: string) => void): string {
    const out = this.b.tmp('v');
    compute(out);
    return this.additions.has(name) ? this.addSteering(name, point, out) : out;
  }
  needs(): boolean { return false; }
  observed(): boolean { return false; }
  replaced(name: HookName): boolean { return this.additions.has(name); }
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
  private readonly emitted = new Set<HookName>();

  constructor(cfg: HookedTransformerConfig, private readonly opts: HookedContextOptions) {
    super(cfg, opts);
  }

  protected emit(name: HookName, point: HookPointInfo, compute: (out: string) => void): string {
    this.emitted.add(name);
    const replace = this.opts.interventions.has(name);
    const add = this.additions.has(name);
    if (!replace && !add) {
      compute(name);
      return name;
    }
    const raw = `${name}::raw`;
    compute(raw);
    let value = raw;
    if (replace) {
      // Where(mask, value, raw): the fed mask and value have the hook point's rank, broadcast to its shape.
      const feeds = interventionFeeds(name);
      const dims = point.dims.map((_, i) => `${name}::d${i}`);
      this.b.input(feeds.mask, 'bool', dims);
      this.b.input(feeds.value, 'float32', dims);
      value = this.b.where(feeds.mask, feeds.value, raw, add ? undefined : name);
    }
    if (add) this.addSteering(name, point, value, name);
    return name;
  }

  needs(name: HookName): boolean {
    return this.opts.observed.has(name) || this.opts.interventions.has(name) || this.additions.has(name) || (this.opts.gradients?.has(name) ?? false);
  }

  observed(name: HookName): boolean {
    return this.opts.observed.has(name);
  }

  replaced(name: HookName): boolean {
    return this.opts.cuts.has(name) || this.opts.interventions.has(name) || this.additions.has(name);
  }

  /** The hook points this graph has, in forward order (the order of the one list). */
  hookOrder(): HookName[] {
    return [...this.points.keys()].filter((n) => this.emitted.has(n));
  }
}
