/**
 * Attribution patching (Nanda 2023, "Attribution Patching: Activation Patching At Industrial
 * Scale"): the linear approximation of activation patching from one backward pass. Patching the
 * clean activation into the corrupted run at an index changes the metric by about
 * (clean − corrupted activation) · ∂metric/∂activation at the corrupted run, summed over the entries
 * the index selects. Every function here mirrors an activation-patching one (patching.ts): the same
 * arguments, the same result shape, and the same units — each entry estimates the metric of the
 * patched run, metric(corrupted) + that change (with a normalised metric: clean = 1, corrupted = 0).
 */
import type { ActivationCache } from '../ActivationCache.ts';
import type { DifferentiableMetric } from '../gradients.ts';
import type { HookedTransformer, ModelInput } from '../HookedTransformer.ts';
import { getActName, type HookName } from '../hookPoints.ts';
import { Tensor } from '../tensor.ts';
import { axisDim, indexShape, type AxisName, type PatchActivation } from './patching.ts';

export interface AttributionOptions {
  /** [batch, pos] 0/1 attention mask of the prompts (padded batches). */
  attentionMask?: readonly (readonly number[])[];
  /**
   * The corrupted run with its gradients, reused instead of running it again: a cache from
   * `runWithCache(corrupted, { inclBwd: true, backwardFrom: metric, namesFilter })` holding every
   * activation patched and its gradient.
   */
  corruptedCache?: ActivationCache;
}

export interface GenericAttributionOptions extends AttributionOptions {
  activationName: PatchActivation;
  /** Axes of the result, first always 'layer' (TL's index_axis_names). */
  indexAxisNames: readonly AxisName[];
}

type Job = readonly [PatchActivation, readonly AxisName[]];

/**
 * One attribution: Σ over the entries each index selects of (clean − corrupted) · gradient, for every
 * layer, as a tensor over the index axes, plus metric(corrupted).
 */
function attribute(model: HookedTransformer, clean: ActivationCache, corrupted: ActivationCache, base: number, [activation, axes]: Job, pos: number, batch: number): Tensor {
  const shape = indexShape(model.cfg, pos, axes);
  const out = Tensor.full(shape, base);
  const perLayer = shape.slice(1).reduce((a, b) => a * b, 1);
  const info = new Map(model.hookPoints().map((h) => [h.name, h]));
  for (let layer = 0; layer < model.cfg.n_layers; layer++) {
    const hook = getActName(activation, layer);
    const dims = info.get(hook)!.dims;
    for (const [what, cache] of [['clean', clean], ['corrupted', corrupted]] as const) {
      if (!cache.has(hook)) throw new Error(`attribution patching: the ${what} cache has no '${hook}'; cache it (namesFilter) before patching '${activation}'`);
    }
    if (!corrupted.has(`${hook}_grad`)) throw new Error(`attribution patching: the corrupted cache has no '${hook}_grad'; run it with inclBwd (and backwardFrom: the metric)`);
    const c = clean.get(hook);
    const x = corrupted.get(hook);
    const g = corrupted.get(`${hook}_grad`);
    if (!clean.hasBatchDim || c.shape.join(',') !== x.shape.join(',') || x.shape[0] !== batch) {
      throw new Error(`attribution patching: the clean cache's '${hook}' has shape [${c.shape.join(', ')}]; it must match the corrupted run's [${x.shape.join(', ')}] (same prompts' shape, no removeBatchDim)`);
    }
    // Which dim of the activation each index axis (after 'layer') reads, and the strides to go from one to the other.
    const kept = axes.slice(1).map((a) => dims.indexOf(axisDim(activation, a)));
    const outStrides = shape.slice(1).map((_, i) => shape.slice(i + 2).reduce((a, b) => a * b, 1));
    const idx = new Array<number>(x.ndim).fill(0);
    const o = layer * perLayer;
    for (let i = 0; i < x.data.length; i++) {
      const dg = (c.data[i] - x.data[i]) * g.data[i];
      if (dg !== 0) {
        let j = o;
        for (let k = 0; k < kept.length; k++) j += idx[kept[k]] * outStrides[k];
        out.data[j] += dg;
      }
      for (let a = x.ndim - 1; a >= 0; a--) {
        if (++idx[a] < x.shape[a]) break;
        idx[a] = 0;
      }
    }
  }
  return out;
}

async function runJobs(model: HookedTransformer, corrupted: ModelInput, cleanCache: ActivationCache, metric: DifferentiableMetric, jobs: readonly Job[], opts: AttributionOptions): Promise<Tensor[]> {
  const { tokens, attentionMask } = model.prepareInput(corrupted, { attentionMask: opts.attentionMask });
  const hooks = [...new Set(jobs.flatMap(([a]) => Array.from({ length: model.cfg.n_layers }, (_, l) => getActName(a, l))))] as HookName[];
  let cache = opts.corruptedCache;
  if (!cache) {
    [, cache] = await model.runWithCache(tokens, { returnType: 'none', inclBwd: true, backwardFrom: metric, namesFilter: hooks, ...(attentionMask ? { attentionMask } : {}) });
  }
  const base = cache.backwardValue ?? metric(await model.forward(tokens, attentionMask ? { attentionMask } : {}));
  return jobs.map((job) => attribute(model, cleanCache, cache, base, job, tokens[0].length, tokens.length));
}

/**
 * Attribution patching of `activationName` over `indexAxisNames` (first 'layer'), shaped like
 * genericActivationPatch's result: each entry is metric(corrupted) + Σ (clean − corrupted) · ∂metric/∂activation
 * over the entries that index selects. `metric` must give its gradient (logitDiffMetric, ioiMetric, …).
 */
