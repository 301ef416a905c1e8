/** POST /api/neurons/top: a prompt's top neurons by activation and, with a target, by direct logit attribution. */
import { z } from 'zod';
import { logitAttributionFromCache, topNeuronsByActivation } from '../../hooks/analysis/index.ts';
import type { Cell } from '../../hooks/figures/types.ts';
import { checkMemory } from '../common/budget.ts';
import { JsonNumber, num } from '../common/nonFinite.ts';
import { checkIndex, preparePrompt, resolvePos, strTokens, tokenId } from '../common/requests.ts';
import { InputOptions, PromptTokens, singlePrompt, TokenSpec } from '../common/schema.ts';
import { UserError } from '../context.ts';
import type { Limits } from '../limits.ts';
import { defineService } from '../service.ts';
import { attributionMemory, attributionRun, Layer, logitOf, Position, tokenRef, TokenRef } from './common.ts';

export function neuronsTopSchema(limits: Limits) {
  return z.strictObject({
    prompt: singlePrompt(),
    prependBos: InputOptions.prependBos,
    k: z.number().int().min(1).max(limits.maxTopK).default(20).describe(`neurons per list (1..${limits.maxTopK}, default 20)`),
    target: TokenSpec.optional().describe('rank neurons by their direct attribution to logit(target) too'),
    vs: TokenSpec.optional().describe('… to logit(target) − logit(vs)'),
    position: Position.describe('the position the attribution reads (default -1)'),
    layer: Layer.optional().describe("rank only this layer's neurons (an MLP's neurons; default every layer)"),
  });
}
export type NeuronsTopRequest = z.infer<ReturnType<typeof neuronsTopSchema>>;

export const NeuronsTopResponse = z.object({
  ...PromptTokens,
  layer: z.number().int().nullable().describe('the one layer ranked (null: every layer)'),
  byActivation: z.array(z.object({ layer: z.number().int(), neuron: z.number().int(), activation: JsonNumber, position: z.number().int() }))
    .describe('the largest activations (mlp.hook_post) at any position but the first (BOS), and where'),
  byAttribution: z.object({
    position: z.number().int(),
    target: TokenRef,
    vs: TokenRef.nullable(),
    total: JsonNumber.describe("the model's logit (difference) at the position"),
    neurons: z.array(z.object({ layer: z.number().int(), neuron: z.number().int(), value: JsonNumber, activation: JsonNumber })),
  }).nullable().describe('by |direct logit attribution| at the position (null without a target)'),
});
export type NeuronsTopResult = z.infer<typeof NeuronsTopResponse>;

export const neuronsTop = defineService({
  kind: 'neuronsTop',
  route: {
    path: '/api/neurons/top',
    summary: "A prompt's top neurons by activation (any position but BOS) and, with a target, by direct logit attribution at a position",
  },
  request: neuronsTopSchema,
  response: NeuronsTopResponse,
  handler: async (model, p, ctx): Promise<NeuronsTopResult> => {
    if (p.layer !== undefined) checkIndex('layer', p.layer, model.cfg.n_layers, 'n_layers');
    const { tokens } = preparePrompt(model, p.prompt, p);
    const pos = tokens[0].length;
    const position = resolvePos('position', p.position ?? -1, pos);
    if (p.vs !== undefined && p.target === undefined) throw new UserError('vs: give a target too (the attribution ranks neurons by logit(target) − logit(vs))');
    const target = p.target === undefined ? null : tokenId(model, 'target', p.target);
    const vs = p.vs === undefined ? null : tokenId(model, 'vs', p.vs);
    checkMemory(ctx, attributionMemory(model, pos), 'use a shorter prompt');
    ctx.checkCancelled();
    const { logits, cache } = await attributionRun(model, tokens, position);
    ctx.checkCancelled();
    const { n_layers, d_mlp } = model.cfg;
    const k = Math.min(p.k, p.layer === undefined ? n_layers * d_mlp : d_mlp);
    // With a layer, every neuron is ranked and the layer's kept (n_layers · d_mlp numbers: 147,456 for GPT-2 XL).
    const ranked = p.layer === undefined ? k : n_layers * d_mlp;
    const inLayer = <T extends { layer: number }>(xs: T[]) => (p.layer === undefined ? xs : xs.filter((x) => x.layer === p.layer)).slice(0, k);
    let byAttribution: NeuronsTopResult['byAttribution'] = null;
    if (target !== null) {
      const r = logitAttributionFromCache(cache, { target, vs, position, topNeurons: ranked });
      byAttribution = {
        position, target: tokenRef(model, target), vs: vs === null ? null : tokenRef(model, vs), total: logitOf(logits, target, vs),
        neurons: inLayer(r.components.filter((c) => c.kind === 'neuron').map((c) => ({ layer: c.layer!, neuron: c.neuron!, value: c.value, activation: c.activation! }))),
      };
    }
    return {
      tokens: tokens[0], strTokens: strTokens(model, tokens[0]), layer: p.layer ?? null,
      byActivation: inLayer(topNeuronsByActivation(cache, ranked)),
      byAttribution,
    };
  },
  /** Rows: `by` activation or attribution, the rank, the neuron, its value (attribution; activation for 'activation'), its activation, the position. */
  table: (r) => {
    const rows: Cell[][] = r.byActivation.map((n, i) => ['activation', i, n.layer, n.neuron, num(n.activation), num(n.activation), n.position]);
    r.byAttribution?.neurons.forEach((n, i) => rows.push(['attribution', i, n.layer, n.neuron, num(n.value), num(n.activation), r.byAttribution!.position]));
    return { columns: ['by', 'rank', 'layer', 'neuron', 'value', 'activation', 'position'], rows };
  },
});
