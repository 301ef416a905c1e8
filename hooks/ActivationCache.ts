/** The activations of one run, by hook name, with TransformerLens's residual-stream decomposition methods (ActivationCache). */
import { applySlice, sliceIndices, type SliceInput } from './slice.ts';
import type { HookedTransformerConfig } from './config.ts';
import type { KernelSessions } from './engine/kernels.ts';
import { layerNormRows } from './ops/index.ts';
import { blockHook, getActName, layerNormHooks, type CacheKey, type HookName } from './hookPoints.ts';
import { Tensor } from './tensor.ts';
import type { WeightStore } from './weightStore.ts';

/**
 * What the cache needs from its model for the decomposition methods: the config, the weights the
 * model runs (its WeightStore, read without copies) and its kernels. A HookedTransformer is one.
 */
export interface CacheModel {
  readonly cfg: HookedTransformerConfig;
  readonly weights: WeightStore;
  /** The model's onnxruntime kernels (the logit lens's unembedding). */
  readonly kernels: KernelSessions;
  /** For string tokens in `logitAttrs`. */
  toSingleToken?(token: string): number;
}

/** A token spec for logitAttrs: one token (id or single-token string), one per batch row (or per position), or [batch, pos]. */
export type TokenSpec = number | string | readonly number[] | readonly (readonly number[])[];

/** A stack and, with `returnLabels`, its component labels. */
export type WithLabels<L extends boolean | undefined> = L extends true ? [Tensor, string[]] : Tensor;

interface LabelOption<L extends boolean | undefined> {
  /** Also return the component labels (`[stack, labels]`). */
  returnLabels?: L;
}

export interface AccumulatedResidOptions<L extends boolean | undefined = undefined> extends LabelOption<L> {
  /** Take streams up to the input of this layer; n_layers, -1 or null (default) = all, incl. the final resid_post. */
  layer?: number | null;
  /** Include resid_mid of every earlier layer. */
  inclMid?: boolean;
  /** Include resid_mid of `layer` itself (the MLP input). */
  mlpInput?: boolean;
  /** Apply the LayerNorm feeding `layer` (ln_final when layer = n_layers). */
  applyLn?: boolean;
  /**
   * With applyLn and layer = n_layers: normalise each component with its own statistics through the
   * full ln_final (the logit lens; recent TransformerLens). Default true there; false uses the cached scale.
   */
  recomputeLn?: boolean;
  posSlice?: SliceInput;
}

export interface DecomposeResidOptions<L extends boolean | undefined = undefined> extends LabelOption<L> {
  layer?: number | null;
  /** Also include attn_out of `layer` (decompose the MLP input of `layer`). */
  mlpInput?: boolean;
  mode?: 'all' | 'mlp' | 'attn';
  applyLn?: boolean;
  posSlice?: SliceInput;
  /** Include embed and pos_embed (default true). */
  inclEmbeds?: boolean;
}

export interface StackHeadResultsOptions<L extends boolean | undefined = undefined> extends LabelOption<L> {
  /** Heads of every layer strictly before this one; n_layers, -1 or null (default) = all. */
  layer?: number | null;
  /** Append `remainder` = resid_post[layer - 1] minus the sum of the heads. */
  inclRemainder?: boolean;
  posSlice?: SliceInput;
  applyLn?: boolean;
}

export interface StackNeuronResultsOptions<L extends boolean | undefined = undefined> extends LabelOption<L> {
  /** Neurons of every layer strictly before this one; n_layers, -1 or null = all. */
  layer?: number | null;
  posSlice?: SliceInput;
  /** Which neurons of each layer (a number selects one neuron and keeps the dim, as TL). */
  neuronSlice?: SliceInput;
  inclRemainder?: boolean;
  applyLn?: boolean;
  mlpInput?: boolean;
}

