/**
 * Runs many intervention variants (one ablation or patch each) in a few batched forward passes: the
 * prompts are tiled once per variant and each block of rows gets its own in-graph mask, so a sweep
 * over every head costs a handful of passes instead of one pass per head.
 */
import type { HookedTransformer } from '../HookedTransformer.ts';
import { blockHook, hookPointMap, hookShape, type Dim, type HookName, type HookPointInfo } from '../hookPoints.ts';
import { selectionMask, type InterventionSpec, type SelectDim } from '../interventions.ts';
import { Tensor } from '../tensor.ts';
import { isPositionedMetric } from './metrics.ts';

/** One edit of a variant: at `hook`, replace the elements `where` selects (every batch row) with `value`. */
export interface VariantEdit {
  hook: HookName;
  /** Indices per named dim (not `batch`); a dim not named is selected whole. */
  where?: Partial<Record<Exclude<SelectDim, 'batch'>, number | readonly number[]>>;
  /**
   * The replacement: a number, or a Tensor of the hook's rank broadcastable to [batch, ...] of ONE
   * copy of the prompts (e.g. a clean cache's activation, or a mean of shape [1, 1, head, d_head]).
   */
  value: number | Tensor;
}

/** A variant: the edits made together in one forward pass (e.g. one head zeroed). */
export type Variant = readonly VariantEdit[];

/** A metric of one copy of the prompts' logits [batch, pos, d_vocab]; `variant` is the variant's index. */
export type LogitsMetric = (logits: Tensor, variant: number) => number;

export interface BatchOptions {
  /** Variants per forward pass (default: as many as fit in 32 rows, at least 1). 1 = one pass per variant. */
  chunkSize?: number;
  /** Called after each forward pass with the number of variants done and the total. */
  onProgress?: (done: number, total: number) => void;
  /** Cancels between forward passes (throws the signal's reason). */
  signal?: AbortSignal;
  /** [batch, pos] 0/1 attention mask of the prompts (padded batches). */
  attentionMask?: readonly (readonly number[])[];
  /**
   * Compute logits only at these positions of each prompt ([batch, k]); the metric then gets logits
   * [batch, k, d_vocab]. Most metrics read one position per prompt, and the unembedding is a large
   * share of a pass at short prompts. Default: where a PositionedMetric (e.g. `logitDiffMetric`) says it
   * reads, else everywhere.
   */
  logitPositions?: readonly (readonly number[])[];
  /**
   * Start each pass at the first block its variants edit, from the clean run's resid_pre there
   * (earlier blocks are the same in every variant). Default true.
   */
  skipUnchangedLayers?: boolean;
}

/** The block a variant's passes can start at: the first block it edits (0 = run everything). */
function startLayerOf(variant: Variant, infos: ReadonlyMap<HookName, HookPointInfo>): number {
  let start = Infinity;
  for (const e of variant) {
    const { layer, suffix } = infos.get(e.hook)!;
    if (layer === null) return 0; // an edit before the blocks (embeddings)
    // Starting AT block L feeds its resid_pre directly, so an edit of resid_pre L must start one block earlier.
    start = Math.min(start, layer - (suffix === 'hook_resid_pre' ? 1 : 0));
  }
  return Number.isFinite(start) ? Math.max(0, start) : 0;
}

const DEFAULT_MAX_ROWS = 32;

/** Throws the signal's reason (an AbortError by default) when it has been aborted. */
export function throwIfAborted(signal: AbortSignal | undefined): void {
  if (signal?.aborted) {
    throw signal.reason instanceof Error ? signal.reason : new DOMException('the analysis was aborted', 'AbortError');
  }
}

/** The hook-point info of `hook` for this model, or a clear error. */
function hookInfo(model: HookedTransformer, hook: HookName, infos: ReadonlyMap<HookName, HookPointInfo>): HookPointInfo {
  const info = infos.get(hook);
  if (!info) throw new Error(`batched interventions: unknown hook point '${hook}' for this ${model.cfg.n_layers}-layer model`);
  if (info.dims[0] !== 'batch') throw new Error(`batched interventions: '${hook}' has no batch dim and cannot be batched`);
  return info;
}

