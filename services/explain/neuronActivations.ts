/** POST /api/neurons/activations: one neuron's activation (mlp.hook_post) at every token of a prompt. */
import { z } from 'zod';
import { neuronActivations as neuronActivationsOf, withModel } from '../../hooks/analysis/index.ts';
import { blockHook } from '../../hooks/hookPoints.ts';
import { checkMemory, engineBytesPerToken, F32 } from '../common/budget.ts';
import { JsonNumber, num } from '../common/nonFinite.ts';
import { preparePrompt, strTokens } from '../common/requests.ts';
import { InputOptions, PromptTokens, singlePrompt } from '../common/schema.ts';
import { defineService } from '../service.ts';
import { checkNeuron, Layer, NeuronIndex } from './common.ts';

export function neuronActivationsSchema() {
  return z.strictObject({ prompt: singlePrompt(), prependBos: InputOptions.prependBos, layer: Layer, neuron: NeuronIndex });
}
export type NeuronActivationsRequest = z.infer<ReturnType<typeof neuronActivationsSchema>>;

export const NeuronActivationsResponse = z.object({
  ...PromptTokens,
  layer: z.number().int(),
  neuron: z.number().int(),
  activations: z.array(JsonNumber).describe('[pos] mlp.hook_post of the neuron'),
});
export type NeuronActivationsResult = z.infer<typeof NeuronActivationsResponse>;

export const neuronActivations = defineService({
  kind: 'neuronActivations',
  route: { path: '/api/neurons/activations', summary: "One neuron's activation (mlp.hook_post) at every token of a prompt" },
  request: neuronActivationsSchema,
  response: NeuronActivationsResponse,
  handler: async (model, p, ctx): Promise<NeuronActivationsResult> => {
    checkNeuron(model, p.layer, p.neuron);
    const { tokens } = preparePrompt(model, p.prompt, p);
    const pos = tokens[0].length;
    checkMemory(ctx, [
      { what: `mlp.hook_post of layer ${p.layer}, ${pos} × ${model.cfg.d_mlp} floats`, bytes: pos * model.cfg.d_mlp * F32 },
      { what: `onnxruntime working memory for ${pos} tokens`, bytes: pos * engineBytesPerToken(model.cfg, pos) },
    ], 'use a shorter prompt');
    ctx.checkCancelled();
    const [, raw] = await model.runWithCache(tokens, { namesFilter: [blockHook(p.layer, 'mlp.hook_post')], returnType: 'none' });
    return {
      tokens: tokens[0], strTokens: strTokens(model, tokens[0]), layer: p.layer, neuron: p.neuron,
      activations: Array.from(neuronActivationsOf(withModel(raw, model), p.layer, p.neuron)),
    };
  },
  table: (r) => ({
    columns: ['layer', 'neuron', 'position', 'token', 'str', 'activation'],
    rows: r.activations.map((a, p) => [r.layer, r.neuron, p, r.tokens[p], r.strTokens?.[p] ?? null, num(a)]),
  }),
});
