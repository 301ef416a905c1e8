/**
 * Runs GPT-2 on onnxruntime with hooks: builds (and caches) the graph variant a request needs,
 * cuts it at the hook points hooked from JavaScript, and runs the segments in order, handing each
 * cut value to its JS hooks and feeding what they return to the rest of the model. With a backward
 * pass the same graph goes on past the logits (gpt2Backward.ts): cut at the logits when a metric's
 * gradient comes from JavaScript, and at the gradients backward hooks read.
 */
import type { HookedTransformerConfig } from '../config.ts';
import { blockHook, gradName, hookPointMap, hookShape, withSaeHookPoints, type HookName, type HookPointInfo, type OptionalHooks } from '../hookPoints.ts';
import { Tensor } from '../tensor.ts';
import { weightDims, type WeightStore } from '../weightStore.ts';
import { gradFeeds, SEED_FEEDS, type SeedKind } from './gpt2Backward.ts';
import { buildGpt2Graph, interventionFeeds, type GraphOptions } from './gpt2Graph.ts';
import { buildDecodeGraph, kvNames } from './decodeGraph.ts';
import { saeWeightDims, saeWeightKey, type SaeSplice, type SaeWeightName } from './graph/sae.ts';
import { bool, createSession, f32, fromTensor, int64Rows, runSession, SessionCache, toTensor, type OrtValue, type Session, type SessionConfig } from './runtime.ts';
import { partitionGraph } from './segments.ts';
import { UnembedHead } from './unembedHead.ts';

/** What a hook function gets as its second argument (TransformerLens's HookPoint). */
export interface HookPoint {
  name: HookName;
  /** The block index, or null outside the blocks. */
  layer(): number | null;
}

/** A forward hook: may return a replacement of the same shape, or nothing to keep the value. */
export type HookFn = (activation: Tensor, hook: HookPoint) => Tensor | void | Promise<Tensor | void>;

/**
 * A backward hook: gets the gradient at a hook point (the metric's gradient with respect to the
 * value that flowed downstream) and may return a replacement of the same shape, which is what flows
 * upstream (TransformerLens semantics).
 */
export type BwdHookFn = (grad: Tensor, hook: HookPoint) => Tensor | void | Promise<Tensor | void>;

/** A metric's value and its gradient with respect to the logits it was given (same shape). */
export interface SeedGradient {
  value: number;
  gradient: Tensor;
}

/**
 * Where a backward pass starts:
 * - `loss`: Σ_(b,p) weights[b][p] · -log p(targets[b][p]) (the request's targets), in the graph;
 * - `logits`: a gradient JavaScript computes from the logits: `fn` gets the logits [batch, pos, d_vocab],
 *   or at `positions` [batch, k] the rows [batch, k, d_vocab], and returns the metric's value and
 *   its gradient with respect to them. Rows at padded positions are zeroed.
 */
export type EngineSeed =
  | { kind: 'loss'; weights: number[][] }
  | { kind: 'logits'; positions?: number[][]; fn: (logits: Tensor) => SeedGradient | Promise<SeedGradient> };

export interface EngineBackward {
  seed: EngineSeed;
  /** Hook points whose gradient is returned. */
  observe: ReadonlySet<HookName>;
  /** Backward hooks by hook point. */
  hooks?: ReadonlyMap<HookName, readonly BwdHookFn[]>;
}

/** The cut at the logits, where a metric's gradient is computed in JavaScript. */
const LOGITS_CUT = 'logits';

/**
 * An in-graph intervention: where `mask` is true the value becomes `value` (both broadcast to the
 * hook's shape, same rank), and then `add` is added (steering; same rank, broadcast). Either part may
 * be absent.
 */
export interface Intervention {
  mask?: { shape: number[]; data: Uint8Array };
  value?: Tensor;
  add?: Tensor;
}

/** A sparse autoencoder spliced into a run: where and how (graph/sae.ts), and its weights in the layout the graph is fed. */
export interface EngineSae extends SaeSplice {
  weights: ReadonlyMap<SaeWeightName, Float32Array>;
}

/** What a KV-cache decoding step runs besides the model: steering vectors added at hook points, spliced SAEs. */
export interface DecodeExtras {
  /** A vector added at every new position of each hook point ([1, 1, d] or the hook point's rank with batch and position axes of 1). */
  additions?: ReadonlyMap<HookName, Tensor>;
  saes?: readonly EngineSae[];
}

export interface EngineRequest {
  tokens: number[][]; // [batch, pos]
  attentionMask?: number[][]; // [batch, pos], 1 = real token
  observe?: ReadonlySet<HookName>;
  hooks?: ReadonlyMap<HookName, readonly HookFn[]>;
  interventions?: ReadonlyMap<HookName, Intervention>;
  /** Sparse autoencoders spliced at hook points; their hook points can be observed, hooked and intervened on. */
  saes?: readonly EngineSae[];
  logits?: boolean;
  /** Next-token targets [batch, pos] (or [batch, k] with logitPositions); when given, `tokenLogprobs` is returned. */
  targets?: number[][];
  /** Start the run after this hook point, with this value there (earlier layers are not run). */
  startAt?: { hook: HookName; value: Tensor };
  /** End the run at this hook point (returned among the activations; no logits). */
  stopAt?: HookName;
  /** Compute logits only at these positions [batch, k]: logits are then [batch, k, d_vocab]. */
  logitPositions?: number[][];
  /** After the forward, the backward pass of a scalar metric of the logits. */
  backward?: EngineBackward;
}

