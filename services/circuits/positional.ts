/** POST /api/circuits/positional: one head's positional QK pattern and every head's previous-token score, from the weights. */
import { z } from 'zod';
import { positionalPattern, previousTokenScoreFromWeights, previousTokenScoresFromWeights } from '../../hooks/circuits/index.ts';
import { positionalFigure } from '../../hooks/figures/index.ts';
import type { Cell } from '../../hooks/figures/types.ts';
import { UserError } from '../context.ts';
import { defineService } from '../service.ts';
import { JsonNumber, num } from '../common/nonFinite.ts';
import { grid } from '../common/requests.ts';
import { Grid2, Index } from '../common/schema.ts';
import { checkHead } from './common.ts';

export function positionalSchema() {
  return z.strictObject({
    layer: Index,
    head: Index,
    nPos: z.number().int().min(2).max(4096).optional().describe('positions (2..n_ctx; default min(n_ctx, 64))'),
    normalize: z.boolean().default(false).describe('LayerNorm-like W_pos rows before the QK circuit'),
  });
}
export type PositionalRequest = z.infer<ReturnType<typeof positionalSchema>>;

export const PositionalResponse = z.object({
  layer: z.number().int(),
  head: z.number().int(),
  nPos: z.number().int(),
  pattern: Grid2.describe('[query_pos][key_pos] causal softmax of W_pos W_Q W_Kᵀ W_posᵀ / √d_head'),
  previousTokenScore: JsonNumber.describe('mean pattern mass on the previous position'),
  previousTokenScores: Grid2.describe('[layer][head] the same score for every head'),
});
export type PositionalResult = z.infer<typeof PositionalResponse>;

export const positional = defineService({
  kind: 'positional',
  route: { path: '/api/circuits/positional', summary: 'Positional QK pattern of one head and the previous-token score from the weights' },
  request: positionalSchema,
  response: PositionalResponse,
  handler: async (model, p, ctx): Promise<PositionalResult> => {
    checkHead(model, p.layer, p.head);
    const { n_ctx } = model.cfg;
    const nPos = p.nPos ?? Math.min(n_ctx, 64);
    if (nPos > n_ctx) throw new UserError(`nPos: ${nPos} exceeds the model's context n_ctx = ${n_ctx} (allowed 2..${n_ctx})`);
    const opts = { nPos, normalize: p.normalize };
    ctx.checkCancelled();
    const pattern = positionalPattern(model, p.layer, p.head, opts);
    const all = previousTokenScoresFromWeights(model, opts);
    return {
      layer: p.layer, head: p.head, nPos, pattern: grid(pattern),
      previousTokenScore: previousTokenScoreFromWeights(model, p.layer, p.head, opts),
      previousTokenScores: grid(all),
    };
  },
  table: (r) => {
    const rows: Cell[][] = [];
    r.pattern.forEach((row, q) => row.forEach((v, k) => rows.push([q, k, num(v)])));
    return { columns: ['query_pos', 'key_pos', 'pattern'], rows };
  },
  figures: (r) => [positionalFigure(r)],
});