export interface ApplyLnOptions {
  /** The layer whose input the stack is; n_layers, -1 or null (default) = the unembed (ln_final). */
  layer?: number | null;
  /** ln2 (the MLP's input) instead of ln1. */
  mlpInput?: boolean;
  /** The pos slice already applied to the stack (applied here to the cached scale). */
  posSlice?: SliceInput;
  /** A batch slice to apply to the stack (dim 1) and the scale. */
  batchSlice?: SliceInput;
  /** Whether the stack has a batch dim (default: the cache's). */
  hasBatchDim?: boolean;
  /** Normalise each component through the full ln_final with its own statistics (only at the unembed). */
  recomputeLn?: boolean;
}

export interface FullResidDecompositionOptions<L extends boolean | undefined = undefined> extends LabelOption<L> {
  layer?: number | null;
  mlpInput?: boolean;
  /** One component per neuron (default true) or per MLP layer. */
  expandNeurons?: boolean;
  applyLn?: boolean;
  posSlice?: SliceInput;
}

export interface LogitAttrsOptions {
  posSlice?: SliceInput;
  batchSlice?: SliceInput;
  hasBatchDim?: boolean;
}

export class ActivationCache {
  private readonly store: Map<CacheKey, Tensor>;

  constructor(
    /** Activations by hook point in forward order, and (from a run with a backward pass) gradients `<hook>_grad`. */
    store: Map<CacheKey, Tensor>,
    /** True when the batch dimension was removed (a batch of one, `removeBatchDim`). */
    readonly hasBatchDim = true,
    /** The model that produced the activations; needed by the decomposition methods. */
    readonly model?: CacheModel,
    /** With gradients: the scalar they are the gradients of (the loss, or the metric of `backwardFrom`). */
    readonly backwardValue: number | null = null,
  ) {
    this.store = store;
  }

  /**
   * The activation at a hook point: a full name (`blocks.3.attn.hook_pattern`) or TransformerLens's
   * shorthand as arguments to getActName (`get('pattern', 3)`, `get('scale', 2, 'ln1')`).
   */
  get(name: CacheKey | string, layer?: number | null, layerType?: 'ln1' | 'ln2' | 'ln_final'): Tensor {
    const key = this.resolve(name, layer, layerType);
    const value = this.store.get(key);
    if (!value) {
      const known = [...this.store.keys()];
      const how = key.endsWith('_grad')
        ? 'Gradients are cached by runWithCache(input, { inclBwd: true, … }) for the hook points of namesFilter.'
        : 'Pass it in namesFilter to cache it.';
      throw new Error(`ActivationCache has no '${key}'. ${known.length} cached: ${known.slice(0, 8).join(', ')}${known.length > 8 ? ', …' : ''}. ${how}`);
    }
    return value;
  }

  has(name: CacheKey | string, layer?: number | null, layerType?: 'ln1' | 'ln2' | 'ln_final'): boolean {
    try {
      return this.store.has(this.resolve(name, layer, layerType));
    } catch {
      return false;
    }
  }

  /** Cached hook names in forward order, then (with a backward pass) the gradients in the order the backward pass reached them, as TransformerLens's cache. */
  keys(): CacheKey[] {
    return [...this.store.keys()];
  }

  entries(): [CacheKey, Tensor][] {
    return [...this.store.entries()];
  }

  get size(): number {
    return this.store.size;
  }

  private resolve(name: string, layer?: number | null, layerType?: 'ln1' | 'ln2' | 'ln_final'): CacheKey {
    if (this.store.has(name as CacheKey)) return name as CacheKey;
    if (name.includes('.') || name.startsWith('hook_')) return name as CacheKey;
    return getActName(name, layer, layerType);
  }

  // ---- residual-stream decomposition (TransformerLens) ------------------------------------------

  private requireModel(what: string): CacheModel {
    if (!this.model) {
      throw new Error(`ActivationCache.${what} needs the model's config and weights; use a cache from model.runWithCache (or pass the model as the third constructor argument)`);
    }
    return this.model;
  }