export interface EngineResult {
  logits?: Tensor; // [batch, pos, d_vocab]
  tokenLogprobs?: Tensor; // [batch, pos]
  activations: Map<HookName, Tensor>;
  /** With a backward pass: the gradients asked for, in the order the backward pass reached them. */
  grads?: Map<HookName, Tensor>;
  /** With a seed from JavaScript: the metric's value it returned. */
  seedValue?: number;
}

interface Plan {
  segments: {
    /** Null for a segment with nothing to compute (e.g. after a cut at the head input). */
    session: Session | null;
    inputs: string[];
    outputs: string[];
    /** Outputs later segments read. */
    passOn: ReadonlySet<string>;
    /** A hook point hooked from JavaScript, the logits (a seed from JavaScript) or a gradient with backward hooks. */
    cut: string | null;
  }[];
  hookOrder: HookName[];
  /** The hook points whose gradient the graph emits, in backward order. */
  gradOrder: HookName[];
  /** Gradient cut (`X_grad`) -> its hook point X. */
  gradCuts: ReadonlyMap<string, HookName>;
  /** The value the unembedding head reads (the final LayerNormed rows), or null when nothing needs it. */
  headInput: string | null;
  /** The shared main variant: no hook outputs, always takes an attention mask, always produces the head input. */
  main: boolean;
  /** Runs currently using the plan; an evicted plan is released when this drops to 0. */
  users: number;
  evicted: boolean;
}

async function releasePlan(plan: Plan): Promise<void> {
  await Promise.all(plan.segments.map((s) => s.session?.release()));
}

export type WeightMode = 'auto' | 'feed' | 'embed';

/**
 * Fed variants compute up to this many logits (32 MiB) in the graph; beyond, the graph stops at
 * the final LayerNorm and the chunked unembedding head (unembedHead.ts) makes the logits.
 */
export const IN_GRAPH_LOGITS = 2 ** 23;

/**
 * A run that caches more than this many bytes of activations is cut after every block, so that
 * onnxruntime's outputs (which it hands over as copies) exist twice one block at a time, not all at once.
 */
export const SEGMENT_CACHE_BYTES = 64 * 2 ** 20;

/**
 * On a GPU, 'auto' prepacks (a second and third copy of the weights inside onnxruntime) only for
 * models up to this size; larger ones (gpt2-medium and up) are fed, so they keep a single copy.
 */
export const AUTO_EMBED_LIMIT_BYTES = 1024 * 2 ** 20;

export interface EngineOptions extends SessionConfig {
  /**
   * 'feed': weights are fed to every run from the engine's feature-major arrays (one copy shared
   * by all graph variants; instant graph building; on the CPU about 10% slower than prepacked
   * weights at 64 tokens, as fast at 1,024: README's Benchmarks). 'embed': each variant gets
   * its own prepacked copy (more memory, slower to build a new variant). 'auto': 'feed' on the
   * CPU; on a GPU, for models up to autoEmbedLimitBytes, one main variant with prepacked weights
   * serves every plain and loss run (fed weights would be copied to the device at every run),
   * and hooked and cached runs are fed.
   */
  weightMode: WeightMode;
  /** TransformerLens's optional hook points this model has (attn_in, q/k/v_input, mlp_in). */
  optionalHooks?: OptionalHooks;
  /** Largest model (bytes of fp32 weights) that 'auto' prepacks on a GPU; default AUTO_EMBED_LIMIT_BYTES (1 GiB). */
  autoEmbedLimitBytes?: number;
  /** How many graph variants (hook configurations) to keep built. */
  maxPlans?: number;
  /** Most logits a fed variant computes in its graph; default IN_GRAPH_LOGITS. */
  inGraphLogits?: number;
  /** Cached activations above which a run is cut after every block; default SEGMENT_CACHE_BYTES. */
  segmentCacheBytes?: number;
  /** The unembedding head's rows per block and vocabulary entries per slice (unembedHead.ts's defaults: 16 MiB of logits per run). */
  unembedBlockRows?: number;
  unembedVocabSlice?: number;
}

/**
 * The keys and values of every layer for the positions a generation has run so far (Engine.decodeStep),
 * opaque outside the engine: the next step takes it back.
 */
export interface KvCache {
  /** How many positions it holds. */
  readonly positions: number;
}

/** Each KvCache's onnxruntime values (past_key.L, past_value.L [batch, head, positions, d_head]). */
const kvValues = new WeakMap<KvCache, Record<string, OrtValue>>();

/** Bool mask of the entries where `before` and `after` differ (NaN equals NaN). */
function changedMask(before: Float32Array, after: Float32Array): Uint8Array {
  const mask = new Uint8Array(before.length);
  for (let i = 0; i < before.length; i++) {
    const x = before[i];
    const y = after[i];
    if (x !== y && !(x !== x && y !== y)) mask[i] = 1;
  }
  return mask;
}

