/** POST /api/neurons/examples: one neuron's top activating examples over the held-out Tiny Shakespeare (harvested once per model). */
import { z } from 'zod';
import { cachedNeuronExamples, neuronExampleWindows, type NeuronExamples } from '../../hooks/analysis/index.ts';
import type { Cell } from '../../hooks/figures/types.ts';
import type { HookedTransformer } from '../../hooks/HookedTransformer.ts';
import { engineBytesPerToken, F32, rowsPerStep } from '../common/budget.ts';
import { JsonNumber, num } from '../common/nonFinite.ts';
import { strTokens } from '../common/requests.ts';
import { TokenIdOut } from '../common/schema.ts';
import { UserError, type JobContext } from '../context.ts';
import { defineService } from '../service.ts';
import { checkNeuron, Layer, NeuronIndex } from './common.ts';

export function neuronExamplesSchema() {
  return z.strictObject({
    layer: Layer,
    neuron: NeuronIndex,
    k: z.number().int().min(1).max(20).default(10).describe('examples (1..20, default 10), best first'),
    before: z.number().int().min(0).max(64).default(12).describe('tokens shown before the maximum (default 12)'),
    after: z.number().int().min(0).max(64).default(4).describe('tokens shown after it (default 4)'),
  });
}
export type NeuronExamplesRequest = z.infer<ReturnType<typeof neuronExamplesSchema>>;

export const NeuronExamplesResponse = z.object({
  layer: z.number().int(),
  neuron: z.number().int(),
  corpus: z.object({
    name: z.string(), split: z.string(), tokens: z.number().int(), contexts: z.number().int(), contextSize: z.number().int(),
  }).describe('what the examples were harvested from'),
  fromCache: z.boolean().describe('whether the harvest was read from the disk cache (false: computed by this request)'),
  density: JsonNumber.describe('the share of corpus tokens (BOS left out) where the neuron is above 0'),
  examples: z.array(z.object({
    context: z.number().int(),
    position: z.number().int().describe('the maximum\'s position in its context'),
    value: JsonNumber.describe('the activation there'),
    start: z.number().int().describe('the window\'s first position in the context'),
    tokens: z.array(TokenIdOut),
    strTokens: z.array(z.string()).nullable(),
    activations: z.array(JsonNumber).describe('the neuron on each token of the window'),
  })),
});
export type NeuronExamplesResult = z.infer<typeof NeuronExamplesResponse>;

/** Per model, its corpus examples once read or harvested (a failed or cancelled harvest is not remembered). */
const harvests = new WeakMap<HookedTransformer, Promise<NeuronExamples>>();

async function examplesOf(model: HookedTransformer, ctx: JobContext): Promise<{ examples: NeuronExamples; fromCache: boolean }> {
  const known = harvests.get(model);
  if (known) return { examples: await known, fromCache: true };
  if (!model.tokenizer) throw new UserError('neuron examples are harvested from a text corpus; this model was loaded without tokenizer files');
  const { n_layers, d_mlp, n_ctx } = model.cfg;
  const C = Math.min(64, n_ctx);
  const k = 20;
  const batchSize = rowsPerStep(ctx, {
    fixed: [{ what: `the top ${k} examples of ${n_layers * d_mlp} neurons`, bytes: n_layers * d_mlp * (k * 12 + 8) }],
    perRow: [
      { what: `mlp.hook_post of ${n_layers} layers, ${C} × ${d_mlp} floats per context`, bytes: n_layers * C * d_mlp * F32 },
      { what: `onnxruntime working memory for ${C} tokens per context`, bytes: C * engineBytesPerToken(model.cfg, C) },
    ],
    rowTokens: C, rows: Number.MAX_SAFE_INTEGER,
  }, 'raise --max-job-memory');
  let fromCache = true;
  const job = cachedNeuronExamples(model, {
    cacheDir: ctx.cacheDir, contextSize: C, k, batchSize,
    onStart: (n) => {
      fromCache = false;
      ctx.progress(0, n, 'corpus contexts');
      ctx.checkCancelled();
    },
    onBatch: (done, total) => {
      ctx.progress(done, total, 'corpus contexts');
      ctx.checkCancelled();
    },
  }).then((r) => r.examples);
  harvests.set(model, job);
  job.catch(() => harvests.delete(model));
  return { examples: await job, fromCache };
}

export const neuronExamples = defineService({
  kind: 'neuronExamples',
  route: {
    path: '/api/neurons/examples',
    summary: "One neuron's top activating examples over the held-out Tiny Shakespeare (harvested for every neuron once per model, kept in --cache-dir)",
    description: 'The first request for a model harvests every neuron over the corpus (progress per batch of contexts; cancellable) and writes it to the cache folder; later ones read it.',
  },
  request: neuronExamplesSchema,
  response: NeuronExamplesResponse,
  handler: async (model, p, ctx): Promise<NeuronExamplesResult> => {
    checkNeuron(model, p.layer, p.neuron);
    ctx.checkCancelled();
    const { examples, fromCache } = await examplesOf(model, ctx);
    ctx.checkCancelled();
    const windows = await neuronExampleWindows(model, examples, p.layer, p.neuron, { k: p.k, before: p.before, after: p.after });
    const { corpus } = examples.meta;
    return {
      layer: p.layer, neuron: p.neuron,
      corpus: { name: corpus.name, split: corpus.split, tokens: corpus.tokens, contexts: examples.contexts, contextSize: corpus.contextSize },
      fromCache,
      density: examples.densityOf(p.layer, p.neuron),
      examples: windows.map((w) => ({ ...w, strTokens: strTokens(model, w.tokens) })),
    };
  },
  /** Rows: one per token of each example's window; `is_max` marks the example's maximum. */
  table: (r) => {
    const rows: Cell[][] = [];
    r.examples.forEach((e, rank) => e.tokens.forEach((t, i) => rows.push([
      r.layer, r.neuron, rank, e.context, e.start + i, t, e.strTokens?.[i] ?? null, num(e.activations[i]), e.start + i === e.position,
    ])));
    return { columns: ['layer', 'neuron', 'rank', 'context', 'position', 'token', 'str', 'activation', 'is_max'], rows };
  },
});
