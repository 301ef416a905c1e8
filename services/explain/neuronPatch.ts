/** POST /api/neurons/patch: a run with one neuron's activation patched in from another prompt; the metric before and after. */
import { z } from 'zod';
import { neuronActivations, withModel } from '../../hooks/analysis/index.ts';
import { blockHook } from '../../hooks/hookPoints.ts';
import { patchFrom } from '../../hooks/interventions.ts';
import { checkMemory, engineBytesPerToken, F32 } from '../common/budget.ts';
import { JsonNumber, num } from '../common/nonFinite.ts';
import { buildMetric, preparePrompt, resolvePos, strTokens, userCall } from '../common/requests.ts';
import { AblationMetric, Index, InputOptions, MetricEcho, PromptTokens, singlePrompt, TokenIdOut } from '../common/schema.ts';
import { range } from '../common/select.ts';
import { UserError } from '../context.ts';
import { defineService } from '../service.ts';
import { checkNeuron, Layer, NeuronIndex } from './common.ts';

export function neuronPatchSchema() {
  return z.strictObject({
    prompt: singlePrompt(),
    source: singlePrompt().describe("the prompt whose activation of the neuron is patched in (the prompt's token length)"),
    prependBos: InputOptions.prependBos,
    layer: Layer,
    neuron: NeuronIndex,
    positions: z.array(Index).min(1).max(4096).optional().describe('positions patched (negative counts from the end; default every position)'),
    metric: AblationMetric,
  });
}
export type NeuronPatchRequest = z.infer<ReturnType<typeof neuronPatchSchema>>;

export const NeuronPatchResponse = z.object({
  ...PromptTokens,
  sourceTokens: z.array(TokenIdOut),
  sourceStrTokens: z.array(z.string()).nullable(),
  layer: z.number().int(),
  neuron: z.number().int(),
  positions: z.array(z.number().int()).describe('the positions patched (resolved)'),
  metric: MetricEcho,
  clean: JsonNumber.describe("the metric of the prompt's own run"),
  patched: JsonNumber.describe("the metric with the neuron's activation from the source run at those positions"),
  delta: JsonNumber.describe('patched − clean'),
  activations: z.object({ prompt: z.array(JsonNumber), source: z.array(JsonNumber) }).describe('[pos] the neuron in each run'),
});
export type NeuronPatchResult = z.infer<typeof NeuronPatchResponse>;

export const neuronPatch = defineService({
  kind: 'neuronPatch',
  route: {
    path: '/api/neurons/patch',
    summary: "A run with one neuron's activation patched in from another prompt (all or some positions): the metric before and after",
  },
  request: neuronPatchSchema,
  response: NeuronPatchResponse,
  handler: async (model, p, ctx): Promise<NeuronPatchResult> => {
    checkNeuron(model, p.layer, p.neuron);
    const { tokens } = preparePrompt(model, p.prompt, p);
    const source = userCall('source', () => model.prepareInput(p.source as never, { prependBos: p.prependBos })).tokens;
    const pos = tokens[0].length;
    if (source[0].length !== pos) {
      throw new UserError(`source: the prompt has ${pos} tokens and the source ${source[0].length}; patching a neuron position by position needs the same token length`);
    }
    const positions = [...new Set((p.positions ?? range(pos)).map((q, i) => resolvePos(`positions[${i}]`, q, pos)))].sort((a, b) => a - b);
    const metric = buildMetric(model, p.metric, tokens);
    const V = model.cfg.d_vocab;
    checkMemory(ctx, [
      { what: `logits of two runs, ${pos} × ${V} floats each`, bytes: 2 * pos * V * F32 },
      { what: `mlp.hook_post of layer ${p.layer} in two runs`, bytes: 2 * pos * model.cfg.d_mlp * F32 },
      { what: 'the intervention mask and value', bytes: 2 * pos * model.cfg.d_mlp * F32 },
      { what: `onnxruntime working memory for ${pos} tokens`, bytes: pos * engineBytesPerToken(model.cfg, pos) },
    ], 'use shorter prompts');
    const hook = blockHook(p.layer, 'mlp.hook_post');
    ctx.checkCancelled();
    const [, sourceCache] = await model.runWithCache(source, { namesFilter: [hook], returnType: 'none' });
    ctx.progress(1, 3, 'runs');
    ctx.checkCancelled();
    const [cleanLogits, cleanCache] = await model.runWithCache(tokens, { namesFilter: [hook] });
    const clean = metric.fn(cleanLogits);
    ctx.progress(2, 3, 'runs');
    ctx.checkCancelled();
    const patchedLogits = await model.forward(tokens, { interventions: [patchFrom(hook, sourceCache.get(hook), { d_mlp: [p.neuron], pos: positions })] });
    const patched = metric.fn(patchedLogits);
    ctx.progress(3, 3, 'runs');
    const acts = (c: typeof cleanCache) => Array.from(neuronActivations(withModel(c, model), p.layer, p.neuron));
    return {
      tokens: tokens[0], strTokens: strTokens(model, tokens[0]), sourceTokens: source[0], sourceStrTokens: strTokens(model, source[0]),
      layer: p.layer, neuron: p.neuron, positions, metric: metric.echo, clean, patched, delta: patched - clean,
      activations: { prompt: acts(cleanCache), source: acts(sourceCache) },
    };
  },
  table: (r) => ({
    columns: ['layer', 'neuron', 'positions', 'metric', 'clean', 'patched', 'delta'],
    rows: [[r.layer, r.neuron, r.positions.join(' '), r.metric.label, num(r.clean), num(r.patched), num(r.delta)]],
  }),
});
