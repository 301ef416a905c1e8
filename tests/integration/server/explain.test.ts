/**
 * The explanation endpoints (/api/attribution, /api/graph, /api/neurons/*) on the tiny checkpoint against independent
 * computations: the attribution's components against the library and their sum against the model's own logit
 * difference (1e-3); the graph's edges against the routes computed from the reference forward (tests/helpers/
 * flowReference.ts, 1e-5); neurons against the model run directly (activations, output tokens, a patched run by a
 * JavaScript hook, corpus examples re-run); their CSV forms; 4xx answers naming the field; the memory budget.
 */
import { existsSync, readdirSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { logitAttribution, neuronOutputTokens, topNeuronsByActivation, withModel } from '../../../hooks/analysis/index.ts';
import { HookedTransformer } from '../../../hooks/HookedTransformer.ts';
import { blockHook } from '../../../hooks/hookPoints.ts';
import { Tensor } from '../../../hooks/tensor.ts';
import { AttributionResponse } from '../../../services/explain/attribution.ts';
import { GraphResponse } from '../../../services/explain/graph.ts';
import { NeuronActivationsResponse } from '../../../services/explain/neuronActivations.ts';
import { NeuronExamplesResponse } from '../../../services/explain/neuronExamples.ts';
import { NeuronOutputResponse } from '../../../services/explain/neuronOutput.ts';
import { NeuronPatchResponse } from '../../../services/explain/neuronPatch.ts';
import { NeuronsTopResponse } from '../../../services/explain/neuronsTop.ts';
import { pruneReference, referenceFlowEdges } from '../../helpers/flowReference.ts';
import { expect400, maxAbsDiff, post, readSse, startServer, writeTinyModel, type TestServer, postCsv } from './helpers.ts';

let srv: TestServer;
let ref: HookedTransformer;
const api = (p: string) => `${srv.url}${p}`;
const IOI = 'When Mary and John went to the store, John gave a drink to';
const CORRUPT = 'When Paul and Lisa went to the store, Lisa gave a drink to';

beforeAll(async () => {
  srv = await startServer();
  ref = await HookedTransformer.fromPretrained(join(srv.packageRoot, 'tiny'), { threads: 1 });
});

afterAll(async () => {
  await srv?.close();
  await ref?.dispose();
});

const csv = (path: string, body: unknown) => postCsv(api(path), body);

/** The model's logits at one position of one prompt, [d_vocab]. */
async function logitsAt(tokens: number[], position: number): Promise<Float32Array> {
  const logits = await ref.forward([tokens]); // [1, pos, d_vocab]
  const V = ref.cfg.d_vocab;
  return logits.data.slice(position * V, (position + 1) * V);
}

describe('POST /api/attribution', () => {
  it("components equal the library's decomposition; the terms add up to total, the model's logit difference (1e-3); CSV", async () => {
    const body = { prompt: IOI, target: ' Mary', vs: ' John', topNeurons: 5 };
    const r = await post(api('/api/attribution'), body);
    expect(r.status, JSON.stringify(r.body)).toBe(200);
    AttributionResponse.parse(r.body);
    const tokens = ref.toTokens(IOI)[0];
    expect(r.body.tokens).toEqual(tokens);
    expect(r.body.strTokens).toEqual(ref.toStrTokens(IOI));
    expect(r.body.position).toBe(tokens.length - 1);
    expect(r.body.target).toEqual({ token: ref.toSingleToken(' Mary'), str: ' Mary' });
    expect(r.body.vs).toEqual({ token: ref.toSingleToken(' John'), str: ' John' });
    const lib = await logitAttribution(ref, IOI, { target: ' Mary', vs: ' John', topNeurons: 5 });
    expect(r.body.components.map((c: { label: string }) => c.label)).toEqual(lib.components.map((c) => c.label));
    expect(maxAbsDiff(r.body.components.map((c: { value: number }) => c.value), lib.components.map((c) => c.value))).toBeLessThan(1e-4);
    const { n_layers, n_heads } = ref.cfg;
    const terms = r.body.components.filter((c: { kind: string }) => c.kind !== 'neuron');
    expect(terms).toHaveLength(2 + n_layers * n_heads + n_layers + 2); // embeds, heads, MLPs, Σ b_O and b_U (LayerNorm folded)
    expect(r.body.components.filter((c: { kind: string }) => c.kind === 'neuron')).toHaveLength(5);
    const logits = await logitsAt(tokens, tokens.length - 1);
    const diff = logits[ref.toSingleToken(' Mary')] - logits[ref.toSingleToken(' John')];
    expect(Math.abs(r.body.total - diff)).toBeLessThan(1e-3);
    expect(Math.abs(terms.reduce((a: number, c: { value: number }) => a + c.value, 0) - r.body.total)).toBeLessThan(1e-3);

    const rows = await csv('/api/attribution', body);
    expect(rows[0]).toEqual(['label', 'kind', 'layer', 'head', 'neuron', 'value', 'activation', 'in_total']);
    expect(rows).toHaveLength(1 + r.body.components.length + 1);
    expect(rows[1].slice(0, 2)).toEqual(['embed', 'embed']);
    expect(rows.at(-1)!.slice(0, 2)).toEqual(['total', 'total']);
    expect(Number(rows.at(-1)![5])).toBeCloseTo(r.body.total, 4);
    const inTotal = rows.slice(1, -1).filter((row) => row[7] === 'true').reduce((a, row) => a + Number(row[5]), 0);
    expect(Math.abs(inTotal - r.body.total)).toBeLessThan(1e-3);
  });

  it('a single target and another position read logit(target) there; token ids work', async () => {
    const tokens = ref.toTokens(IOI)[0];
    const r = await post(api('/api/attribution'), { prompt: tokens, target: 42, position: 5, topNeurons: 0 });
    expect(r.status, JSON.stringify(r.body)).toBe(200);
    expect(r.body.position).toBe(5);
    expect(r.body.vs).toBeNull();
    expect(r.body.components.some((c: { kind: string }) => c.kind === 'neuron')).toBe(false);
    const logits = await logitsAt(tokens, 5);
    expect(Math.abs(r.body.total - logits[42])).toBeLessThan(1e-3);
    expect(Math.abs(r.body.components.reduce((a: number, c: { value: number }) => a + c.value, 0) - logits[42])).toBeLessThan(1e-3);
  });

  it('4xx answers name the field', async () => {
    expect400(await post(api('/api/attribution'), { prompt: IOI, target: 'Mary and' }), 'target');
    expect400(await post(api('/api/attribution'), { prompt: IOI }), 'target');
    expect400(await post(api('/api/attribution'), { prompt: IOI, target: ' Mary', position: 99 }), 'position', 'out of range');
    expect400(await post(api('/api/attribution'), { prompt: IOI, target: 60000 }), 'target', 'd_vocab');
    expect400(await post(api('/api/attribution'), { prompt: IOI, target: ' Mary', topNeurons: 1000 }), 'topNeurons');
  });
});

describe('POST /api/graph', () => {
  it('edges equal the routes computed independently from the reference forward (1e-5), pruned top-down; a higher threshold prunes edges', async () => {
    const tokens = ref.toTokens(IOI)[0];
    const all = referenceFlowEdges(ref.cfg, ref.rawWeights, tokens);
    const output = `I${ref.cfg.n_layers - 1}_${tokens.length - 1}`;
    let previous = Infinity;
    for (const threshold of [0.01, 0.04, 0.15]) {
      const r = await post(api('/api/graph'), { prompt: IOI, threshold });
      expect(r.status, JSON.stringify(r.body)).toBe(200);
      GraphResponse.parse(r.body);
      expect(r.body.output).toBe(output);
      expect(r.body.threshold).toBe(threshold);
      const expected = pruneReference(all, output, threshold);
      const got = new Map<string, number>(r.body.edges.map((e: { from: string; to: string; weight: number }) => [`${e.from}->${e.to}`, e.weight]));
      expect([...got.keys()].sort()).toEqual([...expected.keys()].sort());
      for (const [k, w] of expected) expect(Math.abs(got.get(k)! - w), k).toBeLessThan(1e-5);
      expect(new Set(r.body.nodes.map((n: { id: string }) => n.id))).toEqual(new Set([output, ...r.body.edges.flatMap((e: { from: string; to: string }) => [e.from, e.to])]));
      expect(got.size).toBeLessThan(previous);
      previous = got.size;
    }
    const r = await post(api('/api/graph'), { prompt: IOI });
    const logits = await logitsAt(tokens, tokens.length - 1);
    const best = logits.indexOf(Math.max(...logits));
    expect(r.body.prediction[0].token).toBe(best);
    expect(r.body.prediction).toHaveLength(5);
  });

  it('SSE reports one progress event per layer; the CSV has one row per edge with both ends', async () => {
    const res = await fetch(api('/api/graph?stream=1'), { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ prompt: IOI, position: 4 }) });
    const events = await readSse(res);
    const progress = events.filter((e) => e.event === 'progress').map((e) => e.data.done);
    expect(progress.at(-1)).toBe(ref.cfg.n_layers);
    const result = events.find((e) => e.event === 'result')!.data;
    expect(result.output).toBe(`I${ref.cfg.n_layers - 1}_4`);
    const rows = await csv('/api/graph', { prompt: IOI, position: 4 });
    expect(rows[0]).toEqual(['from', 'to', 'kind', 'weight', 'from_kind', 'from_layer', 'from_position', 'from_head', 'to_kind', 'to_layer', 'to_position', 'to_head']);
    expect(rows.slice(1).map((row) => `${row[0]}->${row[1]}`).sort()).toEqual(result.edges.map((e: { from: string; to: string }) => `${e.from}->${e.to}`).sort());
    const head = rows.find((row) => row[4] === 'head')!;
    expect(head[0]).toBe(`H${head[5]}.${head[7]}_${head[6]}`);
  });

  it('4xx answers name the field', async () => {
    expect400(await post(api('/api/graph'), { prompt: IOI, threshold: 0 }), 'threshold');
    expect400(await post(api('/api/graph'), { prompt: IOI, threshold: 1 }), 'threshold');
    expect400(await post(api('/api/graph'), { prompt: IOI, position: -99 }), 'position');
    expect400(await post(api('/api/graph'), { prompt: '' }), 'prompt');
  });
});

