/** POST /api/graph: the information-flow routes of a prediction (Ferrando & Voita 2024), pruned by a threshold. */
import { z } from 'zod';
import { informationFlowFromCache, informationFlowHookNames, withModel } from '../../hooks/analysis/index.ts';
import type { Cell } from '../../hooks/figures/types.ts';
import { checkAnswerBytes, checkMemory, engineBytesPerToken, F32 } from '../common/budget.ts';
import { JsonNumber, num } from '../common/nonFinite.ts';
import { preparePrompt, resolvePos, strOf, strTokens } from '../common/requests.ts';
import { InputOptions, PromptTokens, singlePrompt, TokenIdOut } from '../common/schema.ts';
import { defineService } from '../service.ts';
import { Position } from './common.ts';

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

export const graph = defineService({
  kind: 'graph',
  route: {
    path: '/api/graph',
    summary: 'Information-flow routes (Ferrando & Voita 2024): the graph of representations, heads and MLPs a prediction is built from, pruned by a threshold',
    description: 'Edge importance is the proximity of a part to the sum it is part of, max(0, ‖sum‖₁ − ‖sum − part‖₁), normalised over the parts; traced top-down from the prediction (one progress event per layer).',
  },
  request: graphSchema,
  response: GraphResponse,
  handler: async (model, p, ctx): Promise<GraphResult> => {
    const { n_layers, n_heads, d_head, d_model, d_vocab } = model.cfg;
    const { tokens } = preparePrompt(model, p.prompt, p);
    const pos = tokens[0].length;
    const position = resolvePos('position', p.position ?? -1, pos);
    checkMemory(ctx, [
      { what: `cached residual streams, values and patterns of ${n_layers} layers (${pos} tokens)`, bytes: n_layers * pos * (4 * d_model + n_heads * d_head + n_heads * pos) * F32 },
      { what: `one layer's head outputs per source token, ${pos} × ${n_heads} × ${d_model} floats`, bytes: pos * n_heads * d_model * F32 },
      { what: `onnxruntime working memory for ${pos} tokens`, bytes: pos * engineBytesPerToken(model.cfg, pos) },
      { what: `logits 1 × ${d_vocab} floats`, bytes: d_vocab * F32 },
    ], 'use a shorter prompt');
    ctx.checkCancelled();
    const [logits, raw] = await model.runWithCache(tokens, { namesFilter: informationFlowHookNames(model.cfg), logitPositions: [[position]] });
    const g = informationFlowFromCache(withModel(raw, model), {
      position, threshold: p.threshold,
      onLayer: (done, total) => {
        ctx.progress(done, total, 'layers');
        ctx.checkCancelled();
      },
    });
    // Nodes ≈ 90 bytes of JSON, edges ≈ 80.
    checkAnswerBytes(ctx, g.nodes.length * 90 + g.edges.length * 80, `${g.nodes.length} nodes and ${g.edges.length} edges`, 'raise the threshold or use a shorter prompt');
    const top = logits.index(0, 0).index(0, 0).softmax(-1).topk(Math.min(5, d_vocab)); // logits [1, 1, d_vocab]
    return {
      tokens: tokens[0], strTokens: strTokens(model, tokens[0]), position, threshold: g.threshold, output: g.output,
      prediction: Array.from(top.indices.data, (token, i) => ({ token, str: strOf(model, token), prob: top.values.data[i] })),
      nodes: g.nodes, edges: g.edges,
    };
  },
  /** Rows: one per edge, with the kind, layer, position and head of both ends (empty where a node has none). */
  table: (r) => {
    const byId = new Map(r.nodes.map((n) => [n.id, n]));
    const ends = (id: string) => {
      const n = byId.get(id)!;
      return [n.kind, n.layer ?? null, n.position, n.head ?? null];
    };
    const rows: Cell[][] = r.edges.map((e) => [e.from, e.to, e.kind, num(e.weight), ...ends(e.from), ...ends(e.to)]);
    return {
      columns: ['from', 'to', 'kind', 'weight', 'from_kind', 'from_layer', 'from_position', 'from_head', 'to_kind', 'to_layer', 'to_position', 'to_head'],
      rows,
    };
  },
});
