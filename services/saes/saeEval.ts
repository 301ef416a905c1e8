/** POST /api/saes/eval: an SAE evaluated on Tiny Shakespeare (explained variance, L0, dead/dense features, CE loss recovered, density histogram). */
import { z } from 'zod';
import { corpusContexts, DEFAULT_CORPUS, type CorpusSplit } from '../../hooks/sae/corpus.ts';
import { evaluateSae } from '../../hooks/sae/evaluate.ts';
import { checkMemory, engineBytesPerToken, F32 } from '../common/budget.ts';
import { JsonNumber, num } from '../common/nonFinite.ts';
import { UserError } from '../context.ts';
import { defineService } from '../service.ts';
import { SaeName, store } from './common.ts';

export function saeEvalSchema() {
  return z.strictObject({
    sae: SaeName,
    tokens: z.number().int().min(64).max(1_000_000).default(16_384).describe('positions evaluated (BOS left out)'),
    split: z.enum(['heldOut', 'train', 'all']).default('heldOut').describe("part of Tiny Shakespeare (the repository's corpus): its held-out last 10 %, the rest, or all"),
    contextSize: z.number().int().min(8).max(1024).optional().describe("tokens per context (default the SAE's context_size, at most n_ctx)"),
  });
}
export type SaeEvalRequest = z.infer<ReturnType<typeof saeEvalSchema>>;

export const SaeEvalResponse = z.object({
  sae: z.string(),
  corpus: z.object({ name: z.string(), split: z.string(), contextSize: z.number().int() }),
  tokens: z.number().int(),
  contexts: z.number().int(),
  explainedVariance: JsonNumber,
  mse: JsonNumber,
  l0: JsonNumber,
  deadFraction: JsonNumber,
  denseFraction: JsonNumber,
  denseThreshold: JsonNumber,
  ceLossClean: JsonNumber,
  ceLossSpliced: JsonNumber,
  ceLossZeroAblated: JsonNumber,
  ceLossRecovered: JsonNumber,
  densityHistogram: z.object({ edges: z.array(JsonNumber), counts: z.array(z.number().int()), dead: z.number().int() }),
});
export type SaeEvalResult = z.infer<typeof SaeEvalResponse>;

export const saeEval = defineService({
  kind: 'saeEval',
  route: {
    path: '/api/saes/eval',
    summary: 'Evaluates an SAE on Tiny Shakespeare: explained variance, L0, dead/dense features, CE loss recovered, feature density histogram',
  },
  request: saeEvalSchema,
  response: SaeEvalResponse,
  handler: async (model, p, ctx): Promise<SaeEvalResult> => {
    const sae = await store(ctx).fitting(p.sae);
    if (!model.tokenizer) throw new UserError('evaluation reads text: this model was loaded without tokenizer files');
    const contextSize = Math.min(p.contextSize ?? sae.cfg.context_size ?? 128, model.cfg.n_ctx);
    const batch = 8;
    checkMemory(ctx, [
      { what: `features ${batch} × ${contextSize} × ${sae.cfg.d_sae} floats`, bytes: batch * contextSize * sae.cfg.d_sae * F32 * 2 },
      { what: `logits ${batch} × ${contextSize} × ${model.cfg.d_vocab} floats`, bytes: batch * contextSize * model.cfg.d_vocab * F32 },
      { what: `onnxruntime working memory for ${batch * contextSize} tokens`, bytes: batch * contextSize * engineBytesPerToken(model.cfg, contextSize) },
    ], 'ask for a smaller contextSize');
    const r = await evaluateSae(model, sae, corpusContexts(DEFAULT_CORPUS, model.tokenizer, { contextSize, split: p.split as CorpusSplit }), {
      maxTokens: p.tokens,
      batchSize: batch,
      onProgress: (done) => {
        ctx.progress(Math.min(done, p.tokens), p.tokens, 'tokens');
        ctx.checkCancelled();
      },
    });
    const { featureDensity: _density, ...metrics } = r;
    return { sae: p.sae, corpus: { name: 'tinyshakespeare', split: p.split, contextSize }, ...metrics };
  },
  table: (r) => ({
    columns: ['metric', 'value'],
    rows: (['tokens', 'explainedVariance', 'mse', 'l0', 'deadFraction', 'denseFraction', 'ceLossClean', 'ceLossSpliced', 'ceLossZeroAblated', 'ceLossRecovered'] as const)
      .map((k) => [k, num(r[k])]),
  }),
});
