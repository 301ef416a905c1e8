/**
 * Activation patching with TransformerLens's function names (patching.py): run the corrupted prompts,
 * patch in one clean activation (a layer's position, a head, a pattern row …), and measure the metric.
 * Batched: each block of rows patches a different index, chunkSize indices per forward pass.
 */
import type { ActivationCache } from '../ActivationCache.ts';
import type { HookedTransformer, ModelInput } from '../HookedTransformer.ts';
import { getActName, type Dim, type HookName } from '../hookPoints.ts';
import { Tensor } from '../tensor.ts';
import { runVariants, type BatchOptions, type LogitsMetric, type Variant, type VariantEdit } from './batchedRuns.ts';

/** TL's index axis names. */
export type AxisName = 'layer' | 'pos' | 'head_index' | 'head' | 'src_pos' | 'dest_pos';

/** Activations TL patches: residual/block outputs by position, head vectors, and attention patterns/scores. */
export type PatchActivation = 'resid_pre' | 'resid_mid' | 'resid_post' | 'attn_out' | 'mlp_out' | 'z' | 'q' | 'k' | 'v' | 'result' | 'pattern' | 'attn_scores' | 'post' | 'pre';

export interface PatchingOptions extends BatchOptions {}

export interface GenericPatchOptions extends PatchingOptions {
  activationName: PatchActivation;
  /** Axes to sweep, first is always 'layer' (TL's index_axis_names). */
  indexAxisNames: readonly AxisName[];
}

const PATTERN_LIKE = new Set(['pattern', 'attn_scores']);

/** The hook-point dim an index axis selects along for an activation (a pattern's dest_pos is its query_pos, src_pos its key_pos). */
export function axisDim(activation: PatchActivation, axis: AxisName): Dim {
  if (axis === 'head' || axis === 'head_index') return 'head';
  if (PATTERN_LIKE.has(activation)) {
    if (axis === 'dest_pos') return 'query_pos';
    if (axis === 'src_pos') return 'key_pos';
    throw new Error(`activation patching: axis '${axis}' does not apply to '${activation}' (use head, dest_pos, src_pos)`);
  }
  if (axis === 'pos') return 'pos';
  throw new Error(`activation patching: axis '${axis}' does not apply to '${activation}' (use pos, head)`);
}

/** The `where` selector of one index for an activation. */
function whereFor(activation: PatchActivation, axes: readonly AxisName[], index: readonly number[]): VariantEdit['where'] {
  const where: Record<string, number> = {};
  axes.forEach((axis, i) => {
    if (axis !== 'layer') where[axisDim(activation, axis)] = index[i];
  });
  return where;
}

/** The result's shape: one dim per index axis (the first 'layer'), checked. */
export function indexShape(cfg: { n_layers: number; n_heads: number }, pos: number, axes: readonly AxisName[]): number[] {
  if (axes[0] !== 'layer') throw new Error(`activation patching: the first index axis must be 'layer'; got [${axes.join(', ')}]`);
  const range: Record<AxisName, number> = { layer: cfg.n_layers, pos, head_index: cfg.n_heads, head: cfg.n_heads, src_pos: pos, dest_pos: pos };
  return axes.map((a) => {
    if (!(a in range)) throw new Error(`activation patching: unknown axis '${a}'; allowed layer, pos, head_index, head, src_pos, dest_pos`);
    return range[a];
  });
}

/** Every index tuple over the axes' ranges, last axis fastest (TL's make_df_from_ranges). */
function indexGrid(ranges: readonly number[]): number[][] {
  const out: number[][] = [];
  const idx = new Array<number>(ranges.length).fill(0);
  const total = ranges.reduce((a, b) => a * b, 1);
  for (let i = 0; i < total; i++) {
    out.push([...idx]);
    for (let a = ranges.length - 1; a >= 0; a--) {
      if (++idx[a] < ranges[a]) break;
      idx[a] = 0;
    }
  }
  return out;
}