/** Per-prompt selection mask over the non-batch dims of a hook (1 = replace). */
function selection(edit: VariantEdit, info: HookPointInfo, shape: readonly number[]): Uint8Array {
  return selectionMask(`batched interventions on '${edit.hook}'`, info.dims.slice(1), shape.slice(1), edit.where);
}

/**
 * Runs every variant on `tokens` ([batch, pos]) and returns metric(logits of that variant's copy)
 * per variant. Variants are packed `chunkSize` to a forward pass (rows = chunkSize · batch); every
 * pass intervenes on the same set of hook points (the union over all variants, unused rows masked
 * off), so the whole sweep reuses one graph.
 */
export async function runVariants(
  model: HookedTransformer,
  tokens: readonly (readonly number[])[],
  variants: readonly Variant[],
  metric: LogitsMetric,
  opts: BatchOptions = {},
): Promise<Float32Array> {
  const batch = tokens.length;
  if (batch === 0 || tokens[0].length === 0) throw new Error('runVariants: tokens must be a non-empty [batch, pos] list');
  const pos = tokens[0].length;
  if (opts.logitPositions === undefined && isPositionedMetric(metric)) {
    // The metric reads one position per prompt: compute logits there only and read them with atPositions.
    const want = metric.positions;
    const per = typeof want === 'number' ? new Array<number>(batch).fill(want) : [...want];
    if (per.length !== batch) throw new Error(`runVariants: the metric reads ${per.length} positions for a batch of ${batch}; give one per prompt or a single number`);
    const logitPositions = per.map((p, b) => {
      const q = p < 0 ? p + pos : p;
      if (!Number.isInteger(q) || q < 0 || q >= pos) throw new Error(`runVariants: the metric's position ${p} of prompt ${b} is out of range for ${pos} positions`);
      return [q];
    });
    return runVariants(model, tokens, variants, (logits) => metric.atPositions(logits), { ...opts, logitPositions });
  }
  const total = variants.length;
  const out = new Float32Array(total);
  if (total === 0) return out;
  const chunk = opts.chunkSize ?? Math.max(1, Math.floor(DEFAULT_MAX_ROWS / batch));
  if (!Number.isInteger(chunk) || chunk < 1) throw new Error(`runVariants: chunkSize must be a positive integer; got ${opts.chunkSize}`);
  const infos = hookPointMap(model.cfg);
  const hooks = [...new Set(variants.flatMap((v) => v.map((e) => e.hook)))];
  hooks.forEach((h) => hookInfo(model, h, infos));

  // Broadcast each distinct value tensor to [batch, ...rest] once.
  const broadcastCache = new Map<Tensor, Tensor>();
  const perPrompt = (edit: VariantEdit, shape: readonly number[]): Tensor | number => {
    if (typeof edit.value === 'number') return edit.value;
    const v = edit.value;
    let b = broadcastCache.get(v);
    if (!b) {
      const target = [batch, ...shape.slice(1)];
      if (v.ndim !== target.length || v.shape.some((d, i) => d !== 1 && d !== target[i])) {
        throw new Error(`batched interventions on '${edit.hook}': value of shape [${v.shape.join(', ')}] does not broadcast to one copy of the prompts' activation [${target.join(', ')}]`);
      }
      b = Tensor.zeros(target).add(v);
      broadcastCache.set(v, b);
    }
    return b;
  };
  const selCache = new Map<string, Uint8Array>();
  // A hook whose edits all use one value that is the same for every row (a number, or a tensor with a
  // batch dim of 1) gets that value as is: only its mask is built per chunk.
  const shared = new Map<HookName, number | Tensor>();
  for (const hook of hooks) {
    const vals = variants.flatMap((v) => v.filter((e) => e.hook === hook).map((e) => e.value));
    const first = vals[0];
    const rowFree = typeof first === 'number' || first.shape[0] === 1;
    if (rowFree && vals.every((v) => v === first)) shared.set(hook, first);
  }

  // Passes are grouped by the block they can start at; each group starts from the clean resid_pre there.
  const skip = opts.skipUnchangedLayers ?? true;
  const startOf = variants.map((v) => (skip ? startLayerOf(v, infos) : 0));
  const starts = [...new Set(startOf)].filter((l) => l > 0);
  let clean: Map<number, Tensor> = new Map();
  if (starts.length > 0) {
    const [, cache] = await model.runWithCache(tokens as number[][], {
      namesFilter: starts.map((l) => blockHook(l, 'hook_resid_pre')),
      returnType: 'none',
      ...(opts.attentionMask ? { attentionMask: opts.attentionMask } : {}),
    });
    clean = new Map(starts.map((l) => [l, cache.get(blockHook(l, 'hook_resid_pre'))]));
  }
  const passes: { layer: number; indices: number[] }[] = [];
  for (const layer of [...new Set(startOf)]) {
    const indices = startOf.flatMap((l, i) => (l === layer ? [i] : []));
    for (let k = 0; k < indices.length; k += chunk) passes.push({ layer, indices: indices.slice(k, k + chunk) });
  }

  let done = 0;
  for (const pass of passes) {
    throwIfAborted(opts.signal);
    const group = pass.indices.map((i) => variants[i]);
    const rows = group.length * batch;
    // only the hook points this pass's variants edit (a pass starting at block L cannot edit earlier ones)
    const passHooks = hooks.filter((hook) => group.some((v) => v.some((e) => e.hook === hook)));
    const specs: InterventionSpec[] = passHooks.map((hook) => {
      const shape = hookShape(infos.get(hook)!, model.cfg, rows, pos);
      return { hook, mask: Tensor.zeros(shape), value: shared.get(hook) ?? Tensor.zeros(shape) };
    });
    group.forEach((variant, g) => {
      for (const edit of variant) {
        const spec = specs[passHooks.indexOf(edit.hook)];
        const shape = spec.mask!.shape;
        const S = shape.slice(1).reduce((x, y) => x * y, 1);
        const key = `${edit.hook}|${JSON.stringify(edit.where ?? {})}`;
        let sel = selCache.get(key);
        if (!sel) {
          sel = selection(edit, infos.get(edit.hook)!, shape);
          selCache.set(key, sel);
        }
        const mask = spec.mask!.data;
        const writeValues = !shared.has(edit.hook);
        const v = writeValues ? perPrompt(edit, shape) : 0;
        const val = writeValues ? (spec.value as Tensor).data : null;
        for (let b = 0; b < batch; b++) {
          const o = (g * batch + b) * S;
          for (let s = 0; s < S; s++) {
            if (!sel[s]) continue;
            mask[o + s] = 1;
            if (val) val[o + s] = typeof v === 'number' ? v : v.data[b * S + s];
          }
        }
      }
    });
    const tiledTokens: number[][] = [];
    const tiledMask: number[][] | undefined = opts.attentionMask ? [] : undefined;
    const tiledPositions: number[][] | undefined = opts.logitPositions ? [] : undefined;
    for (let g = 0; g < group.length; g++) {
      for (let b = 0; b < batch; b++) {
        tiledTokens.push([...tokens[b]]);
        tiledMask?.push([...opts.attentionMask![b]]);
        tiledPositions?.push([...opts.logitPositions![b]]);
      }
    }
    const residual = pass.layer > 0 ? Tensor.cat(group.map(() => clean.get(pass.layer)!), 0) : undefined;
    const logits = await model.forward(tiledTokens, {
      interventions: specs,
      ...(tiledMask ? { attentionMask: tiledMask } : {}),
      ...(tiledPositions ? { logitPositions: tiledPositions } : {}),
      ...(residual ? { startAtLayer: pass.layer, residual } : {}),
    });
    group.forEach((_, g) => {
      const index = pass.indices[g];
      out[index] = metric(group.length === 1 ? logits : logits.slice(0, g * batch, (g + 1) * batch), index);
    });
    done += group.length;
    opts.onProgress?.(done, total);
  }
  return out;
}