/**
 * The JavaScript steps of one run's backward pass: the seed (a metric's gradient from the logits),
 * the masks of the entries forward hooks changed, and backward hooks with the gradient each lets
 * flow upstream.
 */
class BackwardRun {
  /** The seed metric's value, once computed. */
  value: number | undefined;
  /** Per hook point hooked from JavaScript, the entries its hooks changed (their gradient does not flow upstream). */
  private readonly changed = new Map<HookName, Uint8Array>();

  constructor(private readonly req: EngineRequest) {}

  /** After a forward hook point's JS hooks: feeds which entries they changed. */
  forwardChanged(name: HookName, before: Float32Array, after: Tensor, values: Map<string, OrtValue>): void {
    const mask = changedMask(before, after.data);
    this.changed.set(name, mask);
    values.set(gradFeeds(name).changed, bool(mask, after.shape));
  }

  /** At the logits: the metric's value and gradient from JavaScript, fed as the backward pass's seed. */
  async seed(values: Map<string, OrtValue>): Promise<void> {
    const seed = this.req.backward!.seed;
    if (seed.kind !== 'logits') return;
    const logits = toTensor(values.get(LOGITS_CUT)!); // [batch, pos, d_vocab], or the seed's rows [batch, k, d_vocab]
    const [B, , V] = logits.shape;
    const given = seed.positions && !seedRowsOnly(this.req) ? rowsAt(logits, seed.positions) : logits; // [batch, k, d_vocab]
    const out = await seed.fn(given);
    if (!out || typeof out.value !== 'number' || !(out.gradient instanceof Tensor)) {
      throw new Error('backward: the metric must give one number (a scalar) and its gradient with respect to the logits');
    }
    if (out.gradient.shape.join(',') !== given.shape.join(',')) {
      throw new Error(`backward: the metric's gradient has shape [${out.gradient.shape.join(', ')}]; the logits it read have shape [${given.shape.join(', ')}]`);
    }
    this.value = out.value;
    // Padded positions get no gradient.
    const mask = this.req.attentionMask;
    let gradient = out.gradient;
    if (mask) {
      gradient = new Tensor(Float32Array.from(gradient.data), gradient.shape);
      const k = given.shape[1];
      for (let b = 0; b < B; b++) {
        for (let r = 0; r < k; r++) {
          const p = seed.positions ? seed.positions[b][r] : r;
          if (mask[b][p] === 0) gradient.data.fill(0, (b * k + r) * V, (b * k + r + 1) * V);
        }
      }
    }
    values.set(SEED_FEEDS.gradLogits, fromTensor(gradient));
    if (seed.positions) values.set(SEED_FEEDS.gradPositions, int64Rows(seed.positions, 'positions'));
  }

  /**
   * At a gradient with backward hooks: each hook gets the gradient (TransformerLens passes every
   * backward hook the same gradient); the last replacement returned flows upstream, else the
   * gradient zeroed where the forward replaced the value (an intervention's mask, the entries
   * forward hooks changed).
   */
  async hooks(name: HookName, values: Map<string, OrtValue>, layer: number | null): Promise<void> {
    const raw = values.get(gradName(name))!;
    const grad = toTensor(raw);
    const point: HookPoint = { name, layer: () => layer };
    let replacement: Tensor | undefined;
    for (const fn of this.req.backward!.hooks?.get(name) ?? []) {
      const r = await fn(grad, point);
      if (r === undefined) continue;
      if (!(r instanceof Tensor)) throw new Error(`backward hook on '${name}' returned ${typeof r}; return a Tensor or nothing`);
      if (r.shape.join(',') !== grad.shape.join(',')) {
        throw new Error(`backward hook on '${name}' returned shape [${r.shape.join(', ')}]; the gradient at this hook point has shape [${grad.shape.join(', ')}]`);
      }
      replacement = r;
    }
    let upstream = replacement;
    if (!upstream) {
      const stops = [this.req.interventions?.get(name)?.mask?.data, this.changed.get(name)].filter((m): m is Uint8Array => m !== undefined);
      if (stops.length > 0) {
        upstream = new Tensor(Float32Array.from(grad.data), grad.shape);
        for (const m of stops) for (let i = 0; i < m.length; i++) if (m[i]) upstream.data[i] = 0;
      }
    }
    values.set(gradFeeds(name).upstream, upstream ? fromTensor(upstream) : raw);
  }
}

/**
 * Whether a backward run's forward computes logits only at its seed's rows: the seed reads rows at
 * positions, and neither the caller (logits) nor a loss (targets) reads the others.
 */
function seedRowsOnly(req: EngineRequest): boolean {
  const seed = req.backward?.seed;
  return seed?.kind === 'logits' && seed.positions !== undefined && req.logits === false && req.targets === undefined;
}

