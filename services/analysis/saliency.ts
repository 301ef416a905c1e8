/** POST /api/saliency: gradient × input or integrated gradients of a metric per prompt token (with respect to hook_embed). */
import { z } from 'zod';
import { inputSaliency } from '../../hooks/analysis/index.ts';
import { saliencyFigure } from '../../hooks/figures/index.ts';
import { defineService } from '../service.ts';
import { F32, rowsPerStep, type MemoryPart } from '../common/budget.ts';
import { inferMetric, metricFlags, PREPEND_BOS_FLAG } from '../common/cli.ts';
import { JsonNumber, num } from '../common/nonFinite.ts';
import { buildMetric, passProgress, preparePrompt, strTokens, tokenId } from '../common/requests.ts';
import { AblationMetric, InputOptions, MetricEcho, PromptTokens, singlePrompt, TokenSpec } from '../common/schema.ts';
import { backwardWorkingMemory } from './common.ts';

export const SALIENCY_METHODS = ['grad_x_input', 'integrated_gradients'] as const;

export function saliencySchema() {
  return z.strictObject({
    prompt: singlePrompt(),
    prependBos: InputOptions.prependBos,
    metric: AblationMetric,
    method: z.enum(SALIENCY_METHODS).default('grad_x_input')
      .describe('grad_x_input: embedding · gradient; integrated_gradients: (embedding − baseline) · the mean gradient along the path'),
    steps: z.number().int().min(1).max(1024).default(64).describe('integrated_gradients: points on the path (1..1024, default 64)'),
    baseline: z.union([z.literal('zero'), TokenSpec]).default('zero')
      .describe("integrated_gradients: 'zero' (the zero embedding) or a token whose embedding stands at every position"),
  });
}
export type SaliencyRequest = z.infer<ReturnType<typeof saliencySchema>>;

export const SaliencyResponse = z.object({
  ...PromptTokens,
  metric: MetricEcho,
  method: z.enum(SALIENCY_METHODS),
  steps: z.number().int().describe('points on the path (1 for grad_x_input)'),
  value: JsonNumber.describe('the metric of the prompt'),
  baselineValue: JsonNumber.nullable().describe('integrated_gradients: the metric at the baseline (null for grad_x_input)'),
  scores: z.array(JsonNumber).describe('[pos] each token\'s attribution, summed over d_model (integrated gradients: they add up to value − baselineValue)'),
});
export type SaliencyResult = z.infer<typeof SaliencyResponse>;

export const saliency = defineService({
  kind: 'saliency',
  route: {
    path: '/api/saliency',
    summary: 'Input saliency per token: gradient × input or integrated gradients of a metric with respect to the token embeddings (hook_embed)',
  },
  request: saliencySchema,
  response: SaliencyResponse,
  /** Gradient × input or integrated gradients of the metric per prompt token. */
  handler: async (model, p, ctx): Promise<SaliencyResult> => {
    const { tokens } = preparePrompt(model, p.prompt, p);
    const metric = buildMetric(model, p.metric, tokens);
    const baseline = p.baseline === 'zero' ? 'zero' : tokenId(model, 'baseline', p.baseline);
    const pos = tokens[0].length;
    const V = model.cfg.d_vocab;
    // One forward and backward pass per point on the path (copies of the prompt, as many per pass as fit).
    const perRow: MemoryPart[] = [
      backwardWorkingMemory(model, pos),
      { what: `the embeddings on the path, their mask and gradient 3 × ${pos} × ${model.cfg.d_model} floats`, bytes: 3 * pos * model.cfg.d_model * F32 },
      p.metric.kind === 'loss'
        ? { what: `logits and their gradient 2 × ${pos} × ${V} floats (the loss reads every position)`, bytes: 2 * pos * V * F32 }
        : { what: `logits and their gradient 2 × ${V} floats`, bytes: 2 * V * F32 },
    ];
    const rowsPerPass = rowsPerStep(ctx, { fixed: [], perRow, rowTokens: pos, rows: p.method === 'integrated_gradients' ? p.steps : 1, requested: 32 }, 'use a shorter prompt');
    const r = await inputSaliency(model, tokens, metric.fn, {
      method: p.method, steps: p.steps, baseline, rowsPerPass,
      onProgress: passProgress(ctx, 0, undefined, 'points on the path'),
    });
    return {
      tokens: tokens[0], strTokens: strTokens(model, tokens[0]), metric: metric.echo, method: p.method, steps: r.steps,
      value: r.value, baselineValue: r.baselineValue, scores: Array.from(r.scores.data),
    };
  },
  /** Rows: per prompt token, its position, id, string and attribution score. */
  table: (r) => ({ columns: ['position', 'token', 'str', 'score'], rows: r.tokens.map((t, p) => [p, t, r.strTokens?.[p] ?? null, num(r.scores[p])]) }),
  figures: (r) => [saliencyFigure(r)],
  cli: {
    command: 'saliency',
    summary: 'input saliency: gradient × input or integrated gradients of a metric per prompt token',
    flags: [
      { flag: 'prompt', type: 'string', path: 'prompt', help: 'the prompt (text)' },
      { flag: 'metric', type: 'string', path: 'metric.kind', help: 'logit_diff | prob | logprob | loss (default: from the flags given; loss without any)' },
      ...metricFlags('logit_diff, prob, logprob'),
      { flag: 'token', type: 'token', path: 'metric.token', help: 'prob / logprob: the token whose (log-)probability is read' },
      { flag: 'method', type: 'string', path: 'method', help: 'grad_x_input | integrated_gradients (default grad_x_input)' },
      { flag: 'steps', type: 'int', path: 'steps', help: 'integrated_gradients: points on the path (default 64)' },
      { flag: 'baseline', type: 'token', path: 'baseline', help: "integrated_gradients: 'zero' (default) or a token whose embedding is the baseline" },
      PREPEND_BOS_FLAG,
    ],
    prepare: (req) => inferMetric(req, 'loss'),
  },
});
