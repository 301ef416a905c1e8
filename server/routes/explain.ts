/**
 * POST /api/attribution, /api/graph and /api/neurons/*: explaining any prompt's prediction (direct logit attribution,
 * the information-flow graph) and its neurons, as model jobs (JSON, CSV, SSE). One section per feature: its table and
 * its route.
 */
import type { Limits } from '../../services/limits.ts';
import type { Cell, Table } from '../csv.ts';
import {
  AttributionResponse, attributionSchema, GraphResponse, graphSchema, NeuronActivationsResponse, neuronActivationsSchema,
  NeuronExamplesResponse, neuronExamplesSchema, NeuronOutputResponse, neuronOutputSchema, NeuronPatchResponse, neuronPatchSchema,
  NeuronsTopResponse, neuronsTopSchema, type AttributionResult, type GraphResult, type NeuronActivationsResult, type NeuronExamplesResult,
  type NeuronOutputResult, type NeuronPatchResult, type NeuronsTopResult,
} from '../explainSchemas.ts';
import { runJob } from '../jobRoute.ts';
import { defineRoute, type RouteContext, type RouteDef } from '../routeTable.ts';
import type { JobKind, JobPayload, JobResult } from '../worker/jobs.ts';

type N = number | string; // JsonNumber as typed by zod
const num = (v: N | undefined): number | null => (v === undefined ? null : (v as number));

function job<K extends JobKind>(ctx: RouteContext<unknown>, kind: K, table: (r: JobResult<K>) => Table): Promise<void> {
  return runJob(ctx, kind, ctx.body as JobPayload<K>, table);
}

// ───────────────────────────── POST /api/attribution ─────────────────────────────

/** Rows: one per component; `in_total` says whether it is a term of the total (neurons refine their MLP layer). */
export function attributionTable(r: AttributionResult): Table {
  const rows: Cell[][] = r.components.map((c) => [
    c.label, c.kind, c.layer ?? null, c.head ?? null, c.neuron ?? null, num(c.value), num(c.activation), c.kind !== 'neuron',
  ]);
  rows.push(['total', 'total', null, null, null, num(r.total), null, false]);
  return { columns: ['label', 'kind', 'layer', 'head', 'neuron', 'value', 'activation', 'in_total'], rows };
}

// ───────────────────────────── POST /api/graph ─────────────────────────────

/** Rows: one per edge, with the kind, layer, position and head of both ends (empty where a node has none). */
export function graphTable(r: GraphResult): Table {
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
}

// ───────────────────────────── POST /api/neurons/* ─────────────────────────────

/** Rows: `by` activation or attribution, the rank, the neuron, its value (attribution; activation for 'activation'), its activation, the position. */
export function neuronsTopTable(r: NeuronsTopResult): Table {
  const rows: Cell[][] = r.byActivation.map((n, i) => ['activation', i, n.layer, n.neuron, num(n.activation), num(n.activation), n.position]);
  r.byAttribution?.neurons.forEach((n, i) => rows.push(['attribution', i, n.layer, n.neuron, num(n.value), num(n.activation), r.byAttribution!.position]));
  return { columns: ['by', 'rank', 'layer', 'neuron', 'value', 'activation', 'position'], rows };
}

export function neuronActivationsTable(r: NeuronActivationsResult): Table {
  return {
    columns: ['layer', 'neuron', 'position', 'token', 'str', 'activation'],
    rows: r.activations.map((a, p) => [r.layer, r.neuron, p, r.tokens[p], r.strTokens?.[p] ?? null, num(a)]),
  };
}

/** Rows: one per token of each example's window; `is_max` marks the example's maximum. */
export function neuronExamplesTable(r: NeuronExamplesResult): Table {
  const rows: Cell[][] = [];
  r.examples.forEach((e, rank) => e.tokens.forEach((t, i) => rows.push([
    r.layer, r.neuron, rank, e.context, e.start + i, t, e.strTokens?.[i] ?? null, num(e.activations[i]), e.start + i === e.position,
  ])));
  return { columns: ['layer', 'neuron', 'rank', 'context', 'position', 'token', 'str', 'activation', 'is_max'], rows };
}

