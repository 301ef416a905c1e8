/** POST /api/circuits/top-copied: what a head copies — for each source token, the tokens its OV circuit raises most. */
import { z } from 'zod';
import { effectiveEmbedding, topCopiedTokens } from '../../hooks/circuits/index.ts';
import { topCopiedFigure } from '../../hooks/figures/index.ts';
import type { Cell } from '../../hooks/figures/types.ts';
import type { Limits } from '../limits.ts';
import { defineService } from '../service.ts';
import { JsonNumber, num } from '../common/nonFinite.ts';
import { strOf, tokenId } from '../common/requests.ts';
import { Index, TokenIdOut, TokenSpec } from '../common/schema.ts';
import { checkHead, checkPastMlp0 } from './common.ts';

export function topCopiedSchema(limits: Limits) {
  return z.strictObject({
    layer: Index,
    head: Index,
    tokens: z.array(TokenSpec).min(1).max(limits.maxBatch).describe(`source tokens (1..${limits.maxBatch})`),
    k: z.number().int().min(1).max(limits.maxTopK).default(10).describe(`top tokens per source token (1..${limits.maxTopK})`),
    pastMlp0: z.boolean().default(false).describe("source tokens through the effective embedding instead of W_E; read past block 0's MLP (an extension, not TransformerLens): see the README's circuits section"),
  });
}
export type TopCopiedRequest = z.infer<ReturnType<typeof topCopiedSchema>>;

export const TopCopiedResponse = z.object({
  layer: z.number().int(),
  head: z.number().int(),
  pastMlp0: z.boolean(),
  rows: z.array(z.object({
    token: TokenIdOut,
    str: z.string().nullable(),
    top: z.array(z.object({ token: TokenIdOut, str: z.string().nullable(), value: JsonNumber }))
      .describe("the k tokens whose logits the head's OV circuit raises most for this source token, largest first"),
  })),
});
export type TopCopiedResult = z.infer<typeof TopCopiedResponse>;

export const topCopied = defineService({
  kind: 'topCopied',
  route: { path: '/api/circuits/top-copied', summary: 'What a head copies: for each source token, the top-k tokens its OV circuit raises' },
  request: topCopiedSchema,
  response: TopCopiedResponse,
  handler: async (model, p, ctx): Promise<TopCopiedResult> => {
    checkHead(model, p.layer, p.head);
    const ids = p.tokens.map((t, i) => tokenId(model, `tokens[${i}]`, t));
    ctx.checkCancelled();
    let embedding;
    if (p.pastMlp0) {
      checkPastMlp0(model);
      embedding = await effectiveEmbedding(model, [...new Set(ids)]);
    }
    const rows = topCopiedTokens(model, p.layer, p.head, ids, Math.min(p.k, model.cfg.d_vocab), { embedding });
    return {
      layer: p.layer,
      head: p.head,
      pastMlp0: p.pastMlp0,
      rows: rows.map((r) => ({
        token: r.token, str: strOf(model, r.token),
        top: r.ids.map((id, j) => ({ token: id, str: strOf(model, id), value: r.values[j] })),
      })),
    };
  },
  table: (r) => {
    const rows: Cell[][] = [];
    for (const row of r.rows) row.top.forEach((t, k) => rows.push([row.token, row.str, k, t.token, t.str, num(t.value)]));
    return { columns: ['source_token', 'source_str', 'rank', 'token', 'str', 'value'], rows };
  },
  figures: (r) => [topCopiedFigure(r)],
});