  /** TL's layer argument: null, undefined or -1 → n_layers; otherwise an integer in [0, n_layers]. */
  private layerArg(what: string, layer: number | null | undefined, cfg: HookedTransformerConfig): number {
    if (layer === null || layer === undefined || layer === -1) return cfg.n_layers;
    if (!Number.isInteger(layer) || layer < 0 || layer > cfg.n_layers) {
      throw new Error(`ActivationCache.${what}: layer ${layer} is out of range; allowed 0…${cfg.n_layers} (or -1/null for all)`);
    }
    return layer;
  }

  /** The shape a component has after the pos slice (from hook_embed, or resid_pre 0). */
  private componentShape(posSlice: SliceInput): number[] {
    const ref = this.has('hook_embed') ? this.get('hook_embed') : this.get(blockHook(0, 'hook_resid_pre'));
    return applySlice(ref, posSlice, -2, 'posSlice').shape;
  }

  /**
   * TL accumulated_resid: resid_pre of each layer before `layer` (and resid_mid with inclMid), and
   * the final resid_post when layer = n_layers. Stack [component, batch, pos, d_model]; labels
   * `0_pre`, `0_mid`, …, `final_post`.
   */
  accumulatedResid<L extends boolean | undefined = undefined>(opts: AccumulatedResidOptions<L> = {}): WithLabels<L> {
    const cfg = this.requireModel('accumulatedResid').cfg;
    const layer = this.layerArg('accumulatedResid', opts.layer, cfg);
    if (opts.mlpInput && layer === cfg.n_layers) throw new Error('ActivationCache.accumulatedResid: mlpInput needs layer < n_layers (the unembed has no MLP)');
    const parts: Tensor[] = [];
    const labels: string[] = [];
    for (let l = 0; l <= layer; l++) {
      if (l === cfg.n_layers) {
        parts.push(this.get(blockHook(cfg.n_layers - 1, 'hook_resid_post')));
        labels.push('final_post');
        continue;
      }
      parts.push(this.get(blockHook(l, 'hook_resid_pre')));
      labels.push(`${l}_pre`);
      if ((opts.inclMid && l < layer) || (opts.mlpInput && l === layer)) {
        parts.push(this.get(blockHook(l, 'hook_resid_mid')));
        labels.push(`${l}_mid`);
      }
    }
    let stack = Tensor.stack(parts.map((p) => applySlice(p, opts.posSlice, -2, 'posSlice')), 0);
    if (opts.applyLn) {
      stack = this.applyLnToStack(stack, {
        layer,
        mlpInput: opts.mlpInput,
        posSlice: opts.posSlice,
        recomputeLn: opts.recomputeLn ?? layer === cfg.n_layers,
      });
    }
    return withLabels(stack, labels, opts.returnLabels);
  }

  /**
   * TL decompose_resid: the outputs of every earlier layer (attn_out, mlp_out per layer, by `mode`),
   * after embed and pos_embed; they sum to resid_pre[layer] (resid_mid[layer] with mlpInput).
   * Labels `embed`, `pos_embed`, `0_attn_out`, `0_mlp_out`, ….
   */
  decomposeResid<L extends boolean | undefined = undefined>(opts: DecomposeResidOptions<L> = {}): WithLabels<L> {
    const cfg = this.requireModel('decomposeResid').cfg;
    const layer = this.layerArg('decomposeResid', opts.layer, cfg);
    const mode = opts.mode ?? 'all';
    if (!['all', 'mlp', 'attn'].includes(mode)) throw new Error(`ActivationCache.decomposeResid: mode '${mode}' is not allowed; use 'all', 'mlp' or 'attn'`);
    if (opts.mlpInput && layer === cfg.n_layers) throw new Error('ActivationCache.decomposeResid: mlpInput needs layer < n_layers');
    const inclAttn = mode !== 'mlp';
    const inclMlp = mode !== 'attn';
    const parts: Tensor[] = [];
    const labels: string[] = [];
    if (opts.inclEmbeds ?? true) {
      parts.push(this.get('hook_embed'), this.get('hook_pos_embed'));
      labels.push('embed', 'pos_embed');
    }
    for (let l = 0; l < layer; l++) {
      if (inclAttn) {
        parts.push(this.get(blockHook(l, 'hook_attn_out')));
        labels.push(`${l}_attn_out`);
      }
      if (inclMlp) {
        parts.push(this.get(blockHook(l, 'hook_mlp_out')));
        labels.push(`${l}_mlp_out`);
      }
    }
    if (opts.mlpInput && inclAttn) {
      parts.push(this.get(blockHook(layer, 'hook_attn_out')));
      labels.push(`${layer}_attn_out`);
    }
    let stack = parts.length
      ? Tensor.stack(parts.map((p) => applySlice(p, opts.posSlice, -2, 'posSlice')), 0)
      : Tensor.zeros([0, ...this.componentShape(opts.posSlice)]);
    if (opts.applyLn) stack = this.applyLnToStack(stack, { layer, mlpInput: opts.mlpInput, posSlice: opts.posSlice });
    return withLabels(stack, labels, opts.returnLabels);
  }