/** logits [batch, pos, d_vocab] -> the rows at `positions` [batch, k]: [batch, k, d_vocab]. */
function rowsAt(logits: Tensor, positions: readonly (readonly number[])[]): Tensor {
  const [B, pos, V] = logits.shape;
  const k = positions[0]?.length ?? 0;
  const out = new Float32Array(B * k * V);
  positions.forEach((row, b) => {
    if (row.length !== k) throw new Error(`backward: every prompt needs the same number of positions; prompt 0 has ${k}, prompt ${b} has ${row.length}`);
    row.forEach((p, r) => {
      if (!Number.isInteger(p) || p < 0 || p >= pos) throw new Error(`backward: position ${p} of prompt ${b} is not an integer in 0…${pos - 1}`);
      out.set(logits.data.subarray((b * pos + p) * V, (b * pos + p + 1) * V), (b * k + r) * V);
    });
  });
  return new Tensor(out, [B, k, V]);
}

/** The weight feeds of spliced SAEs: onnxruntime values over their arrays (no copy). */
function saeFeeds(saes: readonly EngineSae[]): Map<string, OrtValue> {
  const out = new Map<string, OrtValue>();
  for (const s of saes) {
    for (const [name, data] of s.weights) out.set(saeWeightKey(s.hook, name), f32(data, saeWeightDims(s.spec, name)));
  }
  return out;
}

export class Engine {
  private readonly plans = new Map<string, Promise<Plan>>();
  private weightTensors: Record<string, OrtValue> | null = null;
  private head: UnembedHead | null = null;
  /** The model's hook points (the one list, with its optional hook points). */
  private readonly hookPoints: ReadonlyMap<HookName, HookPointInfo>;
  private readonly decodeSessions: SessionCache;

  /** `weights`: the model's one copy (weightStore.ts), fed to the graphs by key. */
  constructor(
    readonly cfg: HookedTransformerConfig,
    private readonly weights: WeightStore,
    readonly options: EngineOptions,
  ) {
    this.hookPoints = hookPointMap(cfg, options.optionalHooks);
    this.decodeSessions = new SessionCache(options);
  }

  /** The hook points of a run: the model's, and those of the SAEs it splices in. */
  private pointsOf(req: Pick<EngineRequest, 'saes'>): ReadonlyMap<HookName, HookPointInfo> {
    if (!req.saes?.length) return this.hookPoints;
    return withSaeHookPoints(this.hookPoints, req.saes.map((s) => ({ hook: s.hook, d_in: s.spec.d_in, d_sae: s.spec.d_sae, useErrorTerm: s.useErrorTerm })));
  }

  /** A hook point of this run; an unknown name is an error. */
  private hookPoint(name: HookName, points: ReadonlyMap<HookName, HookPointInfo> = this.hookPoints): HookPointInfo {
    const info = points.get(name);
    if (!info) throw new Error(`unknown hook point '${name}' for this model (see model.hookPoints())`);
    return info;
  }

  private weightArrays(): ReadonlyMap<string, Float32Array> {
    return this.weights.feeds();
  }

  /** The graph's weight inputs as onnxruntime tensors over the engine's arrays (no copy), shaped as the graph declares them. */
  private weightTensorFeeds(): Record<string, OrtValue> {
    if (this.weightTensors) return this.weightTensors;
    const out: Record<string, OrtValue> = {};
    for (const [name, data] of this.weightArrays()) out[name] = f32(data, weightDims(this.cfg, name, true));
    this.weightTensors = out;
    return out;
  }

  /** The unembedding (logits and token log-probs) in chunks of rows; W_U prepacked when plain runs are. */
  private unembedHead(): UnembedHead {
    if (!this.head) {
      this.head = new UnembedHead(this.cfg, this.weights.matrix('W_U'), this.weights.vector('b_U'), {
        device: this.options.device,
        threads: this.options.threads,
        memArena: this.options.memArena ?? true,
        spin: this.options.spin ?? false, // the head's runs follow the body's, and embedded slices are a session each
        embed: this.useMainVariant(),
        blockRows: this.options.unembedBlockRows,
        vocabSlice: this.options.unembedVocabSlice,
      });
    }
    return this.head;
  }

