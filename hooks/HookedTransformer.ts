/**
 * TransformerLens's HookedTransformer for GPT-2, in TypeScript: load weights, run them on
 * onnxruntime, read and change any hook point (`runWithCache`, `runWithHooks`, `withHooks`),
 * run ablations and patching inside the graph, and take gradients at hook points (a backward
 * pass with `inclBwd` / `backwardFrom`, backward hooks).
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { ActivationCache, tokensToResidualDirections, type TokenSpec } from './ActivationCache.ts';
import { DEFAULT_PROCESSING, NO_PROCESSING, type HookedTransformerConfig, type ProcessingFlags } from './config.ts';
import { Engine, type BwdHookFn, type EngineBackward, type EngineSae, type HookFn, type HookPoint, type WeightMode } from './engine/engine.ts';
import { KernelSessions } from './engine/kernels.ts';
import { generate, type GenerateOptions, type GenerateOutput, type GenerateReturnType } from './generate.ts';
import { resolveDevice, type Device, type ResolvedDevice } from './engine/runtime.ts';
import { blockHook, gradName, hookPointMap, withSaeHookPoints, type CacheKey, type HookName, type HookPointInfo, type ModelHookName } from './hookPoints.ts';
import { compileSeed, type BackwardFrom } from './gradients.ts';
import { materializeInterventions, type InterventionSpec } from './interventions.ts';
import type { Sae } from './sae/Sae.ts';
import { engineSaes, saeList, type SaeAttachment } from './sae/splice.ts';
import { loadGpt2 } from './loading/index.ts';
import type { HubOptions } from './loading/index.ts';
import { nextTokenLoss } from './ops/index.ts';
import { readJsonFile, type FileAccess } from './loading/modelFiles.ts';
import { EMBEDDED_MODEL_DIR } from './loading/modelNames.ts';
import { processWeights } from './processing.ts';
import { allCompositionScores, OV, QK, type CompositionMode, type CompositionOptions, type FactoredMatrix } from './circuits/index.ts';
import { Tensor } from './tensor.ts';
import { Gpt2Tokenizer, type PaddingSide } from './tokenizer.ts';
import { MATRIX_NAMES, WeightStore, type MatrixName, type WeightName } from './weightStore.ts';
import type { TransformerWeights } from './weights.ts';

export type { BwdHookFn, HookFn, HookPoint };

/** What a model takes: text, a batch of texts, token ids, a batch of token ids, or a [batch, pos] tensor of ids. */
export type ModelInput = string | readonly string[] | readonly number[] | readonly (readonly number[])[] | Tensor;

export type ReturnType = 'logits' | 'loss' | 'both' | 'none';

export interface InputOptions {
  /** Prepend BOS (<|endoftext|>) to text input; default cfg.default_prepend_bos (true), as in TransformerLens. */
  prependBos?: boolean;
  /** Which side a batch of texts of different lengths is padded on; default 'right'. */
  paddingSide?: PaddingSide;
  /** [batch, pos] of 0/1 (1 = real token). Computed for padded text batches; give it for padded token ids. */
  attentionMask?: readonly (readonly number[])[];
}

export interface ForwardOptions extends InputOptions {
  returnType?: ReturnType;
  /** With a loss: per-token losses [batch, pos - 1] instead of their mean. */
  lossPerToken?: boolean;
  /** Ablations and patches that run inside the graph. */
  interventions?: readonly InterventionSpec[];
  /**
   * TransformerLens's start_at_layer: run blocks L… only, from `residual` (resid_pre of block L,
   * [batch, pos, d_model]); the input still gives the tokens (positions, mask, loss).
   */
  startAtLayer?: number;
  residual?: Tensor;
  /** TransformerLens's stop_at_layer: run blocks …L-1 and return the residual stream before block L. */
  stopAtLayer?: number;
  /** Lensboard: compute logits only at these positions [batch, k]; logits are then [batch, k, d_vocab]. */
  logitPositions?: readonly (readonly number[])[];
}

/** A hook's target: a hook name, or a predicate over hook names (TransformerLens's name filter). */
export type HookTarget = HookName | ((name: HookName) => boolean);
export type FwdHook = readonly [HookTarget, HookFn];
/** A backward hook: `fn(grad, hook)` may return a replacement gradient (same shape), which flows upstream. */
export type BwdHook = readonly [HookTarget, BwdHookFn];
/** TransformerLens's hook direction: a forward hook (on the value) or a backward hook (on its gradient). */
export type HookDirection = 'fwd' | 'bwd';

export type Loss = number | Tensor;
export type ForwardOutput<R extends ReturnType> = R extends 'logits'
  ? Tensor
  : R extends 'loss'
    ? Loss
    : R extends 'both'
      ? { logits: Tensor; loss: Loss }
      : undefined;

export type NamesFilter = HookName | readonly HookName[] | ((name: HookName) => boolean);

export interface RunWithCacheOptions<R extends ReturnType> extends ForwardOptions {
  returnType?: R;
  /** Which hook points to cache; default every standard hook point (hook_result only when asked for). */
  namesFilter?: NamesFilter;
  /** Drop the batch dimension of every cached value (batch of one only), as TransformerLens. */
  removeBatchDim?: boolean;
  /**
   * TransformerLens's incl_bwd: also run the backward pass and cache, beside each cached hook point,
   * `<hook>_grad`: the gradient of the scalar (the returned loss with returnType 'loss', else
   * `backwardFrom`) with respect to that hook point's value.
   */
  inclBwd?: boolean;
  /** The scalar the backward pass differentiates (see BackwardFrom); with inclBwd and returnType 'loss', the loss. */
  backwardFrom?: BackwardFrom;
}