  /**
   * TL compute_head_results: caches `blocks.L.attn.hook_result` [batch, pos, head, d_model] = z @ W_O
   * (per head, no b_O) for every layer where it is not cached yet.
   */
  computeHeadResults(): void {
    const model = this.requireModel('computeHeadResults');
    const { n_layers } = model.cfg;
    const missing: number[] = [];
    for (let l = 0; l < n_layers; l++) if (!this.store.has(blockHook(l, 'attn.hook_result'))) missing.push(l);
    if (missing.length === 0) return;
    const computed = new Map<CacheKey, Tensor>(); // each layer's hook_z -> its hook_result
    for (const l of missing) computed.set(blockHook(l, 'attn.hook_z'), headResults(model, l, this.get(blockHook(l, 'attn.hook_z'))));
    // Re-insert in forward order (each result right after its layer's hook_z).
    const entries = [...this.store.entries()];
    this.store.clear();
    for (const [k, v] of entries) {
      this.store.set(k, v);
      const l = missing.find((m) => blockHook(m, 'attn.hook_z') === k);
      if (l !== undefined) this.store.set(blockHook(l, 'attn.hook_result'), computed.get(k)!);
    }
  }

  /**
   * TL stack_head_results: every head's output (its hook_result, computed from hook_z and W_O when
   * not cached) of the layers before `layer`, stacked [layer·n_heads (+1), batch, pos, d_model];
   * labels `L0H0`, … (and `remainder`).
   */
  stackHeadResults<L extends boolean | undefined = undefined>(opts: StackHeadResultsOptions<L> = {}): WithLabels<L> {
    const model = this.requireModel('stackHeadResults');
    const { n_heads } = model.cfg;
    const layer = this.layerArg('stackHeadResults', opts.layer, model.cfg);
    const parts: Tensor[] = [];
    const labels: string[] = [];
    for (let l = 0; l < layer; l++) {
      const name = blockHook(l, 'attn.hook_result');
      const result = this.store.get(name) ?? headResults(model, l, this.get(blockHook(l, 'attn.hook_z'))); // [batch, pos, head, d_model]
      const sliced = applySlice(result, opts.posSlice, -3, 'posSlice');
      for (let h = 0; h < n_heads; h++) {
        parts.push(sliced.index(-2, h));
        labels.push(`L${l}H${h}`);
      }
    }
    if (opts.inclRemainder) {
      const total = applySlice(this.residBefore(layer, false, model.cfg), opts.posSlice, -2, 'posSlice');
      parts.push(parts.reduce((acc, p) => acc.sub(p), total));
      labels.push('remainder');
    }
    let stack = parts.length ? Tensor.stack(parts, 0) : Tensor.zeros([0, ...this.componentShape(opts.posSlice)]);
    if (opts.applyLn) stack = this.applyLnToStack(stack, { layer, posSlice: opts.posSlice });
    return withLabels(stack, labels, opts.returnLabels);
  }

  /** The residual stream entering `layer` (resid_post of layer - 1, or resid_mid of layer with mlpInput). */
  private residBefore(layer: number, mlpInput: boolean, cfg: HookedTransformerConfig): Tensor {
    if (mlpInput) return this.get(blockHook(layer, 'hook_resid_mid'));
    if (layer === 0) return this.get(blockHook(0, 'hook_resid_pre'));
    return this.get(blockHook(Math.min(layer, cfg.n_layers) - 1, 'hook_resid_post'));
  }