  /**
   * Picks the graph variant for a request. In 'embed' mode (and 'auto' on a GPU, for models up to
   * autoEmbedLimitBytes), plain forward passes and losses run on one "main" variant with
   * prepacked weights and no hook outputs (it always takes an attention mask, so padded and
   * unpadded runs share it, and leaves the unembedding to the head); everything else runs on a
   * variant built for it. A run fetches only the outputs it asked for.
   */
  private variantFor(req: EngineRequest): { key: string; graphOpts: GraphOptions; cuts: string[]; embed: boolean; main: boolean; arena: boolean } {
    const batch = req.tokens.length;
    const rows = batch * (req.logitPositions?.[0]?.length ?? req.tokens[0]?.length ?? 0);
    const observe = new Set(req.observe ?? []);
    const cuts: HookName[] = [...(req.hooks?.keys() ?? [])];
    for (const c of cuts) observe.add(c);
    for (const edge of [req.startAt?.hook, req.stopAt]) if (edge && !cuts.includes(edge)) cuts.push(edge);
    if (this.observedBytes(req) > (this.options.segmentCacheBytes ?? SEGMENT_CACHE_BYTES)) {
      for (let l = 0; l < this.cfg.n_layers; l++) {
        const edge = blockHook(l, 'hook_resid_post');
        if (!cuts.includes(edge) && !req.interventions?.has(edge)) cuts.push(edge);
      }
    }
    const interventions = new Set([...(req.interventions ?? [])].flatMap(([h, iv]) => (iv.mask ? [h] : [])));
    const additions = new Set([...(req.interventions ?? [])].flatMap(([h, iv]) => (iv.add ? [h] : [])));
    const saes = (req.saes ?? []).map(({ hook, spec, useErrorTerm }) => ({ hook, spec, useErrorTerm }));
    const lnHasWeights = this.cfg.normalization_type === 'LN';
    const logitPositions = req.logitPositions !== undefined;
    if (req.backward) return this.backwardVariant(req, observe, cuts, interventions, lnHasWeights);
    const plain = cuts.length === 0 && interventions.size === 0 && additions.size === 0 && observe.size === 0 && saes.length === 0;
    if (this.useMainVariant() && plain && !logitPositions) {
      const graphOpts: GraphOptions = {
        observed: new Set(),
        interventions: new Set(),
        cuts: new Set(),
        hasAttentionMask: true,
        lnHasWeights,
        logits: false,
        tokenLogprobs: false,
        headInput: true,
        featureMajor: true,
        optional: this.options.optionalHooks,
      };
      return { key: 'main', graphOpts, cuts: [], embed: true, main: true, arena: this.options.memArena ?? true };
    }
    const graphOpts: GraphOptions = { ...this.hookedGraphOptions(req, observe, cuts, interventions, lnHasWeights), additions, saes, logitPositions };
    // Up to IN_GRAPH_LOGITS of logits are computed in the graph itself (no second run); more, by the
    // chunked head, so that the full logits never exist twice.
    if (this.needsHead(req)) {
      if (rows * this.cfg.d_vocab <= (this.options.inGraphLogits ?? IN_GRAPH_LOGITS)) {
        graphOpts.logits = req.logits ?? true;
        graphOpts.tokenLogprobs = req.targets !== undefined;
      } else {
        graphOpts.headInput = true;
      }
    }
    const key = JSON.stringify({
      p: logitPositions,
      o: [...observe].sort(),
      i: [...interventions].sort(),
      c: [...cuts].sort(),
      m: graphOpts.hasAttentionMask,
      h: graphOpts.headInput ?? false,
      l: graphOpts.logits,
      t: graphOpts.tokenLogprobs,
      a: [...additions].sort(),
      s: saes,
    });
    // onnxruntime's arena keeps a session's peak working memory, but spares large runs the malloc
    // fragmentation that raises their peak (~0.2 × GPT-2's weights at [8, 128]): it serves the
    // variants for large runs (those that unembed in the head) that cache nothing (a cache's worth
    // would stay allocated). Small runs are ~5% faster without it.
    const arena = this.options.memArena ?? (graphOpts.headInput === true && [...observe].every((h) => cuts.includes(h)));
    return { key, graphOpts, cuts, embed: this.options.weightMode === 'embed', main: false, arena };
  }

  /** What the hooked (not main) variants' graphs share: the hook points observed, intervened on and cut at, padding, the LayerNorms. */
  private hookedGraphOptions(req: EngineRequest, observe: Set<HookName>, cuts: HookName[], interventions: Set<HookName>, lnHasWeights: boolean): GraphOptions {
    return {
      observed: observe,
      interventions,
      cuts: new Set(cuts),
      hasAttentionMask: req.attentionMask !== undefined,
      lnHasWeights,
      logits: false,
      tokenLogprobs: false,
      featureMajor: true,
      optional: this.options.optionalHooks,
    };
  }

  /**
   * The variant of a run with a backward pass: forward and backward in one graph with the logits in
   * it (only at the seed's rows when nothing else reads them), cut at the forward's JS hooks, at the
   * logits when the seed comes from JavaScript, and at the gradients backward hooks read. Never the
   * main variant, never the head.
   */
  private backwardVariant(req: EngineRequest, observe: Set<HookName>, forwardCuts: HookName[], interventions: Set<HookName>, lnHasWeights: boolean) {
    const bwd = req.backward!;
    if (req.startAt || req.stopAt || req.logitPositions) throw new Error('a backward pass runs the whole model: no startAt, stopAt or logitPositions');
    if (req.saes?.length) throw new Error('a backward pass cannot run with spliced SAEs (the backward graph has no SAE pieces); run it on the model alone');
    if ([...(req.interventions?.values() ?? [])].some((iv) => iv.add)) throw new Error('a backward pass cannot run with steering (additive interventions); run it without them');
    const seed: SeedKind = bwd.seed.kind === 'loss' ? 'loss' : bwd.seed.positions ? 'rows' : 'logits';
    if (seed === 'loss' && !req.targets) throw new Error('internal: the loss seed needs the targets');
    const bwdHooked = [...(bwd.hooks?.keys() ?? [])];
    const forwardHooked = new Set(req.hooks?.keys() ?? []);
    const graphOpts: GraphOptions = {
      ...this.hookedGraphOptions(req, observe, forwardCuts, interventions, lnHasWeights),
      logits: req.logits ?? true,
      tokenLogprobs: req.targets !== undefined,
      logitPositions: seedRowsOnly(req),
      backward: { seed, observed: new Set(bwd.observe), cuts: new Set(bwdHooked), forwardHooked, interventions },
    };
    const cuts: string[] = [...forwardCuts, ...(seed === 'loss' ? [] : [LOGITS_CUT]), ...bwdHooked.map(gradName)];
    const key = JSON.stringify({
      backward: seed,
      r: graphOpts.logitPositions,
      o: [...observe].sort(),
      i: [...interventions].sort(),
      c: [...forwardCuts].sort(),
      f: [...forwardHooked].sort(),
      g: [...bwd.observe].sort(),
      bc: bwdHooked.sort(),
      m: graphOpts.hasAttentionMask,
      l: graphOpts.logits,
      t: graphOpts.tokenLogprobs,
    });
    return { key, graphOpts, cuts, embed: this.options.weightMode === 'embed', main: false, arena: this.options.memArena ?? false };
  }