export interface RunWithHooksOptions<R extends ReturnType> extends ForwardOptions {
  returnType?: R;
  fwdHooks?: readonly FwdHook[];
  /** Backward hooks: they run in the backward pass of `backwardFrom`, which a run with them must give. */
  bwdHooks?: readonly BwdHook[];
  /** Run a backward pass of this scalar after the forward pass (see BackwardFrom): backward hooks run in it. */
  backwardFrom?: BackwardFrom;
  /** Remove the hooks afterwards (default true, as TransformerLens). */
  resetHooksEnd?: boolean;
}

/** HookedSAETransformer's run options: the SAEs spliced in for this run, and whether they add their error term. */
export interface SaeRunOptions {
  saes: Sae | readonly Sae[];
  /** hook_sae_output = reconstruction + (input − reconstruction without hooks), so only hooked edits change the run (default false). */
  useErrorTerm?: boolean;
}

export interface ModelOptions {
  device?: Device;
  /** onnxruntime intra-op threads (0 = one per physical core). */
  threads?: number;
  /**
   * How onnxruntime gets the weights. 'auto' (default): on the CPU, the model's one copy is fed
   * to every run ('feed'); on a GPU, for models up to 1 GiB of weights, one prepacked copy serves
   * plain forward passes and losses while hooked and cached runs are fed. 'feed': only the
   * model's copy (least memory). 'embed': a prepacked copy per graph variant (most memory).
   */
  weightMode?: WeightMode;
  /** TransformerLens's optional hook points: `hook_tokens`. */
  useHookTokens?: boolean;
  /** `blocks.L.hook_attn_in` [batch, pos, head, d_model]: per-head attention input (ln1 then runs per head). */
  useAttnIn?: boolean;
  /** `blocks.L.hook_q_input`, `hook_k_input`, `hook_v_input` [batch, pos, head, d_model]. */
  useSplitQkvInput?: boolean;
  /** `blocks.L.hook_mlp_in` [batch, pos, d_model]: the MLP's input, apart from the residual stream. */
  useHookMlpIn?: boolean;
}

export interface FromPretrainedOptions extends ModelOptions, HubOptions, Partial<ProcessingFlags>, FileAccess {
  /** Use this tokenizer instead of the checkpoint's tokenizer files. */
  tokenizer?: Gpt2Tokenizer;
}

/** The SAEs spliced into one run and the run's hook points (the model's and theirs). */
interface SaeRun {
  saes: readonly EngineSae[];
  points: ReadonlyMap<HookName, HookPointInfo>;
}

interface RegisteredHook {
  target: HookTarget;
  fn: HookFn | BwdHookFn;
  dir: HookDirection;
  permanent: boolean;
}

/** What a run's backward pass differentiates, which gradients it keeps and the backward hooks of the call. */
interface BackwardRequest {
  from: BackwardFrom;
  observe: ReadonlySet<HookName>;
  callHooks: readonly BwdHook[];
}

export class HookedTransformer {
  /** The execution provider that really runs the model. */
  readonly device: ResolvedDevice;
  private readonly engine: Engine;
  /**
   * The model's one copy of the weights (weightStore.ts): matrices without a copy by
   * `weights.matrix(name, layer)`, biases by `weights.vector`, TransformerLens-shaped copies by `weights.stacked`.
   */
  readonly weights: WeightStore;
  private readonly hooks: RegisteredHook[] = [];
  /** The model's own hook points (without SAEs). */
  private readonly modelHookInfo: Map<HookName, HookPointInfo>;
  /** SAEs attached with addSae, by hook point (HookedSAETransformer's acts_to_saes). */
  private readonly attached = new Map<ModelHookName, SaeAttachment>();
  /** The hook points with the attached SAEs' (rebuilt when SAEs are attached or reset). */
  private hookInfo: Map<HookName, HookPointInfo>;
  private ownKernels: KernelSessions | null = null;

  private constructor(
    readonly cfg: HookedTransformerConfig,
    weights: TransformerWeights,
    readonly tokenizer: Gpt2Tokenizer | null,
    readonly processing: ProcessingFlags,
    device: ResolvedDevice,
    private readonly options: ModelOptions,
  ) {
    this.device = device;
    const optionalHooks = {
      useHookTokens: options.useHookTokens,
      useAttnIn: options.useAttnIn,
      useSplitQkvInput: options.useSplitQkvInput,
      useHookMlpIn: options.useHookMlpIn,
    };
    this.weights = WeightStore.adopt(cfg, weights);
    this.engine = new Engine(cfg, this.weights, {
      device,
      threads: options.threads ?? 0,
      weightMode: options.weightMode ?? 'auto',
      optionalHooks,
    });
    this.modelHookInfo = hookPointMap(cfg, optionalHooks);
    this.hookInfo = this.modelHookInfo;
  }

