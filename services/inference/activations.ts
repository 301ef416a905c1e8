/** POST /api/activations: any hook point by name, with an index selection per dim. */
import { z } from 'zod';
import { hookShape, type Dim } from '../../hooks/hookPoints.ts';
import type { Cell } from '../../hooks/figures/types.ts';
import { UserError } from '../context.ts';
import type { Limits } from '../limits.ts';
import { defineService } from '../service.ts';
import { checkMemory, engineBytesPerToken, F32 } from '../common/budget.ts';
import { checkSize, preparePrompt } from '../common/requests.ts';
import { batchPrompt, Index, InputOptions } from '../common/schema.ts';
import { gather, nest, resolveSelection } from '../common/select.ts';

const DimSelector = z.union(
  [
    Index,
    z.array(Index).min(1),
    z.strictObject({ start: Index.optional(), end: Index.optional() }),
  ],
  { error: 'a selector is an index (negative counts from the end), a non-empty array of indices, or {start, end}' },
);

/** Every dim name a hook point can have (hooks/hookPoints.ts's Dim). */
const DIM_NAMES: readonly Dim[] = ['batch', 'pos', 'query_pos', 'key_pos', 'head', 'd_model', 'd_head', 'd_mlp', '1'];

export function activationsSchema(limits: Limits) {
  return z.strictObject({
    prompt: batchPrompt(limits),
    ...InputOptions,
    hook: z.string().min(1).max(200).describe('hook point name, e.g. blocks.0.attn.hook_pattern (see GET /api/model)'),
    // A strict object, not a record: a record silently drops a "__proto__" key, where every other unknown key is a 400.
    select: z
      .strictObject(Object.fromEntries(DIM_NAMES.map((d) => [d, DimSelector.optional()])) as Record<Dim, z.ZodOptional<typeof DimSelector>>)
      .optional()
      .describe(`per dim name (${DIM_NAMES.join(', ')}): an index (dim dropped), an index list, or {start, end}`),
  });
}
export type ActivationsRequest = z.infer<ReturnType<typeof activationsSchema>>;

export const ActivationsResponse = z.object({
  hook: z.string(),
  fullShape: z.array(z.number().int()).describe('shape of the hook point for this input'),
  dims: z.array(z.string()).describe('names of the dims that remain'),
  shape: z.array(z.number().int()).describe('shape of values'),
  indices: z.array(z.array(z.number().int())).describe('for each remaining dim, the original index of each entry'),
  values: z.unknown().describe('nested arrays of numbers of the given shape (a number when every dim was indexed)'),
});
export type ActivationsResult = { hook: string; fullShape: number[]; dims: string[]; shape: number[]; indices: number[][]; values: unknown };

export const activations = defineService({
  kind: 'activations',
  route: {
    path: '/api/activations',
    summary: 'Any hook point by name, with an index selection per dim',
    description: (limits) => `The selection may hold at most ${limits.maxElements} numbers (maxElements).`,
  },
  request: activationsSchema,
  response: ActivationsResponse,
  handler: async (model, p, ctx): Promise<ActivationsResult> => {
    const info = model.hookPoints().find((h) => h.name === p.hook);
    if (!info) {
      throw new UserError(
        `hook: unknown hook point '${p.hook}'; this model has ${model.hookPoints().length} (e.g. hook_embed, blocks.0.hook_resid_pre, ` +
          `blocks.0.attn.hook_pattern, blocks.${model.cfg.n_layers - 1}.hook_resid_post); see GET /api/model`,
      );
    }
    const { tokens, attentionMask } = preparePrompt(model, p.prompt, p);
    const fullShape = hookShape(info, model.cfg, tokens.length, tokens[0].length);
    const sel = resolveSelection(`hook ${info.name}`, info.dims, fullShape, p.select ?? {});
    checkSize(sel.count, ctx, `narrow the slice with select (hook shape [${fullShape.join(', ')}], dims ${info.dims.join(', ')})`);
    const tokenCount = tokens.length * tokens[0].length;
    checkMemory(ctx, [
      { what: `the cached ${info.name} [${fullShape.join(', ')}]`, bytes: fullShape.reduce((a, b) => a * b, 1) * F32 },
      { what: `onnxruntime working memory for ${tokenCount} tokens`, bytes: tokenCount * engineBytesPerToken(model.cfg, tokens[0].length) },
    ], 'use fewer or shorter prompts');
    ctx.checkCancelled();
    const [, cache] = await model.runWithCache(tokens, { returnType: 'none', namesFilter: [info.name], attentionMask });
    const values = nest(gather(cache.get(info.name), sel.perDim), sel.shape);
    return {
      hook: info.name,
      fullShape,
      dims: info.dims.filter((_, i) => sel.kept[i]),
      shape: sel.shape,
      indices: sel.perDim.filter((_, i) => sel.kept[i]),
      values,
    };
  },
  /** One row per value: the original index along each remaining dim, then the value. */
  table: (r) => {
    const rows: Cell[][] = [];
    const walk = (v: unknown, d: number, idx: number[]): void => {
      if (d === r.shape.length) {
        rows.push([...idx, v as number]);
        return;
      }
      (v as unknown[]).forEach((x, i) => walk(x, d + 1, [...idx, r.indices[d][i]]));
    };
    walk(r.values, 0, []);
    return { columns: [...r.dims, 'value'], rows };
  },
});