describe('POST /api/neurons/*', () => {
  it('top: by activation equals topNeuronsByActivation; by attribution equals the library\'s top neurons; vs without target is a 400', async () => {
    const r = await post(api('/api/neurons/top'), { prompt: IOI, k: 6, target: ' Mary', vs: ' John' });
    expect(r.status, JSON.stringify(r.body)).toBe(200);
    NeuronsTopResponse.parse(r.body);
    const tokens = ref.toTokens(IOI);
    const names = Array.from({ length: ref.cfg.n_layers }, (_v, l) => blockHook(l, 'mlp.hook_post'));
    const [, raw] = await ref.runWithCache(tokens, { namesFilter: names, returnType: 'none' });
    const lib = topNeuronsByActivation(withModel(raw, ref), 6);
    expect(r.body.byActivation.map((n: { layer: number; neuron: number; position: number }) => [n.layer, n.neuron, n.position])).toEqual(lib.map((n) => [n.layer, n.neuron, n.position]));
    expect(maxAbsDiff(r.body.byActivation.map((n: { activation: number }) => n.activation), lib.map((n) => n.activation))).toBeLessThan(1e-5);
    const dla = await logitAttribution(ref, IOI, { target: ' Mary', vs: ' John', topNeurons: 6 });
    const neurons = dla.components.filter((c) => c.kind === 'neuron');
    expect(r.body.byAttribution.neurons.map((n: { layer: number; neuron: number }) => `L${n.layer}N${n.neuron}`)).toEqual(neurons.map((c) => c.label));
    expect(maxAbsDiff(r.body.byAttribution.neurons.map((n: { value: number }) => n.value), neurons.map((c) => c.value))).toBeLessThan(1e-4);
    expect(Math.abs(r.body.byAttribution.total - dla.total)).toBeLessThan(1e-3);
    const noTarget = await post(api('/api/neurons/top'), { prompt: IOI, k: 3 });
    expect(noTarget.body.byAttribution).toBeNull();
    const rows = await csv('/api/neurons/top', { prompt: IOI, k: 6, target: ' Mary' });
    expect(rows[0]).toEqual(['by', 'rank', 'layer', 'neuron', 'value', 'activation', 'position']);
    expect(rows.slice(1).map((row) => row[0])).toEqual([...Array(6).fill('activation'), ...Array(6).fill('attribution')]);
    expect400(await post(api('/api/neurons/top'), { prompt: IOI, vs: ' John' }), 'vs', 'target');
    // One layer (an MLP's neurons): the same rankings restricted to it.
    const one = await post(api('/api/neurons/top'), { prompt: IOI, k: 4, target: ' Mary', layer: 1 });
    expect(one.status, JSON.stringify(one.body)).toBe(200);
    expect(one.body.layer).toBe(1);
    const all = topNeuronsByActivation(withModel(raw, ref), ref.cfg.n_layers * ref.cfg.d_mlp).filter((n) => n.layer === 1).slice(0, 4);
    expect(one.body.byActivation.map((n: { neuron: number }) => n.neuron)).toEqual(all.map((n) => n.neuron));
    const dla1 = await logitAttribution(ref, IOI, { target: ' Mary', topNeurons: ref.cfg.n_layers * ref.cfg.d_mlp });
    const want1 = dla1.components.filter((c) => c.kind === 'neuron' && c.layer === 1).slice(0, 4);
    expect(one.body.byAttribution.neurons.map((n: { neuron: number }) => n.neuron)).toEqual(want1.map((c) => c.neuron));
    expect(maxAbsDiff(one.body.byAttribution.neurons.map((n: { value: number }) => n.value), want1.map((c) => c.value))).toBeLessThan(1e-4);
    expect400(await post(api('/api/neurons/top'), { prompt: IOI, layer: 2 }), 'layer', 'n_layers = 2');
  });

  it("activations equal mlp.hook_post of the neuron; output tokens equal W_out[n] · W_U; 4xx name layer and neuron", async () => {
    const r = await post(api('/api/neurons/activations'), { prompt: IOI, layer: 1, neuron: 7 });
    expect(r.status, JSON.stringify(r.body)).toBe(200);
    NeuronActivationsResponse.parse(r.body);
    const [, cache] = await ref.runWithCache(IOI, { namesFilter: [blockHook(1, 'mlp.hook_post')], returnType: 'none' });
    const post1 = cache.get(blockHook(1, 'mlp.hook_post')); // [1, pos, d_mlp]
    const want = Array.from({ length: post1.shape[1] }, (_v, p) => post1.data[p * ref.cfg.d_mlp + 7]);
    expect(maxAbsDiff(r.body.activations, want)).toBeLessThan(1e-5);
    const rows = await csv('/api/neurons/activations', { prompt: IOI, layer: 1, neuron: 7 });
    expect(rows).toHaveLength(1 + want.length);
    expect(rows[2][4]).toBe(ref.toStrTokens(IOI)[1]);

    const o = await post(api('/api/neurons/output'), { layer: 0, neuron: 3, k: 4 });
    expect(o.status, JSON.stringify(o.body)).toBe(200);
    NeuronOutputResponse.parse(o.body);
    // Independent: W_out[0][3, :] · W_U over the whole vocabulary, sorted.
    const W_out = ref.W_out; // [n_layers, d_mlp, d_model]
    const W_U = ref.W_U; // [d_model, d_vocab]
    const { d_model, d_mlp, d_vocab } = ref.cfg;
    const scores = new Float64Array(d_vocab);
    for (let d = 0; d < d_model; d++) {
      const w = W_out.data[(0 * d_mlp + 3) * d_model + d];
      for (let t = 0; t < d_vocab; t++) scores[t] += w * W_U.data[d * d_vocab + t];
    }
    const order = Array.from(scores.keys()).sort((a, b) => scores[b] - scores[a]);
    expect(o.body.top.map((t: { token: number }) => t.token)).toEqual(order.slice(0, 4));
    expect(o.body.bottom.map((t: { token: number }) => t.token)).toEqual(order.slice(-4).reverse());
    expect(maxAbsDiff(o.body.top.map((t: { value: number }) => t.value), order.slice(0, 4).map((t) => scores[t]))).toBeLessThan(1e-4);
    expect(o.body.top[0].str).toBe(ref.toString([o.body.top[0].token]));
    const lib = neuronOutputTokens(ref, 0, 3, 4);
    expect(o.body.top.map((t: { token: number }) => t.token)).toEqual(lib.top.map((t) => t.token));

    expect400(await post(api('/api/neurons/activations'), { prompt: IOI, layer: 2, neuron: 0 }), 'layer', 'n_layers = 2');
    expect400(await post(api('/api/neurons/output'), { layer: 0, neuron: 64 }), 'neuron', 'd_mlp = 64');
    expect400(await post(api('/api/neurons/output'), { layer: 0, neuron: -1 }), 'neuron');
  });

  it("patch: the metric equals a run with the neuron replaced by a JavaScript hook (1e-4); unequal lengths are a 400", async () => {
    const body = { prompt: IOI, source: CORRUPT, layer: 0, neuron: 11, positions: [2, -1], metric: { kind: 'logit_diff', correct: ' Mary', incorrect: ' John' } };
    const r = await post(api('/api/neurons/patch'), body);
    expect(r.status, JSON.stringify(r.body)).toBe(200);
    NeuronPatchResponse.parse(r.body);
    const tokens = ref.toTokens(IOI);
    const n = tokens[0].length;
    expect(r.body.positions).toEqual([2, n - 1]);
    const hook = blockHook(0, 'mlp.hook_post');
    const [, src] = await ref.runWithCache(CORRUPT, { namesFilter: [hook], returnType: 'none' });
    const source = src.get(hook); // [1, pos, d_mlp]
    const d_mlp = ref.cfg.d_mlp;
    const replace = (t: Tensor) => {
      const data = t.data.slice();
      for (const p of [2, n - 1]) data[p * d_mlp + 11] = source.data[p * d_mlp + 11];
      return new Tensor(data, t.shape);
    };
    const mary = ref.toSingleToken(' Mary');
    const john = ref.toSingleToken(' John');
    const V = ref.cfg.d_vocab;
    const metric = (l: Tensor) => l.data[(n - 1) * V + mary] - l.data[(n - 1) * V + john]; // logits [1, pos, d_vocab]
    const patched = await ref.runWithHooks(tokens, { fwdHooks: [[hook, replace]] });
    const clean = await ref.forward(tokens);
    expect(Math.abs(r.body.patched - metric(patched))).toBeLessThan(1e-4);
    expect(Math.abs(r.body.clean - metric(clean))).toBeLessThan(1e-4);
    expect(r.body.delta).toBeCloseTo(r.body.patched - r.body.clean, 5);
    expect(r.body.activations.source[2]).toBeCloseTo(source.data[2 * d_mlp + 11], 5);
    expect(r.body.metric.label).toContain('Mary');
    const rows = await csv('/api/neurons/patch', body);
    expect(rows[1].slice(0, 3)).toEqual(['0', '11', `2 ${n - 1}`]);
    expect400(await post(api('/api/neurons/patch'), { ...body, source: 'A shorter prompt' }), 'source', 'same token length');
    expect400(await post(api('/api/neurons/patch'), { ...body, positions: [n] }), 'positions[0]');
  });

  it('examples: harvested once over the held-out corpus and cached on disk; each window\'s activations equal the model run on it', async () => {
    const body = { layer: 1, neuron: 5, k: 3, before: 64, after: 64 };
    const first = await post(api('/api/neurons/examples'), body);
    expect(first.status, JSON.stringify(first.body)).toBe(200);
    NeuronExamplesResponse.parse(first.body);
    expect(first.body.fromCache).toBe(false);
    expect(first.body.corpus.name).toBe('tinyshakespeare.txt');
    expect(first.body.corpus.contextSize).toBe(64);
    const files = readdirSync(join(srv.tmp, 'cache', 'neuron-examples'), { recursive: true }) as string[];
    expect(files.some((f) => f.endsWith('.bin'))).toBe(true);
    const second = await post(api('/api/neurons/examples'), { ...body, neuron: 6 });
    expect(second.body.fromCache).toBe(true);
    const ex = first.body.examples;
    expect(ex).toHaveLength(3);
    for (let i = 1; i < ex.length; i++) expect(ex[i].value).toBeLessThanOrEqual(ex[i - 1].value);
    for (const e of ex) {
      // The whole context (before and after ≥ its length): run it and read the neuron.
      expect(e.start).toBe(0);
      expect(e.tokens).toHaveLength(64);
      const [, cache] = await ref.runWithCache([e.tokens], { namesFilter: [blockHook(1, 'mlp.hook_post')], returnType: 'none' });
      const acts = Array.from({ length: 64 }, (_v, p) => cache.get(blockHook(1, 'mlp.hook_post')).data[p * ref.cfg.d_mlp + 5]);
      expect(maxAbsDiff(e.activations, acts)).toBeLessThan(1e-4);
      expect(Math.abs(e.value - Math.max(...acts.slice(1)))).toBeLessThan(1e-4);
      expect(e.strTokens).toEqual(ref.toStrTokens(e.tokens));
    }
    expect(first.body.density).toBeGreaterThanOrEqual(0);
    expect(first.body.density).toBeLessThanOrEqual(1);
    const rows = await csv('/api/neurons/examples', { layer: 1, neuron: 5, k: 2, before: 2, after: 1 });
    expect(rows[0]).toEqual(['layer', 'neuron', 'rank', 'context', 'position', 'token', 'str', 'activation', 'is_max']);
    expect(rows.slice(1).filter((row) => row[8] === 'true')).toHaveLength(2);
    expect400(await post(api('/api/neurons/examples'), { layer: 1, neuron: 5, k: 21 }), 'k');
    expect(existsSync(join(srv.tmp, 'cache'))).toBe(true);
  });
});

