/** POST /api/neurons/output: the tokens a neuron's output weights raise and lower most, W_out[n] · W_U. */
import { z } from 'zod';
import { neuronOutputTokens } from '../../hooks/analysis/index.ts';
import type { Cell } from '../../hooks/figures/types.ts';
import { JsonNumber, num } from '../common/nonFinite.ts';
import { strOf } from '../common/requests.ts';
import { TokenIdOut } from '../common/schema.ts';
import type { Limits } from '../limits.ts';
import { defineService } from '../service.ts';
import { checkNeuron, Layer, NeuronIndex } from './common.ts';

export function neuronOutputSchema(limits: Limits) {
  return z.strictObject({
    layer: Layer,
    neuron: NeuronIndex,
    k: z.number().int().min(1).max(limits.maxTopK).default(10).describe(`tokens at each end (1..${limits.maxTopK}, default 10)`),
  });
}
export type NeuronOutputRequest = z.infer<ReturnType<typeof neuronOutputSchema>>;

const TokenValue = z.object({ token: TokenIdOut, str: z.string().nullable(), value: JsonNumber });
export const NeuronOutputResponse = z.object({
  layer: z.number().int(),
  neuron: z.number().int(),
  top: z.array(TokenValue).describe('the tokens whose logits one unit of activation raises most: W_out[n] · W_U'),
  bottom: z.array(TokenValue).describe('… and lowers most'),
});
export type NeuronOutputResult = z.infer<typeof NeuronOutputResponse>;

export const neuronOutput = defineService({
  kind: 'neuronOutput',
  route: { path: '/api/neurons/output', summary: "The tokens a neuron's output weights raise and lower most: W_out[n] · W_U" },
  request: neuronOutputSchema,
  response: NeuronOutputResponse,
  handler: async (model, p, ctx): Promise<NeuronOutputResult> => {
    checkNeuron(model, p.layer, p.neuron);
    ctx.checkCancelled();
    const r = neuronOutputTokens(model, p.layer, p.neuron, Math.min(p.k, model.cfg.d_vocab));
    const named = (xs: { token: number; value: number }[]) => xs.map((x) => ({ ...x, str: strOf(model, x.token) }));
    return { layer: p.layer, neuron: p.neuron, top: named(r.top), bottom: named(r.bottom) };
  },
  table: (r) => {
    const rows: Cell[][] = [];
    r.top.forEach((t, i) => rows.push([r.layer, r.neuron, 'top', i, t.token, t.str, num(t.value)]));
    r.bottom.forEach((t, i) => rows.push([r.layer, r.neuron, 'bottom', i, t.token, t.str, num(t.value)]));
    return { columns: ['layer', 'neuron', 'end', 'rank', 'token', 'str', 'value'], rows };
  },
});
