/** POST /api/circuits/composition: Q-, K- or V-composition scores of every pair of heads, from the weights (no prompt). */
import { z } from 'zod';
import { allCompositionScores, blockZeroMlpInputs, compositionBaseline, embeddingTokenSet, mlpLinearization } from '../../hooks/circuits/index.ts';
import { compositionFigure } from '../../hooks/figures/index.ts';
import type { Cell } from '../../hooks/figures/types.ts';
import type { Tensor } from '../../hooks/tensor.ts';
import { defineService } from '../service.ts';
import { JsonNumber, num } from '../common/nonFinite.ts';
import { nest, range } from '../common/select.ts';
import { blockZeroMaps, checkPastMlp0, perModel } from './common.ts';

export function compositionSchema() {
  return z.strictObject({
    mode: z.enum(['Q', 'K', 'V']).describe("the later head's input the earlier head's OV composes into"),
    baselineSamples: z.number().int().min(1).max(1000).default(100).describe('random matrix pairs for the baseline'),
    seed: z.number().int().min(0).default(0).describe('seed of the baseline'),
    pastMlp0: z.boolean().default(false).describe("score each layer-0 head's output after block 0's MLP (I + its mean Jacobian at weight-derived points); read past block 0's MLP (an extension, not TransformerLens): see the README's circuits section"),
  });
}
export type CompositionRequest = z.infer<ReturnType<typeof compositionSchema>>;

export const CompositionResponse = z.object({
  mode: z.enum(['Q', 'K', 'V']),
  layers: z.array(z.number().int()),
  heads: z.array(z.number().int()),
  scores: z.array(z.array(z.array(z.array(JsonNumber)))).describe('[l1][h1][l2][h2] ‖W_A W_B‖ / (‖W_A‖ ‖W_B‖), 0 unless l1 < l2'),
  baseline: z.object({ mean: JsonNumber, std: JsonNumber, samples: z.number().int() }).describe('scores of random matrices of the same shapes'),
  pastMlp0: z.boolean(),
});
export type CompositionResult = z.infer<typeof CompositionResponse>;

export const composition = defineService({
  kind: 'composition',
  route: { path: '/api/circuits/composition', summary: 'Q-, K- or V-composition scores of every pair of heads, [l1][h1][l2][h2], with a random baseline' },
  request: compositionSchema,
  response: CompositionResponse,
  handler: async (model, p, ctx): Promise<CompositionResult> => {
    const { n_layers, n_heads } = model.cfg;
    ctx.checkCancelled();
    let map0: Tensor | undefined;
    if (p.pastMlp0) {
      checkPastMlp0(model);
      map0 = await perModel(blockZeroMaps, model, () => mlpLinearization(model, 0, blockZeroMlpInputs(model, embeddingTokenSet(model))));
      ctx.checkCancelled();
    }
    const scores = await allCompositionScores(model, p.mode, { outputMaps: map0 ? [map0] : undefined });
    ctx.progress(1, 2, 'scores');
    ctx.checkCancelled();
    const b = compositionBaseline(model, p.mode, { samples: p.baselineSamples, seed: p.seed, outputMap: map0 });
    ctx.progress(2, 2, 'baseline');
    return {
      mode: p.mode, layers: range(n_layers), heads: range(n_heads),
      scores: nest(scores.data, scores.shape) as number[][][][],
      baseline: { mean: b.mean, std: b.std, samples: b.scores.length },
      pastMlp0: p.pastMlp0,
    };
  },
  table: (r) => {
    const rows: Cell[][] = [];
    r.layers.forEach((l1) => r.heads.forEach((h1) => r.layers.forEach((l2) => r.heads.forEach((h2) => rows.push([l1, h1, l2, h2, num(r.scores[l1][h1][l2][h2])])))));
    return { columns: ['layer1', 'head1', 'layer2', 'head2', 'score'], rows };
  },
  figures: (r) => [compositionFigure(r)],
});