export function neuronOutputTable(r: NeuronOutputResult): Table {
  const rows: Cell[][] = [];
  r.top.forEach((t, i) => rows.push([r.layer, r.neuron, 'top', i, t.token, t.str, num(t.value)]));
  r.bottom.forEach((t, i) => rows.push([r.layer, r.neuron, 'bottom', i, t.token, t.str, num(t.value)]));
  return { columns: ['layer', 'neuron', 'end', 'rank', 'token', 'str', 'value'], rows };
}

export function neuronPatchTable(r: NeuronPatchResult): Table {
  return {
    columns: ['layer', 'neuron', 'positions', 'metric', 'clean', 'patched', 'delta'],
    rows: [[r.layer, r.neuron, r.positions.join(' '), r.metric.label, num(r.clean), num(r.patched), num(r.delta)]],
  };
}

export function explainRoutes(limits: Limits): RouteDef[] {
  const f: ('json' | 'csv' | 'sse')[] = ['json', 'csv', 'sse'];
  return [
    defineRoute({
      method: 'post', path: '/api/attribution', formats: f,
      summary: 'Direct logit attribution of any prompt and target: embeddings, every head, every MLP layer, the biases and the top neurons',
      description: "TransformerLens's get_full_resid_decomposition(expand_neurons=False) through logit_attrs with the run's ln_final scale, plus b_U (and ln_final's bias when not folded): the components other than neurons add up to `total`, the model's logit(target) (− logit(vs)).",
      body: attributionSchema(limits), response: AttributionResponse,
      handler: (ctx) => job(ctx, 'attribution', attributionTable),
    }),
    defineRoute({
      method: 'post', path: '/api/graph', formats: f,
      summary: 'Information-flow routes (Ferrando & Voita 2024): the graph of representations, heads and MLPs a prediction is built from, pruned by a threshold',
      description: 'Edge importance is the proximity of a part to the sum it is part of, max(0, ‖sum‖₁ − ‖sum − part‖₁), normalised over the parts; traced top-down from the prediction (one progress event per layer).',
      body: graphSchema(), response: GraphResponse,
      handler: (ctx) => job(ctx, 'graph', graphTable),
    }),
    defineRoute({
      method: 'post', path: '/api/neurons/top', formats: f,
      summary: "A prompt's top neurons by activation (any position but BOS) and, with a target, by direct logit attribution at a position",
      body: neuronsTopSchema(limits), response: NeuronsTopResponse,
      handler: (ctx) => job(ctx, 'neuronsTop', neuronsTopTable),
    }),
    defineRoute({
      method: 'post', path: '/api/neurons/activations', formats: f,
      summary: "One neuron's activation (mlp.hook_post) at every token of a prompt",
      body: neuronActivationsSchema(), response: NeuronActivationsResponse,
      handler: (ctx) => job(ctx, 'neuronActivations', neuronActivationsTable),
    }),
    defineRoute({
      method: 'post', path: '/api/neurons/examples', formats: f,
      summary: "One neuron's top activating examples over the held-out Tiny Shakespeare (harvested for every neuron once per model, kept in --cache-dir)",
      description: 'The first request for a model harvests every neuron over the corpus (progress per batch of contexts; cancellable) and writes it to the cache folder; later ones read it.',
      body: neuronExamplesSchema(), response: NeuronExamplesResponse,
      handler: (ctx) => job(ctx, 'neuronExamples', neuronExamplesTable),
    }),
    defineRoute({
      method: 'post', path: '/api/neurons/output', formats: f,
      summary: "The tokens a neuron's output weights raise and lower most: W_out[n] · W_U",
      body: neuronOutputSchema(limits), response: NeuronOutputResponse,
      handler: (ctx) => job(ctx, 'neuronOutput', neuronOutputTable),
    }),
    defineRoute({
      method: 'post', path: '/api/neurons/patch', formats: f,
      summary: "A run with one neuron's activation patched in from another prompt (all or some positions): the metric before and after",
      body: neuronPatchSchema(), response: NeuronPatchResponse,
      handler: (ctx) => job(ctx, 'neuronPatch', neuronPatchTable),
    }),
  ];
}