interface PatchJob {
  activation: PatchActivation;
  axes: readonly AxisName[];
  shape: number[];
  variants: Variant[];
}

function buildJob(model: HookedTransformer, pos: number, batch: number, cleanCache: ActivationCache, activation: PatchActivation, axes: readonly AxisName[]): PatchJob {
  const shape = indexShape(model.cfg, pos, axes);
  const clean = new Map<number, Tensor>();
  const variants = indexGrid(shape).map((index) => {
    const layer = index[0];
    const hook = getActName(activation, layer);
    let value = clean.get(layer);
    if (!value) {
      if (!cleanCache.has(hook)) throw new Error(`activation patching: the clean cache has no '${hook}'; cache it (namesFilter) before patching '${activation}'`);
      value = cleanCache.get(hook);
      if (!cleanCache.hasBatchDim || value.shape[0] !== batch) {
        throw new Error(`activation patching: the clean cache's '${hook}' has shape [${value.shape.join(', ')}]; it needs a batch dim of ${batch} like the corrupted prompts (no removeBatchDim)`);
      }
      clean.set(layer, value);
    }
    return [{ hook, where: whereFor(activation, axes, index), value }] as Variant;
  });
  return { activation, axes, shape, variants };
}

async function runJobs(model: HookedTransformer, corrupted: ModelInput, cleanCache: ActivationCache, metric: LogitsMetric, jobs: readonly [PatchActivation, readonly AxisName[]][], opts: PatchingOptions): Promise<Tensor[]> {
  const { tokens, attentionMask } = model.prepareInput(corrupted, { attentionMask: opts.attentionMask });
  const built = jobs.map(([a, axes]) => buildJob(model, tokens[0].length, tokens.length, cleanCache, a, axes));
  const all = built.flatMap((j) => j.variants);
  const scores = await runVariants(model, tokens, all, metric, { ...opts, ...(attentionMask ? { attentionMask } : {}) });
  let o = 0;
  return built.map((j) => {
    const n = j.variants.length;
    const t = new Tensor(scores.slice(o, o + n), j.shape);
    o += n;
    return t;
  });
}

/**
 * TL generic_activation_patch: for every index over `indexAxisNames` (first 'layer'), patch that slice
 * of the clean activation into the corrupted run and record patchingMetric(logits). Returns a tensor
 * with one dim per axis.
 */
export async function genericActivationPatch(model: HookedTransformer, corruptedTokens: ModelInput, cleanCache: ActivationCache, patchingMetric: LogitsMetric, opts: GenericPatchOptions): Promise<Tensor> {
  return (await runJobs(model, corruptedTokens, cleanCache, patchingMetric, [[opts.activationName, opts.indexAxisNames]], opts))[0];
}

type PatchFn = (model: HookedTransformer, corruptedTokens: ModelInput, cleanCache: ActivationCache, patchingMetric: LogitsMetric, opts?: PatchingOptions) => Promise<Tensor>;

function specialise(activation: PatchActivation, axes: readonly AxisName[]): PatchFn {
  return async (model, corrupted, cache, metric, opts = {}) => (await runJobs(model, corrupted, cache, metric, [[activation, axes]], opts))[0];
}