  /**
   * Loads GPT-2 by name (`gpt2`, `gpt2-medium`, `gpt2-large`, `gpt2-xl`, `distilgpt2`, `gpt2-small`, …),
   * by hub repo id, or from a local directory, and applies TransformerLens's default weight processing
   * (foldLn, centerWritingWeights, centerUnembed, foldValueBiases) unless switched off. With no name: the embedded
   * model Lensboard ships (models/embedded). `allowedRoots` confines every file read to those directories.
   */
  static async fromPretrained(nameOrPath: string = EMBEDDED_MODEL_DIR, options: FromPretrainedOptions = {}): Promise<HookedTransformer> {
    const { cfg, weights, dir } = await loadGpt2(nameOrPath, options);
    const flags: ProcessingFlags = {
      foldLn: options.foldLn ?? DEFAULT_PROCESSING.foldLn,
      centerWritingWeights: options.centerWritingWeights ?? DEFAULT_PROCESSING.centerWritingWeights,
      centerUnembed: options.centerUnembed ?? DEFAULT_PROCESSING.centerUnembed,
      foldValueBiases: options.foldValueBiases ?? DEFAULT_PROCESSING.foldValueBiases,
    };
    const tokenizer =
      options.tokenizer ?? (existsSync(join(dir, 'tokenizer.json')) && existsSync(join(dir, 'tokenizer_config.json'))
        ? await Gpt2Tokenizer.fromDir(dir, options)
        : null);
    return HookedTransformer.fromWeights(cfg, weights, { ...options, ...flags, tokenizer: tokenizer ?? undefined });
  }

  /** fromPretrained with every weight-processing step off: the raw Hugging Face weights. */
  static async fromPretrainedNoProcessing(nameOrPath: string = EMBEDDED_MODEL_DIR, options: FromPretrainedOptions = {}): Promise<HookedTransformer> {
    return HookedTransformer.fromPretrained(nameOrPath, { ...options, ...NO_PROCESSING });
  }

  /**
   * A model from weights in memory (a trainer's, a test's). Processing flags default to none here.
   * The model takes `weights` over without copying them: processing MUTATES them in place, the
   * matrices are then transposed in place into the store's layout (WeightStore.adopt), and `weights`
   * is emptied; handing it to another model is an error. Clone the weights first (structuredClone)
   * to keep your own arrays or build several models.
   */
  static async fromWeights(
    cfg: HookedTransformerConfig,
    weights: TransformerWeights,
    options: ModelOptions & Partial<ProcessingFlags> & { tokenizer?: Gpt2Tokenizer } = {},
  ): Promise<HookedTransformer> {
    const flags: ProcessingFlags = {
      foldLn: options.foldLn ?? false,
      centerWritingWeights: options.centerWritingWeights ?? false,
      centerUnembed: options.centerUnembed ?? false,
      foldValueBiases: options.foldValueBiases ?? false,
    };
    const device = await resolveDevice(options.device ?? 'cpu');
    const processed = processWeights(cfg, weights, flags);
    return new HookedTransformer(processed.cfg, processed.weights, options.tokenizer ?? null, flags, device, options);
  }

  // ---- tokenizer ----------------------------------------------------------------------------

  private requireTokenizer(what: string): Gpt2Tokenizer {
    if (!this.tokenizer) {
      throw new Error(`${what} needs a tokenizer, but this model was loaded without tokenizer files; pass token ids instead`);
    }
    return this.tokenizer;
  }

  toTokens(input: string | readonly string[], opts: Omit<InputOptions, 'attentionMask'> = {}): number[][] {
    return this.requireTokenizer('toTokens').toTokens(input as string | string[], {
      prependBos: opts.prependBos ?? this.cfg.default_prepend_bos,
      paddingSide: opts.paddingSide,
      maxLength: this.cfg.n_ctx,
    }).tokens;
  }

  toStrTokens(input: string | readonly number[], opts: { prependBos?: boolean } = {}): string[] {
    return this.requireTokenizer('toStrTokens').toStrTokens(input as string | number[], {
      prependBos: opts.prependBos ?? this.cfg.default_prepend_bos,
    });
  }

  toString(): string;
  toString(tokens: readonly number[]): string;
  toString(tokens: readonly (readonly number[])[]): string[];
  toString(tokens?: readonly number[] | readonly (readonly number[])[]): string | string[] {
    if (tokens === undefined) return `HookedTransformer(${this.cfg.model_name}, ${this.cfg.n_layers} layers, device ${this.device})`;
    const tok = this.requireTokenizer('toString');
    return Array.isArray(tokens[0]) ? tok.toString(tokens as number[][]) : tok.toString(tokens as number[]);
  }

  toSingleToken(str: string): number {
    return this.requireTokenizer('toSingleToken').toSingleToken(str);
  }

  getTokenPosition(single: string | number, input: string | readonly number[], opts: { mode?: 'first' | 'last'; prependBos?: boolean } = {}): number {
    return this.requireTokenizer('getTokenPosition').getTokenPosition(single, input as string | number[], {
      mode: opts.mode,
      prependBos: opts.prependBos ?? this.cfg.default_prepend_bos,
    });
  }