export async function genericAttributionPatch(model: HookedTransformer, corruptedTokens: ModelInput, cleanCache: ActivationCache, metric: DifferentiableMetric, opts: GenericAttributionOptions): Promise<Tensor> {
  return (await runJobs(model, corruptedTokens, cleanCache, metric, [[opts.activationName, opts.indexAxisNames]], opts))[0];
}

type AttrFn = (model: HookedTransformer, corruptedTokens: ModelInput, cleanCache: ActivationCache, metric: DifferentiableMetric, opts?: AttributionOptions) => Promise<Tensor>;

function specialise(activation: PatchActivation, axes: readonly AxisName[]): AttrFn {
  return async (model, corrupted, cache, metric, opts = {}) => (await runJobs(model, corrupted, cache, metric, [[activation, axes]], opts))[0];
}

/** [n_layers, pos]: resid_pre of one layer at one position (getActPatchResidPre's shape). */
export const getAttrPatchResidPre = specialise('resid_pre', ['layer', 'pos']);
/** [n_layers, pos]: resid_mid. */
export const getAttrPatchResidMid = specialise('resid_mid', ['layer', 'pos']);
/** [n_layers, pos]: attn_out. */
export const getAttrPatchAttnOut = specialise('attn_out', ['layer', 'pos']);
/** [n_layers, pos]: mlp_out. */
export const getAttrPatchMlpOut = specialise('mlp_out', ['layer', 'pos']);
/** [n_layers, pos, n_heads]: one head's output (hook_z) at one position. */
export const getAttrPatchAttnHeadOutByPos = specialise('z', ['layer', 'pos', 'head']);
/** [n_layers, pos, n_heads]: one head's query at one position. */
export const getAttrPatchAttnHeadQByPos = specialise('q', ['layer', 'pos', 'head']);
/** [n_layers, pos, n_heads]: one head's key at one position. */
export const getAttrPatchAttnHeadKByPos = specialise('k', ['layer', 'pos', 'head']);
/** [n_layers, pos, n_heads]: one head's value at one position. */
export const getAttrPatchAttnHeadVByPos = specialise('v', ['layer', 'pos', 'head']);
/** [n_layers, n_heads, dest_pos]: one row of a head's attention pattern. */
export const getAttrPatchAttnHeadPatternByPos = specialise('pattern', ['layer', 'head_index', 'dest_pos']);
/** [n_layers, n_heads, dest_pos, src_pos]: one entry of a head's attention pattern. */
export const getAttrPatchAttnHeadPatternDestSrcPos = specialise('pattern', ['layer', 'head_index', 'dest_pos', 'src_pos']);
/** [n_layers, n_heads]: one head's output (hook_z) at every position. */
export const getAttrPatchAttnHeadOutAllPos = specialise('z', ['layer', 'head']);
/** [n_layers, n_heads]: one head's queries at every position. */
export const getAttrPatchAttnHeadQAllPos = specialise('q', ['layer', 'head']);
/** [n_layers, n_heads]: one head's keys at every position. */
export const getAttrPatchAttnHeadKAllPos = specialise('k', ['layer', 'head']);
/** [n_layers, n_heads]: one head's values at every position. */
export const getAttrPatchAttnHeadVAllPos = specialise('v', ['layer', 'head']);
/** [n_layers, n_heads]: one head's whole attention pattern. */
export const getAttrPatchAttnHeadPatternAllPos = specialise('pattern', ['layer', 'head_index']);

/** [3, n_layers, pos]: resid_pre, attn_out and mlp_out by layer and position, from one backward pass. */
export async function getAttrPatchBlockEvery(model: HookedTransformer, corrupted: ModelInput, cleanCache: ActivationCache, metric: DifferentiableMetric, opts: AttributionOptions = {}): Promise<Tensor> {
  return Tensor.stack(await runJobs(model, corrupted, cleanCache, metric, [['resid_pre', ['layer', 'pos']], ['attn_out', ['layer', 'pos']], ['mlp_out', ['layer', 'pos']]], opts), 0);
}

/** [5, n_layers, n_heads]: output (z), query, key, value and pattern of each head over all positions, from one backward pass. */
export async function getAttrPatchAttnHeadAllPosEvery(model: HookedTransformer, corrupted: ModelInput, cleanCache: ActivationCache, metric: DifferentiableMetric, opts: AttributionOptions = {}): Promise<Tensor> {
  return Tensor.stack(await runJobs(model, corrupted, cleanCache, metric, [
    ['z', ['layer', 'head']], ['q', ['layer', 'head']], ['k', ['layer', 'head']], ['v', ['layer', 'head']], ['pattern', ['layer', 'head_index']],
  ], opts), 0);
}

/** [5, n_layers, pos, n_heads]: output, query, key, value by position, and the pattern row by destination position, from one backward pass. */
export async function getAttrPatchAttnHeadByPosEvery(model: HookedTransformer, corrupted: ModelInput, cleanCache: ActivationCache, metric: DifferentiableMetric, opts: AttributionOptions = {}): Promise<Tensor> {
  const parts = await runJobs(model, corrupted, cleanCache, metric, [
    ['z', ['layer', 'pos', 'head']], ['q', ['layer', 'pos', 'head']], ['k', ['layer', 'pos', 'head']], ['v', ['layer', 'pos', 'head']], ['pattern', ['layer', 'head_index', 'dest_pos']],
  ], opts);
  parts[4] = parts[4].permute(0, 2, 1);
  return Tensor.stack(parts, 0);
}


export { pearsonCorrelation } from '../ops/correlation.ts';
