/**
 * POST /api/patch: activation patching clean → corrupted, normalised as TransformerLens (clean = 1, corrupted = 0).
 * Its request, answer, setup and table are also attribution patching's (attributionPatch.ts).
 */
import { z } from 'zod';
import type { HookedTransformer } from '../../hooks/HookedTransformer.ts';
import {
  getActPatchAttnHeadOutAllPos, getActPatchAttnHeadOutByPos, getActPatchAttnOut, getActPatchMlpOut, getActPatchResidPre, normalisedMetric,
} from '../../hooks/analysis/index.ts';
import type { Cell, Table } from '../../hooks/figures/types.ts';
import { blockHook, type BlockHookSuffix } from '../../hooks/hookPoints.ts';
import { UserError, type JobContext } from '../context.ts';
import { defineService } from '../service.ts';
import { checkMemory, F32, rowsPerStep, type MemoryPart } from '../common/budget.ts';
import { JsonNumber } from '../common/nonFinite.ts';
import { buildMetric, checkSize, checkSweep, passProgress, strTokens, userCall } from '../common/requests.ts';
import { Grid2, Grid3, Index, InputOptions, MetricEcho, singlePrompt, TokenIdOut, TokenSpec } from '../common/schema.ts';
import { nest, range } from '../common/select.ts';
import { backwardWorkingMemory, variantRow } from './common.ts';

export const PATCH_KINDS = ['resid_pre', 'attn_out', 'mlp_out', 'head_out_all_pos', 'head_out_by_pos'] as const;
export type PatchKind = (typeof PATCH_KINDS)[number];

export function patchSchema() {
  return z.strictObject({
    clean: singlePrompt().describe('the clean prompt (text or token ids)'),
    corrupted: singlePrompt().describe('the corrupted prompt; it must have the clean prompt\'s token length'),
    prependBos: InputOptions.prependBos,
    metric: z.strictObject({
      kind: z.literal('logit_diff'),
      correct: TokenSpec,
      incorrect: TokenSpec,
      position: Index.optional().describe('position read (negative counts from the end; default -1)'),
    }).describe('logit(correct) − logit(incorrect), normalised: clean run = 1, corrupted run = 0'),
    kinds: z.array(z.enum(PATCH_KINDS)).min(1).max(PATCH_KINDS.length).default([...PATCH_KINDS])
      .describe('resid_pre, attn_out, mlp_out ([layer][pos]); head_out_all_pos ([layer][head]); head_out_by_pos ([layer][pos][head]); default all'),
    chunkSize: z.number().int().min(1).max(256).optional().describe('patches per forward pass (default 32)'),
  });
}
export type PatchRequest = z.infer<ReturnType<typeof patchSchema>>;

export const PatchResponse = z.object({
  cleanTokens: z.array(TokenIdOut),
  corruptedTokens: z.array(TokenIdOut),
  cleanStrTokens: z.array(z.string()).nullable(),
  corruptedStrTokens: z.array(z.string()).nullable(),
  metric: MetricEcho,
  clean: JsonNumber.describe('the logit difference of the clean run'),
  corrupted: JsonNumber.describe('the logit difference of the corrupted run'),
  method: z.enum(['activation', 'attribution']).describe('activation patching (/api/patch), or its first-order estimate by attribution patching (/api/attribution-patch)'),
  results: z.array(z.object({
    kind: z.enum(PATCH_KINDS),
    dims: z.array(z.enum(['layer', 'pos', 'head'])).describe('axis names of values, e.g. [layer, pos]'),
    values: z.union([Grid2, Grid3]).describe('normalised metric with that slice of the clean run patched into the corrupted run (attribution: its linear estimate)'),
  })).describe('one entry per requested kind, in request order'),
});
export type PatchResult = z.infer<typeof PatchResponse>;

/** Per kind: its activation patcher, the hook point it patches (in every block) and the axes of its answer. */
export const PATCHERS = {
  resid_pre: { fn: getActPatchResidPre, act: 'hook_resid_pre', dims: ['layer', 'pos'] },
  attn_out: { fn: getActPatchAttnOut, act: 'hook_attn_out', dims: ['layer', 'pos'] },
  mlp_out: { fn: getActPatchMlpOut, act: 'hook_mlp_out', dims: ['layer', 'pos'] },
  head_out_all_pos: { fn: getActPatchAttnHeadOutAllPos, act: 'attn.hook_z', dims: ['layer', 'head'] },
  head_out_by_pos: { fn: getActPatchAttnHeadOutByPos, act: 'attn.hook_z', dims: ['layer', 'pos', 'head'] },
} as const satisfies Record<PatchKind, { fn: unknown; act: BlockHookSuffix; dims: readonly ('layer' | 'pos' | 'head')[] }>;

/**
 * What activation and attribution patching share: the prompts, the kinds, the memory plan (activation patching: its
 * variants per step; attribution patching: one forward and backward pass, checked against the budget), the metric
 * normalised on the clean and corrupted runs, and the clean cache.
 */