  /** Normalises any ModelInput to token ids and an optional attention mask, checking ids and lengths. */
  prepareInput(input: ModelInput, opts: InputOptions = {}): { tokens: number[][]; attentionMask?: number[][] } {
    let tokens: number[][];
    let attentionMask = opts.attentionMask?.map((r) => [...r]);
    if (typeof input === 'string' || (Array.isArray(input) && input.length > 0 && typeof input[0] === 'string')) {
      const batch = this.requireTokenizer('Text input').toTokens(input as string | string[], {
        prependBos: opts.prependBos ?? this.cfg.default_prepend_bos,
        paddingSide: opts.paddingSide,
        truncate: false,
      });
      tokens = batch.tokens;
      const padded = batch.attentionMask.some((row) => row.some((m) => m === 0));
      if (padded && !attentionMask) attentionMask = batch.attentionMask;
    } else if (input instanceof Tensor) {
      const t = input.ndim === 1 ? input.unsqueeze(0) : input;
      if (t.ndim !== 2) throw new Error(`input tensor must be [pos] or [batch, pos] of token ids; got shape [${input.shape.join(', ')}]`);
      tokens = t.toArray() as number[][];
    } else if (Array.isArray(input) && input.length > 0 && typeof input[0] === 'number') {
      tokens = [[...(input as number[])]];
    } else if (Array.isArray(input) && input.length > 0 && Array.isArray(input[0])) {
      tokens = (input as number[][]).map((r) => [...r]);
    } else {
      throw new Error('input must be a string, a non-empty string[], number[] or number[][] of token ids, or a Tensor of ids');
    }
    const pos = tokens[0].length;
    if (pos === 0) throw new Error('input has no tokens');
    if (pos > this.cfg.n_ctx) throw new Error(`input has ${pos} tokens; this model's context (n_ctx) is ${this.cfg.n_ctx}`);
    tokens.forEach((row, b) => {
      if (row.length !== pos) throw new Error(`every prompt in a batch of token ids must have the same length (pad it and pass attentionMask); row 0 has ${pos}, row ${b} has ${row.length}`);
      row.forEach((t, p) => {
        if (!Number.isInteger(t) || t < 0 || t >= this.cfg.d_vocab) {
          throw new Error(`token id ${t} at [${b}][${p}] is not an integer in [0, ${this.cfg.d_vocab})`);
        }
      });
    });
    if (attentionMask) {
      if (attentionMask.length !== tokens.length || attentionMask.some((r) => r.length !== pos)) {
        throw new Error(`attentionMask must be [${tokens.length}, ${pos}] like the tokens`);
      }
      attentionMask.forEach((r, b) => r.forEach((m, p) => {
        if (m !== 0 && m !== 1) throw new Error(`attentionMask[${b}][${p}] is ${m}; allowed: 0 or 1`);
      }));
    }
    return attentionMask ? { tokens, attentionMask } : { tokens };
  }

  // ---- hooks --------------------------------------------------------------------------------

  /** All hook points with their dims, in forward order. */
  hookPoints(): HookPointInfo[] {
    return [...this.hookInfo.values()];
  }

  /**
   * TransformerLens's add_hook: `target` is a hook name or a predicate over names; `dir` 'fwd'
   * (default) hooks the value, 'bwd' its gradient (`fn(grad, hook)`, run by every backward pass).
   */
  addHook(target: HookTarget, fn: HookFn, dir?: 'fwd' | { isPermanent?: boolean }, opts?: { isPermanent?: boolean }): void;
  addHook(target: HookTarget, fn: BwdHookFn, dir: 'bwd', opts?: { isPermanent?: boolean }): void;
  addHook(target: HookTarget, fn: HookFn | BwdHookFn, dir: HookDirection | { isPermanent?: boolean } = 'fwd', opts: { isPermanent?: boolean } = {}): void {
    const direction = typeof dir === 'string' ? dir : 'fwd';
    const options = typeof dir === 'object' ? dir : opts;
    if (direction !== 'fwd' && direction !== 'bwd') throw new Error(`addHook: dir must be 'fwd' or 'bwd'; got '${String(direction)}'`);
    this.checkHook(target, fn, direction === 'fwd' ? 'addHook' : "addHook(…, 'bwd')");
    this.hooks.push({ target, fn, dir: direction, permanent: options.isPermanent ?? false });
  }

  /** A hook's target and function, checked. */
  private checkHook(target: HookTarget, fn: unknown, what: string, points: ReadonlyMap<HookName, HookPointInfo> = this.hookInfo): void {
    if (typeof target === 'string' && !points.has(target)) {
      throw new Error(`${what}: unknown hook point '${target}'; see model.hookPoints() for the ${points.size} names`);
    }
    if (typeof fn !== 'function') throw new Error(`${what}: the hook for '${String(target)}' must be a function (value, hook) => Tensor | void`);
  }

  /** Removes hooks added with addHook (permanent ones too when asked). */
  resetHooks(opts: { includingPermanent?: boolean } = {}): void {
    for (let i = this.hooks.length - 1; i >= 0; i--) {
      if (!this.hooks[i].permanent || opts.includingPermanent) this.hooks.splice(i, 1);
    }
  }

  /** Runs `fn` with the hooks added, and always removes them afterwards (TransformerLens's `hooks()` context). */
  async withHooks<T>(fwdHooks: readonly FwdHook[], fn: (model: this) => Promise<T> | T, opts: { bwdHooks?: readonly BwdHook[] } = {}): Promise<T> {
    const added: RegisteredHook[] = [];
    try {
      for (const [target, hookFn] of fwdHooks) {
        this.addHook(target, hookFn);
        added.push(this.hooks[this.hooks.length - 1]);
      }
      for (const [target, hookFn] of opts.bwdHooks ?? []) {
        this.addHook(target, hookFn, 'bwd');
        added.push(this.hooks[this.hooks.length - 1]);
      }
      return await fn(this);
    } finally {
      for (const h of added) {
        const i = this.hooks.indexOf(h);
        if (i >= 0) this.hooks.splice(i, 1);
      }
    }
  }

