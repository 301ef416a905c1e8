/** POST /api/circuits/copying: the copying score of every head, read from its full OV circuit (no prompt). */
import { z } from 'zod';
import { copyingScores, effectiveEmbedding, embeddingTokenSet, type TokenEmbedding } from '../../hooks/circuits/index.ts';
import { copyingFigure } from '../../hooks/figures/index.ts';
import type { Cell } from '../../hooks/figures/types.ts';
import { defineService } from '../service.ts';
import { num } from '../common/nonFinite.ts';
import { grid } from '../common/requests.ts';
import { Grid2 } from '../common/schema.ts';
import { range } from '../common/select.ts';
import { checkPastMlp0, perModel, tokenSetEmbeddings } from './common.ts';

export function copyingSchema() {
  return z.strictObject({
    pastMlp0: z.boolean().default(false).describe("read tokens through the effective embedding (W_E + mean W_pos through block 0's MLP, LayerNorm) over the model's token set; read past block 0's MLP (an extension, not TransformerLens): see the README's circuits section"),
  });
}
export type CopyingRequest = z.infer<ReturnType<typeof copyingSchema>>;

export const CopyingResponse = z.object({
  layers: z.array(z.number().int()),
  heads: z.array(z.number().int()),
  scores: Grid2.describe('[layer][head] Σ Re λ / Σ |λ| of the full OV circuit W_E W_V W_O W_U (1 = copying)'),
  pastMlp0: z.boolean(),
  tokens: z.number().int().describe('size of the token set the circuit is read over (d_vocab when pastMlp0 is false)'),
});
export type CopyingResult = z.infer<typeof CopyingResponse>;

export const copying = defineService({
  kind: 'copying',
  route: { path: '/api/circuits/copying', summary: 'Copying score of every head (eigenvalues of its full OV circuit), [layer][head]' },
  request: copyingSchema,
  response: CopyingResponse,
  handler: async (model, p, ctx): Promise<CopyingResult> => {
    ctx.checkCancelled();
    let embedding: TokenEmbedding | undefined;
    if (p.pastMlp0) {
      checkPastMlp0(model);
      embedding = await perModel(tokenSetEmbeddings, model, () => effectiveEmbedding(model, embeddingTokenSet(model)));
      ctx.checkCancelled();
    }
    const scores = await copyingScores(model, { embedding });
    return {
      layers: range(model.cfg.n_layers), heads: range(model.cfg.n_heads), scores: grid(scores),
      pastMlp0: p.pastMlp0, tokens: embedding ? embedding.tokens.length : model.cfg.d_vocab,
    };
  },
  table: (r) => {
    const rows: Cell[][] = [];
    r.layers.forEach((l) => r.heads.forEach((h) => rows.push([l, h, num(r.scores[l][h])])));
    return { columns: ['layer', 'head', 'score'], rows };
  },
  figures: (r) => [copyingFigure(r)],
});
