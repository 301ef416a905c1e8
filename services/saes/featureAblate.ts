/** POST /api/features/ablate: SAE features ablated (hook_sae_acts_post = 0, the error term kept); a metric clean, spliced and ablated. */
import { z } from 'zod';
import { ablateFeatures } from '../../hooks/sae/features.ts';
import type { Tensor } from '../../hooks/tensor.ts';
import { checkMemory, engineBytesPerToken, F32 } from '../common/budget.ts';
import { JsonNumber, num } from '../common/nonFinite.ts';
import { buildMetric, preparePrompt, strTokens } from '../common/requests.ts';
import { AblationMetric, MetricEcho, singlePrompt, TokenIdOut } from '../common/schema.ts';
import { UserError } from '../context.ts';
import { defineService } from '../service.ts';
import { Feature, SaeName, store } from './common.ts';

export function featureAblateSchema() {
  return z.strictObject({
    sae: SaeName,
    prompt: singlePrompt(),
    prependBos: z.boolean().optional(),
    features: z.array(Feature).min(1).max(256).describe('features set to 0 at hook_sae_acts_post'),
    positions: z.array(z.number().int()).min(1).max(1024).optional().describe('positions to ablate at (negative counts from the end; default all)'),
    metric: AblationMetric,
  });
}
export type FeatureAblateRequest = z.infer<ReturnType<typeof featureAblateSchema>>;

export const FeatureAblateResponse = z.object({
  sae: z.string(),
  tokens: z.array(TokenIdOut),
  strTokens: z.array(z.string()).nullable(),
  metric: MetricEcho,
  clean: JsonNumber.describe('the metric of the clean run (the SAE spliced with its error term: the same as without it)'),
  spliced: JsonNumber.describe('the metric with the SAE spliced without its error term (its reconstruction)'),
  ablated: JsonNumber.describe('the metric with the features ablated (error term kept: only the ablation changes the run)'),
  delta: JsonNumber.describe('ablated − clean'),
});
export type FeatureAblateResult = z.infer<typeof FeatureAblateResponse>;

export const featureAblate = defineService({
  kind: 'featureAblate',
  route: {
    path: '/api/features/ablate',
    summary: "Ablates SAE features (hook_sae_acts_post = 0, the error term kept) and reads a metric: clean, spliced and ablated",
  },
  request: featureAblateSchema,
  response: FeatureAblateResponse,
  handler: async (model, p, ctx): Promise<FeatureAblateResult> => {
    const sae = await store(ctx).fitting(p.sae);
    const { tokens } = preparePrompt(model, p.prompt, p);
    const pos = tokens[0].length;
    p.features.forEach((f, i) => {
      if (f >= sae.cfg.d_sae) throw new UserError(`features[${i}]: ${f} is not a feature of ${p.sae}; allowed 0…${sae.cfg.d_sae - 1}`);
    });
    (p.positions ?? []).forEach((q, i) => {
      if (q < -pos || q >= pos) throw new UserError(`positions[${i}]: ${q} is out of range for a prompt of ${pos} tokens (allowed ${-pos}..${pos - 1})`);
    });
    const metric = buildMetric(model, p.metric, tokens);
    const fn = metric.fn as (logits: Tensor) => number; // a positioned metric reads full logits when called directly
    checkMemory(ctx, [
      { what: `logits ${pos} × ${model.cfg.d_vocab} floats`, bytes: pos * model.cfg.d_vocab * F32 },
      { what: `onnxruntime working memory for ${pos} tokens`, bytes: pos * engineBytesPerToken(model.cfg, pos) },
    ], 'use a shorter prompt');
    ctx.checkCancelled();
    const clean = fn(await model.runWithSaes(tokens, { saes: sae, useErrorTerm: true }));
    ctx.progress(1, 3, 'runs');
    ctx.checkCancelled();
    const spliced = fn(await model.runWithSaes(tokens, { saes: sae }));
    ctx.progress(2, 3, 'runs');
    ctx.checkCancelled();
    const ablated = fn(await model.runWithSaes(tokens, { saes: sae, useErrorTerm: true, interventions: [ablateFeatures(sae, p.features, p.positions ? { positions: p.positions } : {})] }));
    ctx.progress(3, 3, 'runs');
    return {
      sae: p.sae, tokens: tokens[0], strTokens: strTokens(model, tokens[0]), metric: metric.echo,
      clean, spliced, ablated, delta: ablated - clean,
    };
  },
  table: (r) => ({
    columns: ['metric', 'clean', 'spliced', 'ablated', 'delta'],
    rows: [[r.metric.label, num(r.clean), num(r.spliced), num(r.ablated), num(r.delta)]],
  }),
});