  /**
   * The model's registered hooks of direction `dir` followed by this call's own, by hook name, among `points` (the run's
   * hook points: the model's and those of the SAEs spliced in).
   */
  private activeHooks(dir: 'fwd', callHooks: readonly FwdHook[], points: ReadonlyMap<HookName, HookPointInfo>): Map<HookName, HookFn[]>;
  private activeHooks(dir: 'bwd', callHooks: readonly BwdHook[], points: ReadonlyMap<HookName, HookPointInfo>): Map<HookName, BwdHookFn[]>;
  private activeHooks(dir: HookDirection, callHooks: readonly (FwdHook | BwdHook)[], points: ReadonlyMap<HookName, HookPointInfo>): Map<HookName, (HookFn | BwdHookFn)[]> {
    const byName = new Map<HookName, (HookFn | BwdHookFn)[]>();
    const own = callHooks.map(([target, fn]) => {
      this.checkHook(target, fn, dir === 'fwd' ? 'fwdHooks' : 'bwdHooks', points);
      return { target, fn, dir, permanent: false };
    });
    for (const h of [...this.hooks.filter((r) => r.dir === dir), ...own]) {
      for (const name of points.keys()) {
        const match = typeof h.target === 'string' ? h.target === name : h.target(name);
        if (match) byName.set(name, [...(byName.get(name) ?? []), h.fn]);
      }
    }
    return byName;
  }

  // ---- running ------------------------------------------------------------------------------

  private async execute(
    input: ModelInput,
    opts: ForwardOptions,
    observe: ReadonlySet<HookName>,
    callHooks: readonly FwdHook[],
    run: SaeRun,
    backward?: BackwardRequest,
  ): Promise<{ output: unknown; activations: Map<HookName, Tensor>; tokens: number[][]; grads: Map<HookName, Tensor>; backwardValue: number | null }> {
    const returnType = opts.returnType ?? 'logits';
    if (!['logits', 'loss', 'both', 'none'].includes(returnType)) {
      throw new Error(`returnType must be 'logits', 'loss', 'both' or 'none'; got '${String(returnType)}'`);
    }
    if (backward) {
      for (const [what, v] of [['startAtLayer', opts.startAtLayer], ['stopAtLayer', opts.stopAtLayer], ['logitPositions', opts.logitPositions]] as const) {
        if (v !== undefined) throw new Error(`${what} cannot be combined with a backward pass (inclBwd / backwardFrom): the backward pass runs the whole model`);
      }
    }
    let { tokens, attentionMask } = this.prepareInput(input, opts);
    const hooks = this.activeHooks('fwd', callHooks, run.points);
    const activations = new Map<HookName, Tensor>();

    // hook_tokens sits on the input itself: run its hooks here, before the graph.
    const tokenHooks = hooks.get('hook_tokens');
    if (tokenHooks || observe.has('hook_tokens')) {
      let t = new Tensor(Float32Array.from(tokens.flat()), [tokens.length, tokens[0].length]);
      for (const fn of tokenHooks ?? []) {
        const r = await fn(t, { name: 'hook_tokens', layer: () => null });
        if (r instanceof Tensor) t = r;
      }
      tokens = this.prepareInput(t).tokens;
      if (observe.has('hook_tokens')) activations.set('hook_tokens', t);
      hooks.delete('hook_tokens');
    }

    const needLoss = returnType === 'loss' || returnType === 'both';
    const pos = tokens[0].length;
    if (needLoss && pos < 2) throw new Error('a loss needs at least 2 tokens per prompt');
    if (needLoss && opts.logitPositions) throw new Error('logitPositions computes some logits only; it cannot give a loss');
    const seed = backward ? compileSeed(backward.from, { tokens, attentionMask, dVocab: this.cfg.d_vocab }) : undefined;
    const targets = needLoss || seed?.kind === 'loss' ? tokens.map((row) => [...row.slice(1), 0]) : undefined;
    const engineBackward: EngineBackward | undefined = backward && seed
      ? { seed, observe: new Set([...backward.observe].filter((n) => n !== 'hook_tokens')), hooks: this.activeHooks('bwd', backward.callHooks, run.points) }
      : undefined;
    const graphObserve = new Set<HookName>([...observe].filter((n) => n !== 'hook_tokens'));
    const startAt = this.layerEdge('startAtLayer', opts.startAtLayer);
    if (startAt && !(opts.residual instanceof Tensor)) throw new Error('startAtLayer needs `residual`: the resid_pre of that block, a Tensor [batch, pos, d_model]');
    if (startAt && opts.residual!.shape.join(',') !== [tokens.length, pos, this.cfg.d_model].join(',')) {
      throw new Error(`residual must be [${tokens.length}, ${pos}, ${this.cfg.d_model}] (batch, pos, d_model); got [${opts.residual!.shape.join(', ')}]`);
    }
    const stopAt = this.layerEdge('stopAtLayer', opts.stopAtLayer);
    if (stopAt && returnType !== 'logits') throw new Error(`stopAtLayer returns the residual stream; returnType must be 'logits', got '${returnType}'`);
    if (stopAt) graphObserve.add(stopAt);
    const result = await this.engine.run({
      startAt: startAt ? { hook: startAt, value: opts.residual! } : undefined,
      stopAt: stopAt ?? undefined,
      logitPositions: opts.logitPositions?.map((r) => [...r]),
      tokens,
      attentionMask,
      observe: graphObserve,
      hooks,
      interventions: opts.interventions?.length
        ? materializeInterventions(this.cfg, opts.interventions, tokens.length, pos, run.points)
        : undefined,
      saes: run.saes,
      logits: returnType === 'logits' || returnType === 'both',
      targets,
      backward: engineBackward,
    });
    for (const [k, v] of result.activations) activations.set(k, v);

    let loss: Loss | undefined;
    if (needLoss) {
      // TransformerLens's lm_cross_entropy_loss from the graph's log p(next token) per position.
      const lp = result.tokenLogprobs!; // [batch, pos]
      loss = nextTokenLoss((b, p) => lp.data[b * pos + p], tokens.length, pos, attentionMask, opts.lossPerToken ?? false);
    }
    let output: unknown;
    if (stopAt) output = result.activations.get(stopAt);
    else if (returnType === 'logits') output = result.logits;
    else if (returnType === 'loss') output = loss;
    else if (returnType === 'both') output = { logits: result.logits!, loss: loss! };
    let backwardValue: number | null = null;
    if (seed?.kind === 'loss') {
      const lp = result.tokenLogprobs!; // [batch, pos]
      backwardValue = typeof loss === 'number' ? loss : (nextTokenLoss((b, p) => lp.data[b * pos + p], tokens.length, pos, attentionMask, false) as number);
    } else if (result.seedValue !== undefined) backwardValue = result.seedValue;
    return { output, activations, tokens, grads: result.grads ?? new Map(), backwardValue };
  }