  /** How many bytes of activations the run caches (float32, by hook point shape). */
  private observedBytes(req: EngineRequest): number {
    const batch = req.tokens.length;
    const pos = req.tokens[0]?.length ?? 0;
    let floats = 0;
    const points = this.pointsOf(req);
    for (const name of req.observe ?? []) floats += hookShape(this.hookPoint(name, points), this.cfg, batch, pos).reduce((a, b) => a * b, 1);
    return 4 * floats;
  }

  /** Whether the run needs the unembedding (logits or token log-probs). */
  private needsHead(req: EngineRequest): boolean {
    return ((req.logits ?? true) || req.targets !== undefined) && !req.stopAt;
  }

  /** Whether plain and loss runs go to the prepacked main variant (see WeightMode). */
  private useMainVariant(): boolean {
    if (this.options.weightMode === 'feed') return false;
    if (this.options.weightMode === 'embed') return true;
    if (this.options.device === 'cpu') return false;
    return this.weights.byteLength <= (this.options.autoEmbedLimitBytes ?? AUTO_EMBED_LIMIT_BYTES);
  }

  private plan(req: EngineRequest): Promise<Plan> {
    const { key, graphOpts, cuts, embed, main, arena } = this.variantFor(req);
    const cached = this.plans.get(key);
    if (cached) {
      // LRU: move to the end.
      this.plans.delete(key);
      this.plans.set(key, cached);
      return cached;
    }
    const built = (async (): Promise<Plan> => {
      const graph = buildGpt2Graph(this.cfg, graphOpts);
      const keep = new Set<string>([...graphOpts.observed, ...graph.finalOutputs, ...[...(graphOpts.backward?.observed ?? [])].map(gradName)]);
      const weights = this.weightArrays();
      const embedded = embed ? new Set(weights.keys()) : new Set<string>();
      const parts = partitionGraph(graph.builder, cuts, keep, embedded);
      // A run through several sessions in turn would compete with their threads' spinning.
      const spin = this.options.spin ?? parts.filter((p) => p.outputs.length > 0).length === 1;
      const segments = await Promise.all(
        parts.map(async (p) => ({
          session: p.outputs.length === 0
            ? null
            : await createSession(p.model, { ...this.options, memArena: arena, spin }, new Map(p.external.map((n) => [n, weights.get(n)!]))),
          inputs: p.inputs,
          outputs: p.outputs,
          passOn: new Set(p.passOn),
          cut: p.cut,
        })),
      );
      const gradCuts = new Map([...(graphOpts.backward?.cuts ?? [])].map((h) => [gradName(h) as string, h]));
      return { segments, hookOrder: graph.hookOrder, gradOrder: graph.gradOrder, gradCuts, headInput: graph.headInput, users: 0, evicted: false, main };
    })();
    this.plans.set(key, built);
    built.catch(() => this.plans.delete(key));
    const max = this.options.maxPlans ?? 16;
    while (this.plans.size > max) {
      const oldest = this.plans.keys().next().value as string;
      const evicted = this.plans.get(oldest)!;
      this.plans.delete(oldest);
      void evicted
        .then((p) => {
          p.evicted = true;
          if (p.users === 0) return releasePlan(p);
        })
        .catch(() => undefined);
    }
    return built;
  }

  async run(req: EngineRequest): Promise<EngineResult> {
    const batch = req.tokens.length;
    if (batch === 0) throw new Error('tokens: the batch is empty');
    const plan = await this.plan(req);
    if (plan.evicted) return this.run(req); // evicted while it was being built: build it again
    plan.users++;
    try {
      return await this.execute(plan, req);
    } finally {
      plan.users--;
      if (plan.evicted && plan.users === 0) await releasePlan(plan);
    }
  }