  /** TL stack_activation: the activation `name` of every layer before `layer` (-1/null = all), stacked [layer, ...]. */
  stackActivation(name: string, layer: number | null = -1, sublayerType?: 'ln1' | 'ln2'): Tensor {
    const cfg = this.requireModel('stackActivation').cfg;
    const upTo = this.layerArg('stackActivation', layer, cfg);
    if (upTo === 0) throw new Error('ActivationCache.stackActivation: layer 0 stacks nothing; give a layer ≥ 1');
    return Tensor.stack(Array.from({ length: upTo }, (_, l) => this.get(name, l, sublayerType)), 0);
  }

  /**
   * TL get_neuron_results: each neuron's contribution post[..., n] · W_out[n] of one layer,
   * [batch, pos, neurons, d_model] (not cached).
   */
  getNeuronResults(layer: number, neuronSlice?: SliceInput, posSlice?: SliceInput): Tensor {
    const model = this.requireModel('getNeuronResults');
    const { n_layers, d_mlp, d_model } = model.cfg;
    if (!Number.isInteger(layer) || layer < 0 || layer >= n_layers) throw new Error(`ActivationCache.getNeuronResults: layer ${layer} is out of range; allowed 0…${n_layers - 1}`);
    const neurons = sliceIndices(typeof neuronSlice === 'number' ? [neuronSlice] : neuronSlice, d_mlp, 'neuronSlice');
    const post = applySlice(this.get(blockHook(layer, 'mlp.hook_post')), posSlice, -2, 'posSlice'); // [...rest, d_mlp]
    const rows = post.size / d_mlp;
    const W_outRows = neurons.map((n) => outputRow(model, layer, n)); // W_out[n] [d_model] per neuron
    const out = new Float32Array(rows * neurons.length * d_model);
    for (let r = 0; r < rows; r++) {
      neurons.forEach((n, j) => {
        const a = post.data[r * d_mlp + n];
        const o = (r * neurons.length + j) * d_model;
        const w = W_outRows[j];
        for (let d = 0; d < d_model; d++) out[o + d] = a * w[d];
      });
    }
    return new Tensor(out, [...post.shape.slice(0, -1), neurons.length, d_model]);
  }

  /**
   * TL stack_neuron_results: each neuron's output post[..., n] · W_out[n] for the layers before
   * `layer`, stacked [layer·neurons (+1), batch, pos, d_model]; labels `L0N0`, … (and `remainder`).
   * Memory grows as layer · d_mlp · batch · pos · d_model: slice positions and neurons on big models.
   */
  stackNeuronResults<L extends boolean | undefined = undefined>(opts: StackNeuronResultsOptions<L> = {}): WithLabels<L> {
    const model = this.requireModel('stackNeuronResults');
    const { d_mlp, d_model } = model.cfg;
    const layer = this.layerArg('stackNeuronResults', opts.layer, model.cfg);
    if (opts.mlpInput && layer === model.cfg.n_layers) throw new Error('ActivationCache.stackNeuronResults: mlpInput needs layer < n_layers');
    const neurons = sliceIndices(opts.neuronSlice, d_mlp, 'neuronSlice');
    const labels: string[] = [];
    const restShape = this.componentShape(opts.posSlice).slice(0, -1); // [batch, pos] after the pos slice
    const rows = restShape.reduce((a, b) => a * b, 1);
    const out = new Float32Array(layer * neurons.length * rows * d_model); // [component, ...rest, d_model]
    let c = 0;
    for (let l = 0; l < layer; l++) {
      const post = applySlice(this.get(blockHook(l, 'mlp.hook_post')), opts.posSlice, -2, 'posSlice'); // [...rest, d_mlp]
      for (const n of neurons) {
        const base = c * rows * d_model;
        const w = outputRow(model, l, n); // W_out[n] [d_model]
        for (let r = 0; r < rows; r++) {
          const a = post.data[r * d_mlp + n];
          const o = base + r * d_model;
          for (let d = 0; d < d_model; d++) out[o + d] = a * w[d];
        }
        labels.push(`L${l}N${n}`);
        c++;
      }
    }
    let stack = new Tensor(out, [c, ...restShape, d_model]);
    if (opts.inclRemainder) {
      const total = applySlice(this.residBefore(layer, opts.mlpInput ?? false, model.cfg), opts.posSlice, -2, 'posSlice');
      const remainder = c > 0 ? total.sub(stack.sum(0)) : total;
      stack = Tensor.cat([stack, remainder.unsqueeze(0)], 0);
      labels.push('remainder');
    }
    if (opts.applyLn) stack = this.applyLnToStack(stack, { layer, posSlice: opts.posSlice, mlpInput: opts.mlpInput });
    return withLabels(stack, labels, opts.returnLabels);
  }