export async function patchSetup(model: HookedTransformer, p: PatchRequest, ctx: JobContext, method: PatchResult['method']) {
  const { n_layers, n_heads } = model.cfg;
  const clean = userCall('clean', () => model.prepareInput(p.clean as never, { prependBos: p.prependBos })).tokens;
  const corrupted = userCall('corrupted', () => model.prepareInput(p.corrupted as never, { prependBos: p.prependBos })).tokens;
  const pos = clean[0].length;
  if (corrupted[0].length !== pos) {
    throw new UserError(`corrupted: the clean prompt has ${pos} tokens and the corrupted prompt ${corrupted[0].length}; they must have the same token length`);
  }
  const kinds = [...new Set(p.kinds)];
  const sizes: Record<PatchKind, number> = {
    resid_pre: n_layers * pos, attn_out: n_layers * pos, mlp_out: n_layers * pos, head_out_all_pos: n_layers * n_heads, head_out_by_pos: n_layers * pos * n_heads,
  };
  const total = kinds.reduce((a, k) => a + sizes[k], 0);
  if (method === 'activation') checkSweep(total, pos, ctx, 'ask for fewer kinds (head_out_by_pos is the largest) or use shorter prompts');
  checkSize(total, ctx, 'ask for fewer kinds or use shorter prompts');
  const metric = buildMetric(model, p.metric, clean);
  const names = [...new Set(kinds.flatMap((k) => range(n_layers).map((l) => blockHook(l, PATCHERS[k].act))))];
  const V = model.cfg.d_vocab;
  const cacheBytes = names.length * pos * model.cfg.d_model * F32;
  const fixed: MemoryPart[] = [
    { what: `the clean run's cache of ${names.length} hook points × ${pos} × ${model.cfg.d_model} floats`, bytes: cacheBytes },
    { what: `clean and corrupted logits 2 × ${pos} × ${V} floats`, bytes: 2 * pos * V * F32 },
  ];
  let chunkSize: number | undefined;
  if (method === 'activation') {
    chunkSize = rowsPerStep(ctx, {
      fixed, perRow: variantRow(model, pos, true), rowTokens: pos, rows: Math.max(...kinds.map((k) => sizes[k])), requested: p.chunkSize ?? 32,
    }, 'use shorter prompts');
  } else {
    checkMemory(ctx, [
      ...fixed,
      { what: `the corrupted run's cache of the same hook points and their gradients`, bytes: 2 * cacheBytes },
      backwardWorkingMemory(model, pos),
    ], 'use shorter prompts or ask for fewer kinds');
  }
  ctx.checkCancelled();
  const [cleanLogits, cache] = await model.runWithCache(clean, { namesFilter: names });
  const cleanValue = metric.fn(cleanLogits);
  ctx.checkCancelled();
  const corruptedValue = metric.fn(await model.forward(corrupted));
  if (!(Number.isFinite(cleanValue) && Number.isFinite(corruptedValue)) || cleanValue === corruptedValue) {
    throw new UserError(
      `metric: the clean and corrupted runs give logit differences ${cleanValue} and ${corruptedValue}; the normalised metric needs them to differ (choose other prompts or tokens)`,
    );
  }
  const normalised = normalisedMetric(metric.fn, cleanValue, corruptedValue);
  const answer = (method: PatchResult['method'], results: PatchResult['results']): PatchResult => ({
    cleanTokens: clean[0], corruptedTokens: corrupted[0], cleanStrTokens: strTokens(model, clean[0]), corruptedStrTokens: strTokens(model, corrupted[0]),
    metric: metric.echo, clean: cleanValue, corrupted: corruptedValue, method, results,
  });
  return { corrupted, kinds, sizes, total, names, cache, normalised, answer, chunkSize };
}

/** Rows: kind, then layer, pos and head (empty where the kind has no such axis), then the normalised metric. */
export function patchTable(r: PatchResult): Table {
  const rows: Cell[][] = [];
  for (const res of r.results) {
    const walk = (v: unknown, d: number, idx: Record<string, number>): void => {
      if (d === res.dims.length) {
        rows.push([res.kind, idx.layer ?? null, idx.pos ?? null, idx.head ?? null, v as number]);
        return;
      }
      (v as unknown[]).forEach((x, i) => walk(x, d + 1, { ...idx, [res.dims[d]]: i }));
    };
    walk(res.values, 0, {});
  }
  return { columns: ['kind', 'layer', 'pos', 'head', 'value'], rows };
}

export const patch = defineService({
  kind: 'patch',
  route: {
    path: '/api/patch',
    summary: 'Activation patching clean → corrupted, normalised as TransformerLens (clean = 1, corrupted = 0)',
    description: (limits) => `At most ${limits.maxSweepTokens} token positions (patches × prompt tokens; maxSweepTokens).`,
  },
  request: patchSchema,
  response: PatchResponse,
  handler: async (model, p, ctx): Promise<PatchResult> => {
    const { corrupted, kinds, sizes, total, cache, normalised, answer, chunkSize } = await patchSetup(model, p, ctx, 'activation');
    const results: PatchResult['results'] = [];
    let done = 0;
    for (const kind of kinds) {
      ctx.checkCancelled();
      const t = await PATCHERS[kind].fn(model, corrupted, cache, normalised, {
        chunkSize,
        onProgress: passProgress(ctx, done, total, kind),
      });
      done += sizes[kind];
      results.push({ kind, dims: [...PATCHERS[kind].dims], values: nest(t.data, t.shape) as number[][] | number[][][] });
    }
    return answer('activation', results);
  },
  table: patchTable,
});
