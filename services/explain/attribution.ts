/** POST /api/attribution: direct logit attribution of any prompt and target to embeddings, heads, MLP layers, biases and top neurons. */
import { z } from 'zod';
import { logitAttributionFromCache } from '../../hooks/analysis/index.ts';
import type { Cell } from '../../hooks/figures/types.ts';
import { checkMemory } from '../common/budget.ts';
import { num, numOrNull, JsonNumber } from '../common/nonFinite.ts';
import { preparePrompt, resolvePos, strTokens, tokenId } from '../common/requests.ts';
import { InputOptions, PromptTokens, singlePrompt, TokenSpec } from '../common/schema.ts';
import type { Limits } from '../limits.ts';
import { defineService } from '../service.ts';
import { attributionMemory, attributionRun, logitOf, Position, tokenRef, TokenRef } from './common.ts';

export function attributionSchema(limits: Limits) {
  return z.strictObject({
    prompt: singlePrompt(),
    prependBos: InputOptions.prependBos,
    target: TokenSpec.describe('the token whose logit is explained'),
    vs: TokenSpec.optional().describe('explain logit(target) − logit(vs) instead'),
    position: Position,
    topNeurons: z.number().int().min(0).max(limits.maxTopK).default(10).describe(`neurons listed, by |value| (0..${limits.maxTopK}, default 10)`),
  });
}
export type AttributionRequest = z.infer<ReturnType<typeof attributionSchema>>;

export const AttributionComponentSchema = z.object({
  label: z.string().describe('embed, pos_embed, L9H6, 3_mlp_out, bias (Σ b_O), b_U, ln_final.b (unfolded LayerNorm only), L3N2047'),
  kind: z.enum(['embed', 'pos_embed', 'head', 'mlp', 'bias', 'neuron']),
  layer: z.number().int().optional(),
  head: z.number().int().optional(),
  neuron: z.number().int().optional(),
  value: JsonNumber.describe('its direct contribution to logit(target) (− logit(vs))'),
  activation: JsonNumber.optional().describe("a neuron's activation (mlp.hook_post) at the position"),
});

export const AttributionResponse = z.object({
  ...PromptTokens,
  position: z.number().int().describe('the position read (resolved)'),
  target: TokenRef,
  vs: TokenRef.nullable(),
  total: JsonNumber.describe("the model's logit(target) (− logit(vs)) at the position: the components other than neurons add up to it"),
  scale: JsonNumber.describe('ln_final.hook_scale at the position (every component is divided by it)'),
  components: z.array(AttributionComponentSchema).describe('embed, pos_embed, every head, every MLP layer, the biases, then the top neurons (which refine their MLP layer and are not counted again)'),
});
export type AttributionResult = z.infer<typeof AttributionResponse>;

export const attribution = defineService({
  kind: 'attribution',
  route: {
    path: '/api/attribution',
    summary: 'Direct logit attribution of any prompt and target: embeddings, every head, every MLP layer, the biases and the top neurons',
    description: "TransformerLens's get_full_resid_decomposition(expand_neurons=False) through logit_attrs with the run's ln_final scale, plus b_U (and ln_final's bias when not folded): the components other than neurons add up to `total`, the model's logit(target) (− logit(vs)).",
  },
  request: attributionSchema,
  response: AttributionResponse,
  handler: async (model, p, ctx): Promise<AttributionResult> => {
    const { tokens } = preparePrompt(model, p.prompt, p);
    const pos = tokens[0].length;
    const position = resolvePos('position', p.position ?? -1, pos);
    const target = tokenId(model, 'target', p.target);
    const vs = p.vs === undefined ? null : tokenId(model, 'vs', p.vs);
    checkMemory(ctx, attributionMemory(model, pos), 'use a shorter prompt');
    ctx.checkCancelled();
    const { logits, cache } = await attributionRun(model, tokens, position);
    ctx.checkCancelled();
    const r = logitAttributionFromCache(cache, { target, vs, position, topNeurons: p.topNeurons });
    return {
      tokens: tokens[0], strTokens: strTokens(model, tokens[0]), position,
      target: tokenRef(model, target), vs: vs === null ? null : tokenRef(model, vs),
      total: logitOf(logits, target, vs), scale: r.scale, components: r.components,
    };
  },
  /** Rows: one per component; `in_total` says whether it is a term of the total (neurons refine their MLP layer). */
  table: (r) => {
    const rows: Cell[][] = r.components.map((c) => [
      c.label, c.kind, c.layer ?? null, c.head ?? null, c.neuron ?? null, num(c.value), numOrNull(c.activation), c.kind !== 'neuron',
    ]);
    rows.push(['total', 'total', null, null, null, num(r.total), null, false]);
    return { columns: ['label', 'kind', 'layer', 'head', 'neuron', 'value', 'activation', 'in_total'], rows };
  },
});