  /**
   * TL apply_ln_to_stack: treats each component of the stack [component, batch, pos, d_model] as input
   * to `layer` and applies that LayerNorm's centring and its CACHED scale (ln1/ln2 of `layer`, or
   * ln_final at n_layers): (x - mean(x)) / scale. LayerNorm weights are not applied (fold them, as TL
   * assumes). With recomputeLn at the unembed: the full ln_final with each component's own statistics.
   */
  applyLnToStack(stack: Tensor, opts: ApplyLnOptions = {}): Tensor {
    const model = this.requireModel('applyLnToStack');
    const cfg = model.cfg;
    const layer = this.layerArg('applyLnToStack', opts.layer, cfg);
    if (opts.mlpInput && layer === cfg.n_layers) throw new Error('ActivationCache.applyLnToStack: mlpInput needs layer < n_layers (the unembed reads ln_final)');
    if (stack.ndim < 2 || stack.shape[stack.ndim - 1] !== cfg.d_model) {
      throw new Error(`ActivationCache.applyLnToStack: the stack must be [component, ..., d_model=${cfg.d_model}]; got [${stack.shape.join(', ')}]`);
    }
    const hasBatchDim = opts.hasBatchDim ?? this.hasBatchDim;
    let s = stack;
    if (hasBatchDim && opts.batchSlice !== undefined && opts.batchSlice !== null) s = applySlice(s, opts.batchSlice, 1, 'batchSlice');
    if (opts.recomputeLn && layer === cfg.n_layers) return layerNormLastDim(s, cfg.eps, model.weights.layerNorm('ln_final'));
    const centred = s.sub(s.mean(-1, { keepdim: true }));
    const key = layerNormHooks(layer === cfg.n_layers ? null : layer, opts.mlpInput ? 'ln2' : 'ln1').scale;
    if (!this.store.has(key)) throw new Error(`ActivationCache.applyLnToStack: needs the cached LayerNorm scale '${key}'; cache it (namesFilter) to apply the LayerNorm`);
    let scale = applySlice(this.get(key), opts.posSlice, -2, 'posSlice'); // [batch, pos, 1]
    if (hasBatchDim && this.hasBatchDim && opts.batchSlice !== undefined && opts.batchSlice !== null) scale = applySlice(scale, opts.batchSlice, 0, 'batchSlice');
    return centred.div(scale);
  }

