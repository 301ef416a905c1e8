/**
 * Information-flow routes against an independent computation: every edge weight of every layer and position computed
 * from the reference forward's activations and the raw weights (the whole graph, as the LLM Transparency Tool builds
 * it, with heads kept apart), then pruned top-down by a plain depth-first search. The library computes only what is
 * reached; both must give the same nodes and edges (1e-5). Also: the weights into a node add up to at most 1 (exactly 1
 * at threshold 0), and pruning a graph at a higher threshold equals building it there.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pruneFlowGraph, type FlowGraph } from '../../../hooks/analysis/flowGraph.ts';
import { informationFlow } from '../../../hooks/analysis/informationFlow.ts';
import { HookedTransformer } from '../../../hooks/HookedTransformer.ts';
import { pruneReference, referenceFlowEdges } from '../../helpers/flowReference.ts';
import { cloneWeights, tinyConfig, tinyWeights, tokenBatch } from '../engine/helpers.ts';

const cfg = tinyConfig({ n_layers: 3, d_model: 16, n_heads: 4, d_vocab: 60 });
const [prompt] = tokenBatch(1, 10, cfg.d_vocab, 8);
let model: HookedTransformer;

beforeAll(async () => {
  model = await HookedTransformer.fromWeights(cfg, cloneWeights(tinyWeights(cfg, 12)), {
    threads: 1, foldLn: true, centerWritingWeights: true, centerUnembed: true, foldValueBiases: true,
  });
});
afterAll(async () => {
  await model?.dispose();
});

/** The independent computation (tests/helpers/flowReference.ts) on the model's own weights. */
const fullGraph = (tokens: number[]) => referenceFlowEdges(model.cfg, model.rawWeights, tokens);
const prune = pruneReference;

const edgeMap = (g: FlowGraph) => new Map(g.edges.map((e) => [`${e.from}->${e.to}`, e.weight]));

describe('informationFlow', () => {
  for (const [position, threshold] of [[-1, 0.04], [6, 0.02], [-1, 0]] as const) {
    it(`position ${position}, threshold ${threshold}: the same edges and weights as the independent computation (1e-5)`, async () => {
      const g = await informationFlow(model, [prompt], { position, threshold });
      const p = position < 0 ? prompt.length + position : position;
      expect(g.output).toBe(`I2_${p}`);
      const expected = prune(fullGraph(prompt), g.output, threshold);
      const got = edgeMap(g);
      expect([...got.keys()].sort()).toEqual([...expected.keys()].sort());
      for (const [k, w] of expected) expect(got.get(k), k).toBeCloseTo(w, 5);
      // Nodes: the output and every edge's ends, once each.
      const ids = new Set([g.output, ...g.edges.flatMap((e) => [e.from, e.to])]);
      expect(new Set(g.nodes.map((n) => n.id))).toEqual(ids);
      expect(g.nodes).toHaveLength(ids.size);
      expect(got.size).toBeGreaterThan(threshold === 0 ? 100 : 5);
    });
  }

  it('the parts of each representation share at most 1 (exactly 1 at threshold 0); kinds, layers and positions follow the ids', async () => {
    const g = await informationFlow(model, [prompt], { threshold: 0 });
    const into = new Map<string, number>();
    for (const e of g.edges) if (e.kind !== 'attention' && e.to[0] !== 'M') into.set(e.to, (into.get(e.to) ?? 0) + e.weight);
    for (const [id, s] of into) expect(s, id).toBeCloseTo(1, 5);
    const heads = new Map<string, number>();
    for (const e of g.edges) if (e.kind === 'attention') heads.set(e.to, (heads.get(e.to) ?? 0) + e.weight);
    for (const e of g.edges) if (e.kind === 'head') expect(heads.get(e.from) ?? 0, e.from).toBeCloseTo(e.weight, 5);
    for (const n of g.nodes) {
      if (n.kind === 'head') expect(n.id).toBe(`H${n.layer}.${n.head}_${n.position}`);
      if (n.kind === 'embed') expect(n.id).toBe(`X0_${n.position}`);
      if (n.kind === 'resid_post') expect(n.id).toBe(`I${n.layer}_${n.position}`);
    }
  });

  it('pruning a graph at a higher threshold equals building it there', async () => {
    const low = await informationFlow(model, [prompt], { threshold: 0.01 });
    for (const t of [0.01, 0.03, 0.08, 0.2, 0.5]) {
      const built = await informationFlow(model, [prompt], { threshold: t });
      const pruned = pruneFlowGraph(low, t);
      expect(edgeMap(pruned), `threshold ${t}`).toEqual(edgeMap(built));
      expect(new Set(pruned.nodes.map((n) => n.id))).toEqual(new Set(built.nodes.map((n) => n.id)));
    }
    expect(pruneFlowGraph(low, 0.5).edges.length).toBeLessThan(low.edges.length);
    expect(() => pruneFlowGraph(low, 0.005)).toThrow(/holds the edges above 0.01/);
  });

  it('refuses a threshold outside [0, 1) and a position outside the prompt', async () => {
    await expect(informationFlow(model, [prompt], { threshold: 1 })).rejects.toThrow(/threshold 1 must be in \[0, 1\)/);
    await expect(informationFlow(model, [prompt], { position: 10 })).rejects.toThrow(/position 10 is out of range/);
  });
});