  /** The backward pass a run asks for: inclBwd / backwardFrom / bwdHooks, checked. */
  private backwardRequest(
    opts: { returnType?: ReturnType; lossPerToken?: boolean; inclBwd?: boolean; backwardFrom?: BackwardFrom; bwdHooks?: readonly BwdHook[] },
    gradNames: ReadonlySet<HookName>,
  ): BackwardRequest | undefined {
    const callHooks = opts.bwdHooks ?? [];
    if (opts.backwardFrom === undefined && !opts.inclBwd) {
      if (callHooks.length > 0) {
        throw new Error('bwdHooks need a backward pass: give backwardFrom (the scalar to differentiate: \'loss\', a metric with a gradient, or { gradient })');
      }
      return undefined;
    }
    let from = opts.backwardFrom;
    if (from === undefined) {
      // TransformerLens's run_with_cache(…, incl_bwd=True) differentiates what it returns, which must be a scalar.
      if ((opts.returnType ?? 'logits') !== 'loss') {
        throw new Error(`inclBwd differentiates the scalar the run returns: use returnType 'loss' (got '${opts.returnType ?? 'logits'}'), or give backwardFrom (a metric of the logits)`);
      }
      from = 'loss';
    }
    if (from === 'loss' && opts.lossPerToken && opts.backwardFrom === undefined) {
      throw new Error('inclBwd needs a scalar, but lossPerToken returns a loss per token; drop lossPerToken, or give backwardFrom');
    }
    return { from, observe: gradNames, callHooks };
  }

  /** The hook point where a run starts/stops for TransformerLens's start_at_layer / stop_at_layer = L. */
  private layerEdge(what: string, layer: number | undefined): HookName | null {
    if (layer === undefined) return null;
    const n = this.cfg.n_layers;
    if (!Number.isInteger(layer) || layer < 0 || layer > n) throw new Error(`${what} must be an integer in 0…${n}; got ${layer}`);
    return layer < n ? blockHook(layer, 'hook_resid_pre') : blockHook(n - 1, 'hook_resid_post');
  }

  /** The forward pass: logits [batch, pos, d_vocab] by default, or the loss, or both. */
  async forward<R extends ReturnType = 'logits'>(input: ModelInput, opts: ForwardOptions & { returnType?: R } = {}): Promise<ForwardOutput<R>> {
    return (await this.execute(input, opts, new Set(), [], this.saeRun())).output as ForwardOutput<R>;
  }

  /** TransformerLens's run_with_cache: the forward output and an ActivationCache of the chosen hook points. */
  async runWithCache<R extends ReturnType = 'logits'>(
    input: ModelInput,
    opts: RunWithCacheOptions<R> = {},
  ): Promise<[ForwardOutput<R>, ActivationCache]> {
    return this.cachedRun(input, opts, this.saeRun());
  }

  private async cachedRun<R extends ReturnType>(input: ModelInput, opts: RunWithCacheOptions<R>, run: SaeRun): Promise<[ForwardOutput<R>, ActivationCache]> {
    const names = this.selectNames(opts.namesFilter, run.points);
    const backward = this.backwardRequest(opts, opts.inclBwd ? names : new Set());
    const { output, activations, tokens, grads, backwardValue } = await this.execute(input, opts, names, [], run, backward);
    const store = new Map<CacheKey, Tensor>(activations);
    for (const [k, v] of grads) store.set(gradName(k), v);
    if (opts.removeBatchDim) {
      if (tokens.length !== 1) throw new Error(`removeBatchDim needs a batch of one; this batch has ${tokens.length}`);
      for (const [k, v] of store) store.set(k, v.squeeze(0));
    }
    return [output as ForwardOutput<R>, new ActivationCache(store, !opts.removeBatchDim, this, backward ? backwardValue : null)];
  }

