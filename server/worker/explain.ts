/**
 * Job handlers of the explanation endpoints: direct logit attribution for any prompt and target, the information-flow
 * graph, and neurons (a prompt's top neurons, one neuron's activations, its corpus examples, its output tokens, patching
 * it). One section per feature; each estimates its memory before running and checks for cancellation between steps.
 */
import {
  cachedNeuronExamples, dlaHookNames, informationFlowFromCache, informationFlowHookNames, logitAttributionFromCache, neuronActivations,
  neuronExampleWindows, neuronOutputTokens, topNeuronsByActivation, withModel, type NeuronExamples,
} from '../../hooks/analysis/index.ts';
import type { HookedTransformer } from '../../hooks/HookedTransformer.ts';
import { blockHook } from '../../hooks/hookPoints.ts';
import { patchFrom } from '../../hooks/interventions.ts';
import type { Tensor } from '../../hooks/tensor.ts';
import type {
  AttributionRequest, AttributionResult, GraphRequest, GraphResult, NeuronActivationsRequest, NeuronActivationsResult, NeuronExamplesRequest,
  NeuronExamplesResult, NeuronOutputRequest, NeuronOutputResult, NeuronPatchRequest, NeuronPatchResult, NeuronsTopRequest, NeuronsTopResult,
} from '../explainSchemas.ts';
import { buildMetric, checkIndex, preparePrompt, resolvePos, strOf, strTokens, tokenId, userCall } from '../../services/common/requests.ts';
import { checkAnswerBytes, checkMemory, dlaFloatsPerToken, engineBytesPerToken, F32, rowsPerStep, type MemoryPart } from '../../services/common/budget.ts';
import { UserError, type JobContext, type JobHandler } from '../../services/context.ts';
import { range } from '../../services/common/select.ts';

const tokenRef = (model: HookedTransformer, token: number) => ({ token, str: strOf(model, token) });

/** One prompt's cache of the direct-attribution hook points and logits at one position: what it holds at once. */
function attributionMemory(model: HookedTransformer, pos: number): MemoryPart[] {
  return [
    { what: `cached activations for attribution, ${pos} tokens × ${dlaFloatsPerToken(model)} floats`, bytes: pos * dlaFloatsPerToken(model) * F32 },
    { what: `onnxruntime working memory for ${pos} tokens`, bytes: pos * engineBytesPerToken(model.cfg, pos) },
    { what: `logits 1 × ${model.cfg.d_vocab} floats`, bytes: model.cfg.d_vocab * F32 },
  ];
}

/** The run attribution reads: dlaHookNames cached, logits at `position` only ([1, 1, d_vocab]). */
async function attributionRun(model: HookedTransformer, tokens: number[][], position: number) {
  const [logits, raw] = await model.runWithCache(tokens, { namesFilter: dlaHookNames(model.cfg), logitPositions: [[position]] });
  return { logits, cache: withModel(raw, model) };
}

/** logit(target) − logit(vs) from logits [1, 1, d_vocab]. */
const logitOf = (logits: Tensor, target: number, vs: number | null) => logits.data[target] - (vs === null ? 0 : logits.data[vs]);

// ───────────────────────────── POST /api/attribution ─────────────────────────────

export const attribution: JobHandler<AttributionRequest, AttributionResult> = async (model, p, ctx) => {
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
};

// ───────────────────────────── POST /api/graph ─────────────────────────────

export const graph: JobHandler<GraphRequest, GraphResult> = async (model, p, ctx) => {
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
};

// ───────────────────────────── POST /api/neurons/top ─────────────────────────────

export const neuronsTop: JobHandler<NeuronsTopRequest, NeuronsTopResult> = async (model, p, ctx) => {
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
};

function checkNeuron(model: HookedTransformer, layer: number, neuron: number): void {
  checkIndex('layer', layer, model.cfg.n_layers, 'n_layers');
  checkIndex('neuron', neuron, model.cfg.d_mlp, 'd_mlp');
}

// ───────────────────────────── POST /api/neurons/activations ─────────────────────────────

export const neuronActivationsJob: JobHandler<NeuronActivationsRequest, NeuronActivationsResult> = async (model, p, ctx) => {
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
    activations: Array.from(neuronActivations(withModel(raw, model), p.layer, p.neuron)),
  };
};

// ───────────────────────────── POST /api/neurons/examples ─────────────────────────────

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

export const neuronExamples: JobHandler<NeuronExamplesRequest, NeuronExamplesResult> = async (model, p, ctx) => {
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
};

// ───────────────────────────── POST /api/neurons/output ─────────────────────────────

export const neuronOutput: JobHandler<NeuronOutputRequest, NeuronOutputResult> = async (model, p, ctx) => {
  checkNeuron(model, p.layer, p.neuron);
  ctx.checkCancelled();
  const r = neuronOutputTokens(model, p.layer, p.neuron, Math.min(p.k, model.cfg.d_vocab));
  const named = (xs: { token: number; value: number }[]) => xs.map((x) => ({ ...x, str: strOf(model, x.token) }));
  return { layer: p.layer, neuron: p.neuron, top: named(r.top), bottom: named(r.bottom) };
};

// ───────────────────────────── POST /api/neurons/patch ─────────────────────────────

export const neuronPatch: JobHandler<NeuronPatchRequest, NeuronPatchResult> = async (model, p, ctx) => {
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
};