  private async execute(plan: Plan, req: EngineRequest): Promise<EngineResult> {
    const head = this.needsHead(req) ? plan.headInput : null;
    const wanted = new Set<string>([...(req.observe ?? []), ...(head ? [head] : []), 'logits', 'token_logprobs', ...[...(req.backward?.observe ?? [])].map(gradName)]);
    const values = new Map<string, OrtValue>(Object.entries(this.weightTensorFeeds()));
    values.set('tokens', int64Rows(req.tokens, 'tokens'));
    if (req.targets && !head) values.set('targets', int64Rows(req.targets, 'targets'));
    if (req.attentionMask) values.set('attention_mask', int64Rows(req.attentionMask, 'attentionMask'));
    else if (plan.main) values.set('attention_mask', int64Rows(req.tokens.map((r) => r.map(() => 1)), 'attentionMask'));
    if (req.logitPositions) {
      const pos = req.tokens[0].length;
      req.logitPositions.forEach((row, b) => row.forEach((p) => {
        if (!Number.isInteger(p) || p < 0 || p >= pos) throw new Error(`logitPositions[${b}] has ${p}; allowed: integers 0…${pos - 1}`);
      }));
      values.set('logit_positions', int64Rows(req.logitPositions, 'logitPositions'));
    }
    let first = 0;
    if (req.startAt) {
      const at = plan.segments.findIndex((s) => s.cut === req.startAt!.hook);
      first = at + 1;
      values.set(req.startAt.hook, fromTensor(req.startAt.value));
    }
    for (const [hook, iv] of req.interventions ?? []) {
      const feeds = interventionFeeds(hook);
      if (iv.mask) {
        if (!iv.value) throw new Error(`internal: the intervention on '${hook}' has a mask but no value`);
        values.set(feeds.mask, bool(iv.mask.data, iv.mask.shape));
        values.set(feeds.value, fromTensor(iv.value));
      }
      if (iv.add) values.set(feeds.add, fromTensor(iv.add));
    }
    const backward = req.backward ? new BackwardRun(req) : null;
    if (seedRowsOnly(req)) values.set('logit_positions', int64Rows((req.backward!.seed as { positions: number[][] }).positions, 'positions'));
    if (req.backward?.seed.kind === 'loss') values.set(SEED_FEEDS.lossWeights, f32(Float32Array.from(req.backward.seed.weights.flat()), [req.tokens.length, req.tokens[0].length]));
    for (const [name, v] of saeFeeds(req.saes ?? [])) values.set(name, v);
    const points = this.pointsOf(req);

    for (const seg of plan.segments.slice(first)) {
      if (!seg.session) continue; // nothing after the last cut is needed (no logits asked for)
      const feeds: Record<string, OrtValue> = {};
      for (const name of seg.inputs) {
        const v = values.get(name);
        if (!v) {
          if (req.startAt) throw new Error(`cannot start the run at '${req.startAt.hook}': the rest of the model also reads '${name}', computed before it`);
          throw new Error(`internal: value '${name}' is needed but was not produced`);
        }
        feeds[name] = v;
      }
      const fetches = seg.outputs.filter((o) => seg.passOn.has(o) || o === seg.cut || wanted.has(o));
      if (fetches.length === 0) fetches.push(seg.outputs[0]); // onnxruntime needs at least one output
      const out = await runSession(seg.session, feeds, fetches);
      for (const name of fetches) values.set(name, out[name]);
      if (seg.cut === LOGITS_CUT && backward) {
        await backward.seed(values);
      } else if (seg.cut && plan.gradCuts.has(seg.cut) && backward) {
        const hook = plan.gradCuts.get(seg.cut)!;
        await backward.hooks(hook, values, this.hookPoint(hook).layer);
      } else if (seg.cut) {
        const name = seg.cut as HookName;
        const raw = values.get(name)!;
        let act = toTensor(raw);
        const { layer } = this.hookPoint(name, points);
        const point: HookPoint = { name, layer: () => layer };
        const fns = req.hooks?.get(name) ?? [];
        const before = backward && fns.length > 0 ? act.data.slice() : null;
        for (const fn of fns) {
          const replaced = await fn(act, point);
          if (replaced !== undefined) {
            if (!(replaced instanceof Tensor)) throw new Error(`hook on '${name}' returned ${typeof replaced}; return a Tensor or nothing`);
            if (replaced.shape.join(',') !== act.shape.join(',')) {
              throw new Error(`hook on '${name}' returned shape [${replaced.shape.join(', ')}]; the hook point has shape [${act.shape.join(', ')}]`);
            }
            act = replaced;
          }
        }
        if (before && backward) backward.forwardChanged(name, before, act, values);
        values.set(name, fromTensor(act));
        if (name === req.stopAt) break;
      }
    }

    const activations = new Map<HookName, Tensor>();
    for (const name of plan.hookOrder) {
      const v = values.get(name);
      if (!req.observe?.has(name) || !v) continue;
      activations.set(name, toTensor(v));
    }
    const result: EngineResult = { activations };
    if (backward) {
      result.grads = new Map();
      for (const name of plan.gradOrder) {
        const v = values.get(gradName(name));
        if (req.backward!.observe.has(name) && v) result.grads.set(name, toTensor(v));
      }
      if (backward.value !== undefined) result.seedValue = backward.value;
    }
    const logits = values.get('logits');
    if (logits) result.logits = toTensor(logits);
    const lp = values.get('token_logprobs');
    if (lp) result.tokenLogprobs = toTensor(lp);
    const x = head ? values.get(head) : undefined;
    if (x) {
      // The unembedding, in chunks of rows (unembedHead.ts): x [batch, pos | k, d_model].
      const [batch, k] = x.dims as number[];
      values.clear(); // let go of what the segments produced before the logits are made
      const targets = req.targets ? int64Rows(req.targets, 'targets') : undefined;
      if (targets && targets.dims.join(',') !== `${batch},${k}`) {
        throw new Error(`targets must be [${batch}, ${k}] (one per position whose logits are computed); got [${targets.dims.join(', ')}]`);
      }
      const wantLogits = req.logits ?? true;
      const out = await this.unembedHead().run(x.data as Float32Array, { logits: wantLogits, targets: targets?.data as BigInt64Array | undefined });
      if (out.logits) result.logits = new Tensor(out.logits, [batch, k, this.cfg.d_vocab]);
      if (out.tokenLogprobs) result.tokenLogprobs = new Tensor(out.tokenLogprobs, [batch, k]);
    }
    return result;
  }