/** [n_layers, pos]: patch resid_pre of one layer at one position. */
export const getActPatchResidPre = specialise('resid_pre', ['layer', 'pos']);
/** [n_layers, pos]: patch resid_mid. */
export const getActPatchResidMid = specialise('resid_mid', ['layer', 'pos']);
/** [n_layers, pos]: patch attn_out. */
export const getActPatchAttnOut = specialise('attn_out', ['layer', 'pos']);
/** [n_layers, pos]: patch mlp_out. */
export const getActPatchMlpOut = specialise('mlp_out', ['layer', 'pos']);
/** [n_layers, pos, n_heads]: patch one head's output (hook_z) at one position. */
export const getActPatchAttnHeadOutByPos = specialise('z', ['layer', 'pos', 'head']);
/** [n_layers, pos, n_heads]: patch one head's query at one position. */
export const getActPatchAttnHeadQByPos = specialise('q', ['layer', 'pos', 'head']);
/** [n_layers, pos, n_heads]: patch one head's key at one position. */
export const getActPatchAttnHeadKByPos = specialise('k', ['layer', 'pos', 'head']);
/** [n_layers, pos, n_heads]: patch one head's value at one position. */
export const getActPatchAttnHeadVByPos = specialise('v', ['layer', 'pos', 'head']);
/** [n_layers, n_heads, dest_pos]: patch one row of a head's attention pattern. */
export const getActPatchAttnHeadPatternByPos = specialise('pattern', ['layer', 'head_index', 'dest_pos']);
/** [n_layers, n_heads, dest_pos, src_pos]: patch one entry of a head's attention pattern. */
export const getActPatchAttnHeadPatternDestSrcPos = specialise('pattern', ['layer', 'head_index', 'dest_pos', 'src_pos']);
/** [n_layers, n_heads]: patch one head's output (hook_z) at every position. */
export const getActPatchAttnHeadOutAllPos = specialise('z', ['layer', 'head']);
/** [n_layers, n_heads]: patch one head's queries at every position. */
export const getActPatchAttnHeadQAllPos = specialise('q', ['layer', 'head']);
/** [n_layers, n_heads]: patch one head's keys at every position. */
export const getActPatchAttnHeadKAllPos = specialise('k', ['layer', 'head']);
/** [n_layers, n_heads]: patch one head's values at every position. */
export const getActPatchAttnHeadVAllPos = specialise('v', ['layer', 'head']);
/** [n_layers, n_heads]: patch one head's whole attention pattern. */
export const getActPatchAttnHeadPatternAllPos = specialise('pattern', ['layer', 'head_index']);

/** [3, n_layers, pos]: resid_pre, attn_out and mlp_out by layer and position (TL get_act_patch_block_every). */
export async function getActPatchBlockEvery(model: HookedTransformer, corrupted: ModelInput, cleanCache: ActivationCache, metric: LogitsMetric, opts: PatchingOptions = {}): Promise<Tensor> {
  const parts = await runJobs(model, corrupted, cleanCache, metric, [['resid_pre', ['layer', 'pos']], ['attn_out', ['layer', 'pos']], ['mlp_out', ['layer', 'pos']]], opts);
  return Tensor.stack(parts, 0);
}

/** [5, n_layers, n_heads]: output (z), query, key, value and pattern of each head over all positions (TL get_act_patch_attn_head_all_pos_every). */
export async function getActPatchAttnHeadAllPosEvery(model: HookedTransformer, corrupted: ModelInput, cleanCache: ActivationCache, metric: LogitsMetric, opts: PatchingOptions = {}): Promise<Tensor> {
  const parts = await runJobs(model, corrupted, cleanCache, metric, [
    ['z', ['layer', 'head']], ['q', ['layer', 'head']], ['k', ['layer', 'head']], ['v', ['layer', 'head']], ['pattern', ['layer', 'head_index']],
  ], opts);
  return Tensor.stack(parts, 0);
}

/**
 * [5, n_layers, pos, n_heads]: output, query, key, value by position, and the pattern row by
 * destination position (rearranged from [layer, head, dest_pos]) (TL get_act_patch_attn_head_by_pos_every).
 */
export async function getActPatchAttnHeadByPosEvery(model: HookedTransformer, corrupted: ModelInput, cleanCache: ActivationCache, metric: LogitsMetric, opts: PatchingOptions = {}): Promise<Tensor> {
  const parts = await runJobs(model, corrupted, cleanCache, metric, [
    ['z', ['layer', 'pos', 'head']], ['q', ['layer', 'pos', 'head']], ['k', ['layer', 'pos', 'head']], ['v', ['layer', 'pos', 'head']], ['pattern', ['layer', 'head_index', 'dest_pos']],
  ], opts);
  parts[4] = parts[4].permute(0, 2, 1);
  return Tensor.stack(parts, 0);
}
