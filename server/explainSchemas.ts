/**
 * Request and response schemas of the explanation endpoints (zod; bodies are parsed with them and the OpenAPI document
 * is generated from them): direct logit attribution for any prompt and target (/api/attribution), the information-flow
 * graph (/api/graph), and neurons (/api/neurons/*). One section per feature.
 */
import { z } from 'zod';
import type { Limits } from '../services/limits.ts';
import { JsonNumber } from '../services/common/nonFinite.ts';
import { AblationMetric, InputOptions, MetricEcho, PromptTokens, singlePrompt, TokenSpec } from '../services/common/schema.ts';

const Index = z.number().int();
const TokenIdOut = z.number().int();
const TokenRef = z.object({ token: TokenIdOut, str: z.string().nullable() });
const Position = Index.optional().describe('the position read (negative counts from the end; default -1, the last)');
const Layer = z.number().int().min(0).describe('a layer (0 ≤ layer < n_layers)');
const NeuronIndex = z.number().int().min(0).describe('a neuron of the layer (0 ≤ neuron < d_mlp)');

// ───────────────────────────── POST /api/attribution ─────────────────────────────

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

// ───────────────────────────── POST /api/graph ─────────────────────────────

export function graphSchema() {
  return z.strictObject({
    prompt: singlePrompt(),
    prependBos: InputOptions.prependBos,
    position: Position.describe('the predicting position (negative counts from the end; default -1)'),
    threshold: z.number().min(0.005).max(0.99).default(0.04).describe('edges kept weigh more than this (0.005..0.99; default 0.04, as the LLM Transparency Tool)'),
  });
}
export type GraphRequest = z.infer<ReturnType<typeof graphSchema>>;

export const FlowNodeSchema = z.object({
  id: z.string().describe('X0_{t} embedding, A{l}_{t} after attention, M{l}_{t} MLP, I{l}_{t} after the layer, H{l}.{h}_{t} a head writing into t'),
  kind: z.enum(['embed', 'head', 'resid_mid', 'mlp', 'resid_post']),
  position: z.number().int(),
  layer: z.number().int().optional(),
  head: z.number().int().optional(),
});

export const FlowEdgeSchema = z.object({
  from: z.string(),
  to: z.string(),
  kind: z.enum(['residual', 'attention', 'head', 'mlp']),
  weight: JsonNumber.describe("the share of the target representation it accounts for (proximity importance, normalised over the target's parts)"),
});

export const GraphResponse = z.object({
  ...PromptTokens,
  position: z.number().int(),
  threshold: z.number(),
  output: z.string().describe("the prediction's node, I{n_layers-1}_{position}"),
  prediction: z.array(z.object({ token: TokenIdOut, str: z.string().nullable(), prob: JsonNumber })).describe('the most probable next tokens at the position'),
  nodes: z.array(FlowNodeSchema),
  edges: z.array(FlowEdgeSchema),
});
export type GraphResult = z.infer<typeof GraphResponse>;

// ───────────────────────────── POST /api/neurons/top ─────────────────────────────

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

// ───────────────────────────── POST /api/neurons/activations ─────────────────────────────

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

// ───────────────────────────── POST /api/neurons/examples ─────────────────────────────

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

// ───────────────────────────── POST /api/neurons/output ─────────────────────────────

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

// ───────────────────────────── POST /api/neurons/patch ─────────────────────────────

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