  /** The decoding graph's session: weights prepacked when plain runs use the prepacked main variant (see WeightMode), fed otherwise. */
  private decodeSession(embedded: boolean, extras: DecodeExtras): Promise<Session> {
    const additions = new Set(extras.additions?.keys() ?? []);
    const saes = (extras.saes ?? []).map(({ hook, spec, useErrorTerm }) => ({ hook, spec, useErrorTerm }));
    const key = additions.size === 0 && saes.length === 0 ? 'decode' : JSON.stringify({ a: [...additions].sort(), s: saes });
    return this.decodeSessions.get(key, () => {
      const graph = buildDecodeGraph(this.cfg, { lnHasWeights: this.cfg.normalization_type === 'LN', lastLogitsOnly: true, featureMajor: true, additions, saes });
      const weights = this.weightArrays();
      const [seg] = partitionGraph(graph.builder, [], new Set(graph.outputs), embedded ? new Set(weights.keys()) : new Set());
      return { model: seg.model, external: new Map(seg.external.map((n) => [n, weights.get(n)!])) };
    });
  }

  /**
   * One step of generation with a key/value cache (decodeGraph.ts): `tokens` [batch, new] are the new
   * tokens (the whole prompts at the first step, past = null), `mask` [batch, past + new] the attention
   * mask of everything so far (1 = real token). Returns the logits of the last new position
   * [batch, d_vocab] and the cache grown by the new positions, for the next step. `extras`: steering
   * vectors and SAEs (the same at every step of a generation).
   */
  async decodeStep(tokens: number[][], mask: number[][], past: KvCache | null, extras: DecodeExtras = {}): Promise<{ logits: Float32Array; past: KvCache }> {
    const batch = tokens.length;
    const { n_layers, n_heads, d_head } = this.cfg;
    const feeds: Record<string, OrtValue> = {};
    if (past) {
      const values = kvValues.get(past);
      if (!values) throw new Error('decodeStep: past is not a KvCache made by this engine');
      Object.assign(feeds, values);
    } else {
      const empty = f32(new Float32Array(0), [batch, n_heads, 0, d_head]);
      for (let l = 0; l < n_layers; l++) feeds[kvNames.pastKey(l)] = feeds[kvNames.pastValue(l)] = empty;
    }
    feeds.tokens = int64Rows(tokens, 'tokens'); // [batch, new]
    feeds.attention_mask = int64Rows(mask, 'attentionMask'); // [batch, past + new]
    for (const [hook, add] of extras.additions ?? []) feeds[interventionFeeds(hook).add] = fromTensor(add);
    for (const [name, v] of saeFeeds(extras.saes ?? [])) feeds[name] = v;
    const embedded = this.useMainVariant();
    const session = await this.decodeSession(embedded, extras);
    const fetches = ['logits', ...Array.from({ length: n_layers }, (_, l) => [kvNames.presentKey(l), kvNames.presentValue(l)]).flat()];
    const out = await runSession(session, embedded ? feeds : { ...this.weightTensorFeeds(), ...feeds }, fetches);
    const next: KvCache = Object.freeze({ positions: (past?.positions ?? 0) + (tokens[0]?.length ?? 0) });
    const values: Record<string, OrtValue> = {};
    for (let l = 0; l < n_layers; l++) {
      values[kvNames.pastKey(l)] = out[kvNames.presentKey(l)];
      values[kvNames.pastValue(l)] = out[kvNames.presentValue(l)];
    }
    kvValues.set(next, values);
    return { logits: out.logits.data as Float32Array, past: next }; // logits [batch, 1, d_vocab]
  }

  /** Releases every onnxruntime session. */
  async dispose(): Promise<void> {
    const plans = [...this.plans.values()];
    this.plans.clear();
    this.weightTensors = null;
    const head = this.head;
    this.head = null;
    if (head) await head.release();
    await this.decodeSessions.dispose();
    for (const p of plans) {
      try {
        const plan = await p;
        plan.evicted = true;
        if (plan.users === 0) await releasePlan(plan);
      } catch {
        // a plan that failed to build holds no sessions
      }
    }
  }
}
