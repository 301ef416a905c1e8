/** Figures of the explanation endpoints from hand-made answers: attribution bars and grid, the flow graph and its pruning, neurons. */
import { describe, expect, it } from 'vitest';
import {
  attributionBarsFigure, attributionHeadsFigure, flowGraphFigure, graphNodeRef, graphTokensFigure, graphTokenShares, neuronExamplesFigure, neuronOutputFigure, neuronTextFigure, topNeuronsFigure,
  type AttributionData, type GraphData,
} from '../../../hooks/figures/index.ts';

const attribution: AttributionData = {
  tokens: [50256, 10, 11], strTokens: ['<|endoftext|>', 'A', ' B'], position: 2,
  target: { token: 5, str: ' C' }, vs: { token: 6, str: ' D' }, total: 1.5, scale: 2,
  components: [
    { label: 'embed', kind: 'embed', value: 0.5 }, { label: 'pos_embed', kind: 'pos_embed', value: -0.1 },
    { label: 'L0H0', kind: 'head', layer: 0, head: 0, value: 2 }, { label: 'L0H1', kind: 'head', layer: 0, head: 1, value: -1 },
    { label: '0_mlp_out', kind: 'mlp', layer: 0, value: 0.25 }, { label: 'bias', kind: 'bias', value: -0.05 }, { label: 'b_U', kind: 'bias', value: -0.1 },
    { label: 'L0N7', kind: 'neuron', layer: 0, neuron: 7, value: 0.2, activation: 1.1 },
  ],
};

describe('attribution figures', () => {
  it('bars: the largest terms by |value|, the rest summed, the total last (at the bottom); neurons only in the table', () => {
    const f = attributionBarsFigure(attribution, 3);
    const t = f.data[0] as any;
    expect([...t.y].reverse()).toEqual(['L0H0', 'L0H1', 'embed', 'other 4', 'total']);
    expect([...t.x].reverse()).toEqual([2, -1, 0.5, expect.closeTo(0, 12), 1.5]);
    expect((f.layout.title as any).text.replace(/<br>/g, ' ')).toContain('logit(" C") − logit(" D") at 2: " B": total 1.500 (ln_final scale 2.000)');
    expect(f.table.rows).toHaveLength(9);
    expect(f.table.rows.at(-2)).toEqual(['L0N7', 'neuron', 0, null, 7, 0.2, 1.1, false]);
    expect(f.table.rows.at(-1)).toEqual(['total', 'total', null, null, null, 1.5, null, false]);
  });
  it('heads grid: [layer][head] of the head components', () => {
    const t = attributionHeadsFigure(attribution).data[0] as any;
    expect(t.z).toEqual([[2, -1]]);
  });
});

