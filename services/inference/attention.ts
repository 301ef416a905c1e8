/** POST /api/attention: attention patterns (and optionally the pre-softmax scores) of chosen layers and heads. */
import { z } from 'zod';
import { blockHook } from '../../hooks/hookPoints.ts';
import type { Cell } from '../../hooks/figures/types.ts';
import type { Tensor } from '../../hooks/tensor.ts';
import { UserError } from '../context.ts';
import { defineService } from '../service.ts';
import { checkMemory, engineBytesPerToken, F32 } from '../common/budget.ts';
import { JsonNumber } from '../common/nonFinite.ts';
import { checkSize, preparePrompt, strTokens } from '../common/requests.ts';
import { Index, InputOptions, singlePrompt } from '../common/schema.ts';
import { gather, nest, range } from '../common/select.ts';

export function attentionSchema() {
  return z.strictObject({
    prompt: singlePrompt(),
    prependBos: InputOptions.prependBos,
    layers: z.array(Index).min(1).max(512).optional().describe('layers to return (default all)'),
    heads: z.array(Index).min(1).max(512).optional().describe('heads to return in each layer (default all)'),
    scores: z.boolean().default(false).describe('also return the pre-softmax scores (masked entries are "-Infinity")'),
  });
}
export type AttentionRequest = z.infer<ReturnType<typeof attentionSchema>>;

export const AttentionResponse = z.object({
  tokens: z.array(z.number().int()),
  strTokens: z.array(z.string()).nullable(),
  layers: z.array(z.number().int()),
  heads: z.array(z.number().int()),
  patterns: z.array(z.array(z.array(z.array(JsonNumber)))).describe('[layer][head][query_pos][key_pos] attention probabilities'),
  scores: z.array(z.array(z.array(z.array(JsonNumber)))).optional().describe('[layer][head][query_pos][key_pos] pre-softmax scores'),
});
export type AttentionResult = z.infer<typeof AttentionResponse>;

function checkRange(field: string, values: readonly number[], n: number, what: string): void {
  values.forEach((v, i) => {
    if (v < 0 || v >= n) throw new UserError(`${field}[${i}]: ${v} is out of range; this model has ${what} = ${n} (allowed 0..${n - 1})`);
  });
}

export const attention = defineService({
  kind: 'attention',
  route: { path: '/api/attention', summary: 'Attention patterns (and optionally scores) for chosen layers and heads' },
  request: attentionSchema,
  response: AttentionResponse,
  handler: async (model, p, ctx): Promise<AttentionResult> => {
    const { n_layers, n_heads } = model.cfg;
    const layers = p.layers ?? range(n_layers);
    const heads = p.heads ?? range(n_heads);
    checkRange('layers', layers, n_layers, 'n_layers');
    checkRange('heads', heads, n_heads, 'n_heads');
    const { tokens } = preparePrompt(model, p.prompt, p);
    const pos = tokens[0].length;
    checkSize(layers.length * heads.length * pos * pos * (p.scores ? 2 : 1), ctx, 'ask for fewer layers or heads, or a shorter prompt');
    checkMemory(ctx, [
      { what: `cached patterns${p.scores ? ' and scores' : ''} of ${layers.length} layers × ${n_heads} heads × ${pos}² floats`, bytes: layers.length * n_heads * pos * pos * F32 * (p.scores ? 2 : 1) },
      { what: `onnxruntime working memory for ${pos} tokens`, bytes: pos * engineBytesPerToken(model.cfg, pos) },
    ], 'ask for fewer layers or a shorter prompt');
    const names = layers.flatMap((l) => [
      blockHook(l, 'attn.hook_pattern'),
      ...(p.scores ? [blockHook(l, 'attn.hook_attn_scores')] : []),
    ]);
    ctx.checkCancelled();
    const [, cache] = await model.runWithCache(tokens, { returnType: 'none', namesFilter: [...new Set(names)] });
    const pick = (t: Tensor) => nest(gather(t, [[0], heads, range(pos), range(pos)]), [heads.length, pos, pos]) as number[][][];
    const result: AttentionResult = {
      tokens: tokens[0],
      strTokens: strTokens(model, tokens[0]),
      layers,
      heads,
      patterns: layers.map((l) => pick(cache.get(blockHook(l, 'attn.hook_pattern')))),
    };
    if (p.scores) result.scores = layers.map((l) => pick(cache.get(blockHook(l, 'attn.hook_attn_scores'))));
    return result;
  },
  table: (r) => {
    const rows: Cell[][] = [];
    r.layers.forEach((l, li) =>
      r.heads.forEach((h, hi) =>
        r.patterns[li][hi].forEach((qRow, q) =>
          qRow.forEach((v, k) => rows.push([l, h, q, k, v as number, ...(r.scores ? [r.scores[li][hi][q][k] as number] : [])])),
        ),
      ),
    );
    return { columns: ['layer', 'head', 'query_pos', 'key_pos', 'pattern', ...(r.scores ? ['score'] : [])], rows };
  },
});