  /** TransformerLens's run_with_hooks: a forward pass with these hooks, removed afterwards. */
  async runWithHooks<R extends ReturnType = 'logits'>(input: ModelInput, opts: RunWithHooksOptions<R> = {}): Promise<ForwardOutput<R>> {
    return this.hookedRun(input, opts, this.saeRun());
  }

  private async hookedRun<R extends ReturnType>(input: ModelInput, opts: RunWithHooksOptions<R>, run: SaeRun): Promise<ForwardOutput<R>> {
    const backward = this.backwardRequest({ ...opts, inclBwd: false }, new Set());
    if (opts.resetHooksEnd === false) {
      for (const [t] of [...(opts.fwdHooks ?? []), ...(opts.bwdHooks ?? [])]) {
        if (typeof t === 'string' && !this.hookInfo.has(t) && run.points.has(t)) {
          throw new Error(`resetHooksEnd: false keeps the hooks on the model, but '${t}' belongs to an SAE of this run only; attach the SAE with addSae first`);
        }
      }
      for (const [t, fn] of opts.fwdHooks ?? []) this.addHook(t, fn);
      for (const [t, fn] of opts.bwdHooks ?? []) this.addHook(t, fn, 'bwd');
      return (await this.execute(input, opts, new Set(), [], run, backward ? { ...backward, callHooks: [] } : undefined)).output as ForwardOutput<R>;
    }
    // The hooks belong to this call only: runs in flight at the same time do not see them.
    return (await this.execute(input, opts, new Set(), opts.fwdHooks ?? [], run, backward)).output as ForwardOutput<R>;
  }

  private selectNames(filter: NamesFilter | undefined, points: ReadonlyMap<HookName, HookPointInfo>): Set<HookName> {
    const all = [...points.keys()];
    if (filter === undefined) return new Set([...points.values()].filter((h) => h.suffix !== 'attn.hook_result').map((h) => h.name));
    if (typeof filter === 'function') return new Set(all.filter(filter));
    const list = typeof filter === 'string' ? [filter] : [...filter];
    for (const n of list) {
      if (!points.has(n)) throw new Error(`namesFilter: unknown hook point '${n}'; see model.hookPoints()`);
    }
    return new Set(list);
  }

  // ---- sparse autoencoders (TransformerLens's HookedSAETransformer) --------------------------------

  /**
   * The SAEs of a run: those attached with addSae, then `extra` (which replace an attached SAE at the
   * same hook point for this run), with the run's hook points.
   */
  private saeRun(extra: SaeRunOptions | null = null): SaeRun {
    const runSaes = extra ? saeList(extra.saes, 'runWithSaes') : [];
    if (runSaes.length === 0 && this.attached.size === 0) return { saes: [], points: this.modelHookInfo };
    const useErrorTerm = extra?.useErrorTerm ?? false;
    if (typeof useErrorTerm !== 'boolean') throw new Error(`useErrorTerm must be true or false; got ${JSON.stringify(useErrorTerm)}`);
    const saes = engineSaes([...this.attached.values(), ...runSaes.map((sae) => ({ sae, useErrorTerm }))], this.cfg, this.modelHookInfo);
    return { saes, points: withSaeHookPoints(this.modelHookInfo, saes.map((s) => ({ hook: s.hook, d_in: s.spec.d_in, d_sae: s.spec.d_sae, useErrorTerm: s.useErrorTerm }))) };
  }

  /**
   * HookedSAETransformer's add_sae: splices `sae` in at its hook_name for every later run (forward,
   * caches, hooks, generate) until resetSaes; replaces an SAE attached at the same hook point. Its
   * hook points (`<hook_name>.hook_sae_acts_post`, …) join model.hookPoints().
   */
  addSae(sae: Sae, opts: { useErrorTerm?: boolean } = {}): void {
    const [checked] = saeList(sae, 'addSae');
    engineSaes([{ sae: checked, useErrorTerm: false }], this.cfg, this.modelHookInfo); // throws unless it fits
    this.attached.set(checked.cfg.hook_name as ModelHookName, { sae: checked, useErrorTerm: opts.useErrorTerm ?? false });
    this.hookInfo = this.saeRun().points as Map<HookName, HookPointInfo>;
  }

  /** HookedSAETransformer's reset_saes: detaches the SAEs at these hook points (default all). */
  resetSaes(hookNames?: string | readonly string[]): void {
    const names = hookNames === undefined ? [...this.attached.keys()] : typeof hookNames === 'string' ? [hookNames] : [...hookNames];
    for (const n of names) this.attached.delete(n as ModelHookName);
    this.hookInfo = this.saeRun().points as Map<HookName, HookPointInfo>;
  }

  /** The attached SAEs, by hook point. */
  get saes(): ReadonlyMap<string, { sae: Sae; useErrorTerm: boolean }> {
    return this.attached;
  }

  /** HookedSAETransformer's run_with_saes: a forward pass with these SAEs spliced in (returns what forward returns). */
  async runWithSaes<R extends ReturnType = 'logits'>(input: ModelInput, opts: ForwardOptions & SaeRunOptions & { returnType?: R }): Promise<ForwardOutput<R>> {
    return (await this.execute(input, opts, new Set(), [], this.saeRun(opts))).output as ForwardOutput<R>;
  }