  /**
   * TL logit_attrs: each component's (LN-scaled, via the cached ln_final scale) dot product with the
   * unembedding direction W_U[:, token] (minus W_U[:, incorrect] when given). b_U is not included.
   * Tokens: one id/string, a [batch] list (or [pos] when its length is not the batch size), or [batch, pos].
   * Returns [component, batch, pos] (dims removed by int slices stay removed).
   */
  logitAttrs(residualStack: Tensor, tokens: TokenSpec, incorrectTokens?: TokenSpec, opts: LogitAttrsOptions = {}): Tensor {
    const model = this.requireModel('logitAttrs');
    let dirs = tokensToResidualDirections(model, tokens);
    if (incorrectTokens !== undefined) {
      const wrong = tokensToResidualDirections(model, incorrectTokens);
      if (wrong.shape.join(',') !== dirs.shape.join(',')) {
        throw new Error(`ActivationCache.logitAttrs: tokens and incorrectTokens must have the same shape; got [${dirs.shape.slice(0, -1).join(', ')}] and [${wrong.shape.slice(0, -1).join(', ')}]`);
      }
      dirs = dirs.sub(wrong);
    }
    const hasBatchDim = opts.hasBatchDim ?? this.hasBatchDim;
    const scaled = this.applyLnToStack(residualStack, { layer: -1, posSlice: opts.posSlice, batchSlice: opts.batchSlice, hasBatchDim });
    const batchKept = typeof opts.batchSlice !== 'number';
    if (hasBatchDim && batchKept && scaled.ndim === 4 && dirs.ndim === 2 && dirs.shape[0] === scaled.shape[1]) {
      dirs = dirs.unsqueeze(-2); // per-example directions broadcast over positions
    }
    return scaled.mul(dirs).sum(-1);
  }

  /**
   * TL get_full_resid_decomposition: every head, every neuron (or MLP layer), embed, pos_embed and
   * the accumulated biases (`bias`); they sum to the residual stream entering `layer`.
   */
  getFullResidDecomposition<L extends boolean | undefined = undefined>(opts: FullResidDecompositionOptions<L> = {}): WithLabels<L> {
    const model = this.requireModel('getFullResidDecomposition');
    const cfg = model.cfg;
    const layer = this.layerArg('getFullResidDecomposition', opts.layer, cfg);
    const mlpInput = opts.mlpInput ?? false;
    if (mlpInput && layer === cfg.n_layers) throw new Error('ActivationCache.getFullResidDecomposition: mlpInput needs layer < n_layers');
    const posSlice = opts.posSlice;
    const [heads, labels] = this.stackHeadResults({ layer: layer + (mlpInput ? 1 : 0), posSlice, returnLabels: true });
    const parts: Tensor[] = [heads];
    if (layer > 0) {
      if (opts.expandNeurons ?? true) {
        const [neurons, nl] = this.stackNeuronResults({ layer, posSlice, returnLabels: true });
        parts.push(neurons);
        labels.push(...nl);
      } else {
        const [mlps, ml] = this.decomposeResid({ layer, mlpInput, posSlice, inclEmbeds: false, mode: 'mlp', returnLabels: true });
        parts.push(mlps);
        labels.push(...ml);
      }
    }
    parts.push(applySlice(this.get('hook_embed'), posSlice, -2, 'posSlice').unsqueeze(0));
    parts.push(applySlice(this.get('hook_pos_embed'), posSlice, -2, 'posSlice').unsqueeze(0));
    labels.push('embed', 'pos_embed');
    const bias = accumulatedBias(model, layer, mlpInput, opts.expandNeurons ?? true); // [d_model]
    parts.push(Tensor.zeros([1, ...heads.shape.slice(1)]).add(bias));
    labels.push('bias');
    let stack = Tensor.cat(parts, 0);
    if (opts.applyLn) stack = this.applyLnToStack(stack, { layer, posSlice, mlpInput });
    return withLabels(stack, labels, opts.returnLabels);
  }
}

function withLabels<L extends boolean | undefined>(stack: Tensor, labels: string[], returnLabels: L | undefined): WithLabels<L> {
  return (returnLabels ? [stack, labels] : stack) as WithLabels<L>;
}

/** Neuron n's output direction W_out[n, :] of `layer`, [d_model] (a column of the stored W_outᵀ [d_model, d_mlp]). */
function outputRow(model: CacheModel, layer: number, n: number): Float32Array {
  const { d_model, d_mlp } = model.cfg;
  const W_outT = model.weights.matrix('W_out', layer); // [d_model, d_mlp]
  const row = new Float32Array(d_model);
  for (let d = 0; d < d_model; d++) row[d] = W_outT[d * d_mlp + n];
  return row;
}

