/** POST /api/ablate: one run with heads, neurons or residual positions ablated together: the metric clean and ablated. */
import { z } from 'zod';
import type { HookedTransformer } from '../../hooks/HookedTransformer.ts';
import { ablationSpecs, type AblationTargets } from '../../hooks/analysis/index.ts';
import type { Limits } from '../limits.ts';
import { defineService } from '../service.ts';
import { checkMemory, engineBytesPerToken, F32 } from '../common/budget.ts';
import { JsonNumber, num } from '../common/nonFinite.ts';
import { buildMetric, checkIndex, preparePrompt, resolvePos, strTokens } from '../common/requests.ts';
import { Ablation, AblationMetric, AblationMode, InputOptions, MetricEcho, PromptTokens, referencePrompts, singlePrompt } from '../common/schema.ts';
import { ablationSource } from './common.ts';

export function ablateSchema(limits: Limits) {
  return z.strictObject({
    prompt: singlePrompt(),
    prependBos: InputOptions.prependBos,
    ablations: z.array(Ablation).min(1).max(1024).describe('what to ablate together in one run (1..1024)'),
    mode: AblationMode,
    reference: referencePrompts(limits),
    seed: z.number().int().min(0).default(0).describe('resample: seed for drawing the reference prompt'),
    metric: AblationMetric,
  });
}
export type AblateRequest = z.infer<ReturnType<typeof ablateSchema>>;

export const AblateResponse = z.object({
  ...PromptTokens,
  metric: MetricEcho,
  clean: JsonNumber.describe('the metric without ablation'),
  ablated: JsonNumber.describe('the metric with every listed ablation'),
  delta: JsonNumber.describe('ablated − clean'),
});
export type AblateResult = z.infer<typeof AblateResponse>;

/** Upper bound of the in-graph masks and replacement values of a set of ablations on one prompt ([1, pos, …] per hook). */
function ablationMaskBytes(model: HookedTransformer, t: AblationTargets, pos: number): number {
  const { d_model, d_head, n_heads, d_mlp } = model.cfg;
  const layers = (xs: readonly { layer: number }[] = []) => new Set(xs.map((x) => x.layer)).size;
  return 2 * F32 * pos * (layers(t.heads) * n_heads * d_head + layers(t.neurons) * d_mlp + layers(t.positions) * d_model);
}

export const ablate = defineService({
  kind: 'ablate',
  route: { path: '/api/ablate', summary: 'A run with heads, neurons or residual positions ablated (zero / mean / resample): the metric clean and ablated' },
  request: ablateSchema,
  response: AblateResponse,
  handler: async (model, p, ctx): Promise<AblateResult> => {
    const { n_layers, n_heads, d_mlp } = model.cfg;
    const { tokens } = preparePrompt(model, p.prompt, p);
    const pos = tokens[0].length;
    const metric = buildMetric(model, p.metric, tokens);
    const targets = {
      heads: [] as { layer: number; head: number }[],
      neurons: [] as { layer: number; neuron: number }[],
      positions: [] as { layer: number; pos: number }[],
    } satisfies AblationTargets;
    p.ablations.forEach((a, i) => {
      const f = `ablations[${i}]`;
      checkIndex(`${f}.layer`, a.layer, n_layers, 'n_layers');
      if (a.kind === 'head') {
        checkIndex(`${f}.head`, a.head, n_heads, 'n_heads');
        targets.heads.push({ layer: a.layer, head: a.head });
      } else if (a.kind === 'neuron') {
        checkIndex(`${f}.neuron`, a.neuron, d_mlp, 'd_mlp');
        targets.neurons.push({ layer: a.layer, neuron: a.neuron });
      } else {
        targets.positions.push({ layer: a.layer, pos: resolvePos(`${f}.position`, a.position, pos) });
      }
    });
    const source = ablationSource(model, p, pos);
    checkMemory(ctx, [
      { what: `logits ${pos} × ${model.cfg.d_vocab} floats`, bytes: pos * model.cfg.d_vocab * F32 },
      { what: `intervention masks and values of ${p.ablations.length} ablations`, bytes: ablationMaskBytes(model, targets, pos) },
      { what: `onnxruntime working memory for ${pos} tokens`, bytes: pos * engineBytesPerToken(model.cfg, pos) },
    ], 'use a shorter prompt');
    ctx.checkCancelled();
    const specs = await ablationSpecs(model, tokens, targets, source);
    ctx.progress(1, 3, 'runs');
    ctx.checkCancelled();
    const clean = metric.fn(await model.forward(tokens));
    ctx.progress(2, 3, 'runs');
    ctx.checkCancelled();
    const ablated = metric.fn(await model.forward(tokens, { interventions: specs }));
    ctx.progress(3, 3, 'runs');
    return { tokens: tokens[0], strTokens: strTokens(model, tokens[0]), metric: metric.echo, clean, ablated, delta: ablated - clean };
  },
  table: (r) => ({ columns: ['metric', 'clean', 'ablated', 'delta'], rows: [[r.metric.label, num(r.clean), num(r.ablated), num(r.delta)]] }),
});