  /** HookedSAETransformer's run_with_cache_with_saes: [output, cache] with the SAEs' hook points among the names to cache. */
  async runWithCacheWithSaes<R extends ReturnType = 'logits'>(input: ModelInput, opts: RunWithCacheOptions<R> & SaeRunOptions): Promise<[ForwardOutput<R>, ActivationCache]> {
    return this.cachedRun(input, opts, this.saeRun(opts));
  }

  /** HookedSAETransformer's run_with_hooks_with_saes: hooks may target the SAEs' hook points. */
  async runWithHooksWithSaes<R extends ReturnType = 'logits'>(input: ModelInput, opts: RunWithHooksOptions<R> & SaeRunOptions): Promise<ForwardOutput<R>> {
    return this.hookedRun(input, opts, this.saeRun(opts));
  }

  /**
   * TransformerLens's generate (see generate.ts for options and defaults): continues the prompts
   * token by token, sampled or greedy, with a key/value cache unless useKvCache is false.
   */
  generate<R extends GenerateReturnType = 'input'>(input: ModelInput, opts: GenerateOptions & { returnType?: R } = {}): Promise<GenerateOutput<R>> {
    const run = this.saeRun();
    return generate(this, input, opts, {
      decodeStep: (tokens, mask, past, additions) => this.engine.decodeStep(tokens, mask, past, { additions, saes: run.saes }),
      hookCount: this.hooks.filter((h) => h.dir === 'fwd').length,
      hookPoints: run.points,
    });
  }

  // ---- weights ------------------------------------------------------------------------------

  /** A weight by TransformerLens name, layer-stacked: `W_Q [n_layers, n_heads, d_model, d_head]`, … (a copy). */
  weight(name: WeightName): Tensor {
    return this.weights.stacked(name);
  }
  get W_E(): Tensor { return this.weight('W_E'); }
  get W_pos(): Tensor { return this.weight('W_pos'); }
  get W_Q(): Tensor { return this.weight('W_Q'); }
  get W_K(): Tensor { return this.weight('W_K'); }
  get W_V(): Tensor { return this.weight('W_V'); }
  get W_O(): Tensor { return this.weight('W_O'); }
  get b_Q(): Tensor { return this.weight('b_Q'); }
  get b_K(): Tensor { return this.weight('b_K'); }
  get b_V(): Tensor { return this.weight('b_V'); }
  get b_O(): Tensor { return this.weight('b_O'); }
  get W_in(): Tensor { return this.weight('W_in'); }
  get b_in(): Tensor { return this.weight('b_in'); }
  get W_out(): Tensor { return this.weight('W_out'); }
  get b_out(): Tensor { return this.weight('b_out'); }
  get W_U(): Tensor { return this.weight('W_U'); }
  get b_U(): Tensor { return this.weight('b_U'); }

  /**
   * One matrix transposed, [out, in], as the model itself stores it: no copy (do not mutate it);
   * `weights.matrix(name, layer)`. W_U gives W_Uᵀ [d_vocab, d_model] (row t is token t's unembedding
   * direction); with `layer`, W_Q/W_K/W_V give [n_heads·d_head, d_model], W_O [d_model, n_heads·d_head],
   * W_in [d_mlp, d_model], W_out [d_model, d_mlp].
   */
  transposedWeight(name: MatrixName, layer?: number): Float32Array {
    if (!(MATRIX_NAMES as readonly string[]).includes(name)) throw new Error(`transposedWeight: '${String(name)}' is not one of ${MATRIX_NAMES.join(', ')}`);
    return this.weights.matrix(name, layer, 'transposedWeight');
  }

  /**
   * TransformerLens's tokens_to_residual_directions: W_U[:, t] for each token t (an id, a single-token
   * string, a list or [batch, pos] of ids): [...tokens' shape, d_model].
   */
  tokensToResidualDirections(tokens: TokenSpec): Tensor {
    return tokensToResidualDirections(this, tokens);
  }

  /** Every head's QK circuit W_Q W_Kᵀ, factored: [n_layers, n_heads, d_model, d_model]. */
  get QK(): FactoredMatrix {
    return QK(this);
  }

  /** Every head's OV circuit W_V W_O, factored: [n_layers, n_heads, d_model, d_model]. */
  get OV(): FactoredMatrix {
    return OV(this);
  }

  /** The framework's composition scores [n_layers, n_heads, n_layers, n_heads] (masked to later layers). */
  allCompositionScores(mode: CompositionMode, opts: CompositionOptions = {}): Promise<Tensor> {
    return allCompositionScores(this, mode, opts);
  }

  /**
   * The weights in Lensboard's layout (weights.ts): a new copy of every array, e.g. to build another
   * model with fromWeights. To read weights, use `weights.matrix`/`vector`/`stacked` (no full copy).
   */
  get rawWeights(): TransformerWeights {
    return this.weights.toTransformerWeights();
  }

  /**
   * The onnxruntime kernels the analyses multiply with (circuits, the logit lens): made on first use
   * with the model's thread count and released by dispose().
   */
  get kernels(): KernelSessions {
    this.ownKernels ??= new KernelSessions(this.options.threads ?? 0);
    return this.ownKernels;
  }

  /** Releases onnxruntime's sessions (the engine's and the kernels'); a later run builds them again. */
  async dispose(): Promise<void> {
    const kernels = this.ownKernels;
    this.ownKernels = null;
    await Promise.all([this.engine.dispose(), kernels?.dispose()]);
  }
}
