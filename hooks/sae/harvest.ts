/**
 * Activations at a hook point harvested by the engine from a stream of contexts, a batch of
 * contexts at a time (only that batch's activations exist at once): each forward pass stops after
 * the block of the hook point and caches nothing else.
 */
import type { HookedTransformer } from '../HookedTransformer.ts';
import { hookShape, type HookName } from '../hookPoints.ts';

export interface HarvestOptions {
  /** Contexts per forward pass (default 32). */
  batchSize?: number;
  /** Leave out positions holding BOS (<|endoftext|>), as SAELens's exclude_special_tokens does (default true). */
  excludeBos?: boolean;
}

export interface ActivationBatch {
  /** [rows, d_in]: one row per kept position (the hook value's last dims flattened). */
  acts: Float32Array;
  rows: number;
  d_in: number;
  /** The token at each row's position, [rows]. */
  tokens: Int32Array;
  /** The contexts of this batch ([batch, pos]) and, per row, its context (index into them) and position. */
  contexts: number[][];
  context: Int32Array;
  position: Int32Array;
}

/** The layer to stop at (TransformerLens's stop_at_layer) for a hook point: after its block, or null (run to the end). */
export function stopLayerFor(model: HookedTransformer, hook: HookName): number | null {
  const info = model.hookPoints().find((h) => h.name === hook);
  if (!info) throw new Error(`harvest: '${hook}' is not a hook point of this model (see model.hookPoints())`);
  return info.layer === null ? (hook === 'hook_embed' || hook === 'hook_pos_embed' || hook === 'hook_tokens' ? 0 : null) : info.layer + 1;
}

/** The width of a hook point's value per position (its dims after batch and pos). */
export function hookWidth(model: HookedTransformer, hook: HookName): number {
  const info = model.hookPoints().find((h) => h.name === hook);
  if (!info) throw new Error(`'${hook}' is not a hook point of this model (see model.hookPoints())`);
  if (info.dims[0] !== 'batch' || info.dims[1] !== 'pos' || info.dims.includes('query_pos')) throw new Error(`'${hook}' has dims [${info.dims.join(', ')}]; activations are harvested from [batch, pos, …] hook points`);
  return hookShape(info, model.cfg, 1, 1).reduce((a, b) => a * b, 1);
}

/** The activations at `hook` of each batch of `contexts` (all of one length). */
export async function* harvestActivations(
  model: HookedTransformer,
  hook: HookName,
  contexts: AsyncIterable<number[]> | Iterable<number[]>,
  opts: HarvestOptions = {},
): AsyncGenerator<ActivationBatch> {
  const batchSize = opts.batchSize ?? 32;
  if (!Number.isInteger(batchSize) || batchSize < 1) throw new Error(`batchSize must be a positive integer; got ${batchSize}`);
  const d_in = hookWidth(model, hook);
  const stop = stopLayerFor(model, hook);
  const excludeBos = opts.excludeBos ?? true;
  const bos = model.tokenizer?.bosTokenId ?? model.cfg.eos_token_id;
  let pending: number[][] = [];
  const flush = async (): Promise<ActivationBatch> => {
    const batch = pending;
    pending = [];
    const [, cache] = await model.runWithCache(batch, {
      namesFilter: [hook],
      ...(stop !== null ? { stopAtLayer: Math.min(stop, model.cfg.n_layers) } : { returnType: 'none' as const }),
    });
    const value = cache.get(hook).data;
    const pos = batch[0].length;
    const keep: number[] = [];
    for (let b = 0; b < batch.length; b++) for (let p = 0; p < pos; p++) if (!(excludeBos && batch[b][p] === bos)) keep.push(b * pos + p);
    const acts = new Float32Array(keep.length * d_in);
    const tokens = new Int32Array(keep.length);
    const context = new Int32Array(keep.length);
    const position = new Int32Array(keep.length);
    keep.forEach((flat, r) => {
      acts.set(value.subarray(flat * d_in, (flat + 1) * d_in), r * d_in);
      context[r] = Math.floor(flat / pos);
      position[r] = flat % pos;
      tokens[r] = batch[context[r]][position[r]];
    });
    return { acts, rows: keep.length, d_in, tokens, contexts: batch, context, position };
  };
  for await (const ctx of contexts) {
    if (pending.length > 0 && ctx.length !== pending[0].length) throw new Error(`harvest: contexts must have one length; got ${pending[0].length} and ${ctx.length}`);
    pending.push(ctx);
    if (pending.length === batchSize) yield await flush();
  }
  if (pending.length > 0) yield await flush();
}