describe('flowGraphFigure', () => {
  const g: GraphData = {
    tokens: [1, 2], strTokens: ['a', 'b'], position: 1, threshold: 0.01, output: 'I0_1',
    prediction: [{ token: 3, str: ' c', prob: 0.5 }],
    nodes: [
      { id: 'I0_1', kind: 'resid_post', layer: 0, position: 1 }, { id: 'A0_1', kind: 'resid_mid', layer: 0, position: 1 },
      { id: 'M0_1', kind: 'mlp', layer: 0, position: 1 }, { id: 'H0.1_1', kind: 'head', layer: 0, head: 1, position: 1 },
      { id: 'X0_0', kind: 'embed', position: 0 }, { id: 'X0_1', kind: 'embed', position: 1 },
    ],
    edges: [
      { from: 'A0_1', to: 'I0_1', kind: 'residual', weight: 0.7 }, { from: 'M0_1', to: 'I0_1', kind: 'mlp', weight: 0.3 },
      { from: 'A0_1', to: 'M0_1', kind: 'mlp', weight: 0.3 }, { from: 'X0_1', to: 'A0_1', kind: 'residual', weight: 0.6 },
      { from: 'H0.1_1', to: 'A0_1', kind: 'head', weight: 0.05 }, { from: 'X0_0', to: 'H0.1_1', kind: 'attention', weight: 0.05 },
    ],
  };
  const edges = (f: ReturnType<typeof flowGraphFigure>) => f.data.filter((t: any) => t.mode === 'lines').reduce((a, t: any) => a + t.x.filter((v: unknown) => v === null).length, 0);
  const nodes = (f: ReturnType<typeof flowGraphFigure>) => f.data.filter((t: any) => t.mode === 'markers').flatMap((t: any) => t.customdata);
  it('draws every edge once and every node once at its threshold; a higher threshold prunes what no longer reaches the output', () => {
    const all = flowGraphFigure(g, 0.01, { nLayers: 1, nHeads: 2 });
    expect(edges(all)).toBe(6);
    expect(nodes(all).sort()).toEqual(g.nodes.map((n) => n.id).sort());
    expect(all.table.rows).toHaveLength(6);
    const pruned = flowGraphFigure(g, 0.1, { nLayers: 1, nHeads: 2 });
    expect(edges(pruned)).toBe(4);
    expect(nodes(pruned).sort()).toEqual(['A0_1', 'I0_1', 'M0_1', 'X0_1']);
    expect((pruned.layout.title as any).text.replace(/<br>/g, ' ')).toContain('edges above 0.1 (4 edges, 4 nodes); the model predicts " c" (p 0.500)');
    expect(() => flowGraphFigure(g, 0.005, { nLayers: 1, nHeads: 2 })).toThrow(/holds the edges above 0.01/);
  });
  it('token shares: the output holds 1, passed down the kept incoming edges in proportion (hand-computed); they sum to 1', () => {
    // I ← A 0.7, M 0.3; M ← A (all of it): A holds 1; A ← X0_1 0.6, H 0.05 (of 0.65); H ← X0_0 (all of it).
    const flow = (x: GraphData) => ({ ...x, edges: x.edges.map((e) => ({ ...e, weight: Number(e.weight) })) });
    const { shares, unresolved } = graphTokenShares(flow(g), 2, 2);
    expect(unresolved).toBe(0);
    expect(shares[0]).toBeCloseTo(0.05 / 0.65, 12);
    expect(shares[1]).toBeCloseTo(0.6 / 0.65, 12);
    const f = graphTokensFigure(g, 0.1, { nHeads: 2 });
    expect(f.values).toEqual([0, 1]); // the head's route is pruned
    expect(f.title).toBe('Share of the prediction at 1: "b" that reaches each token through the routes above 0.1');
    // A node whose own routes are all pruned keeps its share: unresolved.
    const cut = { ...g, edges: g.edges.filter((e) => e.from !== 'X0_1') };
    const r = graphTokenShares(flow(cut), 2, 2);
    expect(r.shares[0]).toBeCloseTo(1, 12); // A now reads only from the head, which reads X0_0
    const cut2 = { ...g, edges: g.edges.filter((e) => e.from !== 'X0_0') };
    const r2 = graphTokenShares(flow(cut2), 2, 2);
    expect(r2.shares[1]).toBeCloseTo(0.6 / 0.65, 12);
    expect(r2.unresolved).toBeCloseTo(0.05 / 0.65, 12);
    expect(graphTokensFigure(cut2 as typeof g, 0.01, { nHeads: 2 }).title).toMatch(/; 7\.7 % stops at representations whose own routes are below it$/);
  });
  it('node ids say what a click opens', () => {
    expect(graphNodeRef('H3.11_7')).toEqual({ kind: 'head', layer: 3, head: 11, position: 7 });
    expect(graphNodeRef('M2_0')).toEqual({ kind: 'mlp', layer: 2, position: 0 });
    expect(graphNodeRef('A2_0')).toBeNull();
  });
});

describe('neuron figures', () => {
  it('top neurons as bars, largest at the top, with "layer.neuron" to open; none by attribution without a target', () => {
    const r = {
      tokens: [1, 2], strTokens: ['a', 'b'], layer: null,
      byActivation: [{ layer: 1, neuron: 4, activation: 3, position: 1 }, { layer: 0, neuron: 2, activation: 1, position: 1 }],
      byAttribution: null,
    };
    const t = topNeuronsFigure(r, 'activation')!.data[0] as any;
    expect([...t.y].reverse()).toEqual(['L1N4', 'L0N2']);
    expect([...t.customdata].reverse()).toEqual(['1.4', '0.2']);
    expect(topNeuronsFigure(r, 'attribution')).toBeNull();
  });
  it('activation text, examples one per line with the best maximum marked, output tokens top then bottom', () => {
    const text = neuronTextFigure({ tokens: [1, 2], strTokens: ['a', 'b'], layer: 0, neuron: 3, activations: [-0.1, 2] });
    expect(text.values).toEqual([-0.1, 2]);
    expect(text.max).toBe(2);
    const ex = neuronExamplesFigure({
      layer: 0, neuron: 3, density: 0.25, corpus: { name: 'c.txt', split: 'last 10 %', tokens: 100, contexts: 3, contextSize: 8 },
      examples: [
        { context: 2, position: 5, value: 3, start: 4, tokens: [1, 2], strTokens: ['x', 'y'], activations: [1, 3] },
        { context: 0, position: 1, value: 1, start: 1, tokens: [3], strTokens: ['z'], activations: [1] },
      ],
    });
    expect(ex.tokens).toEqual(['#1 · 3.00 │ ', 'x', 'y', '\n', '#2 · 1.00 │ ', 'z', '\n']);
    expect(ex.values).toEqual([null, 1, 3, null, null, 1, null]);
    expect(ex.marked).toBe(2);
    expect(ex.title).toMatch(/active \(> 0\) on 25\.00 % of tokens/);
    expect(ex.table.rows.filter((r) => r[7] === true)).toHaveLength(2);
    const out = neuronOutputFigure({ layer: 0, neuron: 3, top: [{ token: 1, str: 'a', value: 2 }], bottom: [{ token: 2, str: 'b', value: -3 }, { token: 3, str: 'c', value: -1 }] });
    const o = out.data[0] as any;
    expect(o.x).toEqual([2, -1, -3]); // top first, then the bottom from least to most negative: the most negative at the bottom
    expect((out.layout.yaxis as any).ticktext).toEqual(['"a"', '"c"', '"b"']);
  });
});