/** Per-head outputs z[..., h, :] @ W_O[h] of one layer: z [..., head, d_head] → [..., head, d_model]. */
function headResults(model: CacheModel, layer: number, z: Tensor): Tensor {
  const { n_heads, d_head, d_model } = model.cfg;
  const H = n_heads * d_head;
  const W_OT = model.weights.matrix('W_O', layer); // [d_model, n_heads·d_head]
  const rows = z.size / H;
  const out = new Float32Array(rows * n_heads * d_model);
  for (let r = 0; r < rows; r++) {
    for (let h = 0; h < n_heads; h++) {
      const zo = (r * n_heads + h) * d_head;
      const o = (r * n_heads + h) * d_model;
      for (let d = 0; d < d_model; d++) {
        const wo = d * H + h * d_head;
        let acc = 0; // float64
        for (let e = 0; e < d_head; e++) acc += z.data[zo + e] * W_OT[wo + e];
        out[o + d] = acc;
      }
    }
  }
  return new Tensor(out, [...z.shape.slice(0, -1), d_model]);
}

/** TL accumulated_bias: Σ_{l < layer} b_O (+ b_out when includeMlpBiases), plus b_O of `layer` with mlpInput. [d_model] */
export function accumulatedBias(model: CacheModel, layer: number, mlpInput = false, includeMlpBiases = true): Tensor {
  const { d_model } = model.cfg;
  const acc = new Float64Array(d_model);
  const add = (v: Float32Array) => { for (let d = 0; d < d_model; d++) acc[d] += v[d]; };
  for (let l = 0; l < layer; l++) {
    add(model.weights.vector('b_O', l));
    if (includeMlpBiases) add(model.weights.vector('b_out', l));
  }
  if (mlpInput) add(model.weights.vector('b_O', layer));
  return new Tensor(Float32Array.from(acc), [d_model]);
}

/** TL tokens_to_residual_directions: W_U[:, token] for each token; shape [...tokens shape, d_model]. */
export function tokensToResidualDirections(model: CacheModel, tokens: TokenSpec): Tensor {
  const { d_model, d_vocab } = model.cfg;
  const id = (t: number | string): number => {
    if (typeof t === 'string') {
      if (!model.toSingleToken) throw new Error(`tokensToResidualDirections: string token '${t}' needs a model with a tokenizer; pass token ids`);
      return model.toSingleToken(t);
    }
    if (!Number.isInteger(t) || t < 0 || t >= d_vocab) throw new Error(`tokensToResidualDirections: token ${t} is not an integer in [0, ${d_vocab})`);
    return t;
  };
  const flat: number[] = [];
  let shape: number[];
  if (typeof tokens === 'number' || typeof tokens === 'string') {
    flat.push(id(tokens));
    shape = [];
  } else if (tokens.length > 0 && Array.isArray(tokens[0])) {
    const rows = tokens as readonly (readonly number[])[];
    rows.forEach((r) => {
      if (r.length !== rows[0].length) throw new Error('tokensToResidualDirections: a [batch, pos] token list must be rectangular');
      r.forEach((t) => flat.push(id(t)));
    });
    shape = [rows.length, rows[0].length];
  } else {
    (tokens as readonly number[]).forEach((t) => flat.push(id(t)));
    shape = [flat.length];
  }
  const W_Ut = model.weights.matrix('W_U'); // [d_vocab, d_model]: row t = W_U[:, t]
  const out = new Float32Array(flat.length * d_model);
  flat.forEach((t, i) => out.set(W_Ut.subarray(t * d_model, (t + 1) * d_model), i * d_model));
  return new Tensor(out, [...shape, d_model]);
}

/** The full LayerNorm (centre, scale by 1 / sqrt(var + eps), then w, b when present) over the last dim of every row. */
function layerNormLastDim(x: Tensor, eps: number, ln: { w: Float32Array; b: Float32Array } | null): Tensor {
  const n = x.shape[x.ndim - 1];
  const out = new Float32Array(x.size);
  layerNormRows(x.data, x.size / n, n, eps, ln, { y: out });
  return new Tensor(out, x.shape);
}