describe('the memory budget', () => {
  let long: TestServer;
  let root: string;
  beforeAll(async () => {
    // A tiny model with a long context: the graph of 2,048 tokens holds every layer's attention patterns.
    root = await mkdtemp(join(tmpdir(), 'lensboard-explain-'));
    await writeTinyModel(join(root, 'long'), 3, { n_ctx: 2048 });
    long = await startServer({ model: 'long', limits: { maxJobMemoryBytes: 128 * 2 ** 20 } }, { packageRoot: root });
  });
  afterAll(async () => {
    await long?.close();
    await rm(root, { recursive: true, force: true });
  });

  it('a short prompt fits; 2,048 tokens are refused with a 400 stating the estimate and the budget', async () => {
    const ok = await post(`${long.url}/api/graph`, { prompt: 'When Mary and John' });
    expect(ok.status, JSON.stringify(ok.body)).toBe(200);
    const tokens = Array.from({ length: 2047 }, (_v, i) => 100 + (i % 500));
    const r = await post(`${long.url}/api/graph`, { prompt: tokens });
    expect400(r, 'this request needs an estimated', 'cached residual streams, values and patterns', 'per-job memory budget is 128.0 MiB', 'use a shorter prompt');
    const health = await post(`${long.url}/api/attribution`, { prompt: 'When Mary and John', target: ' Mary' });
    expect(health.status).toBe(200);
  });
});
