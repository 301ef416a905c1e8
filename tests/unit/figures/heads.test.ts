/** Layers × heads figures (ablation sweep, head scores, IOI attribution, patching) and copying / composition / positional figures from hand-made answers. */
import { describe, expect, it } from 'vitest';
import {
  ablationResultFigure, ablationSweepFigure, compositionFigure, copyingFigure, headGridFigure, headScoreFigure, inductionCeiling, ioiAttributionFigure,
  ioiLogitDiffFigure, lossByPositionFigure, patchingFigure, positionalFigure, rankHeads, topCopiedFigure, type HeadsDetectData,
} from '../../../hooks/figures/index.ts';

describe('headGridFigure and rankHeads', () => {
  const g = { layers: [0, 1], heads: [0, 1, 2], values: [[0.5, -2, 1], [0, 'NaN', 1.5]] as (number | string)[][] };
  it('diverging: symmetric range around 0 from the largest |value|; non-finite cells are gaps', () => {
    const f = headGridFigure(g, { title: 't', valueName: 'delta', scale: 'diverging', name: 'n', selected: [{ layer: 1, head: 2 }] });
    const t = f.data[0] as any;
    expect(t.z).toEqual([[0.5, -2, 1], [0, null, 1.5]]);
    expect([t.zmin, t.zmid, t.zmax]).toEqual([-2, 0, 2]);
    expect(t.x).toEqual([0, 1, 2]);
    expect(t.y).toEqual([0, 1]);
    expect(t.colorbar.title.text).toBe('delta');
    expect(t.customdata[1][2]).toBe('L1H2');
    expect((f.layout.yaxis as any).range).toEqual([1.5, -0.5]);
    expect((f.layout.shapes as any[])[0]).toMatchObject({ x0: 1.5, x1: 2.5, y0: 0.5, y1: 1.5 });
    expect(f.table.rows).toEqual([[0, 0, 0.5], [0, 1, -2], [0, 2, 1], [1, 0, 0], [1, 1, null], [1, 2, 1.5]]);
  });
  it('ranks heads by value, non-finite last', () => {
    expect(rankHeads(g).map((h) => h.label)).toEqual(['L1H2', 'L0H2', 'L0H0', 'L1H0', 'L0H1', 'L1H1']);
    expect(rankHeads(g, 2).map((h) => h.value)).toEqual([1.5, 1]);
  });
});

describe('ablation figures', () => {
  const sweep = {
    metric: { kind: 'logit_diff' as const, label: 'logit( Mary) − logit( John) @ pos 14' },
    layers: [0, 1], heads: [0, 1], clean: 2, values: [[1, 2.5], [2, 0]], delta: [[-1, 0.5], [0, -2]],
  };
  it('sweep: delta per head, ablated values in the table', () => {
    const f = ablationSweepFigure(sweep, { mode: 'mean' });
    expect((f.data[0] as any).z).toEqual([[-1, 0.5], [0, -2]]);
    expect(f.table.columns).toEqual(['layer', 'head', 'delta', 'ablated']);
    expect(f.table.rows[3]).toEqual([1, 1, -2, 0]);
    expect((f.layout.title as any).text).toContain('mean-ablated');
    expect((f.layout.title as any).text).toContain('clean 2.000');
  });
  it('one run: clean vs ablated bars', () => {
    const f = ablationResultFigure({ metric: sweep.metric, clean: 2, ablated: 0.5, delta: -1.5 }, 'L0H0, L1H1');
    expect((f.data[0] as any).x).toEqual([2, 0.5]);
    expect((f.layout.title as any).text).toContain('Δ -1.500');
    expect(f.table.rows).toEqual([['clean', sweep.metric.label, 2], ['ablated', sweep.metric.label, 0.5]]);
  });
});

describe('induction figures', () => {
  const r: HeadsDetectData = {
    layers: [0, 1], heads: [0, 1],
    scores: [{ kind: 'induction', values: [[0, 0.1], [0.9, 0.2]] }, { kind: 'previous_token', values: [[0.8, 0], [0, 0]] }],
    lossByPosition: { loss: [5, 6, 7, 1, 2, 3], firstRepeat: 6, secondRepeat: 2 },
  };
  it('score heatmaps on a fixed 0..1 scale', () => {
    const t = headScoreFigure(r, 'induction').data[0] as any;
    expect(t.z).toEqual([[0, 0.1], [0.9, 0.2]]);
    expect([t.zmin, t.zmax]).toEqual([0, 1]);
    expect(() => headScoreFigure(r, 'duplicate_token')).toThrow(/no duplicate_token scores/);
  });
  it('titles say what was scored; the induction colour bar gives the ceiling seqLen / (2 seqLen + 1)', () => {
    // 2 sequences of BOS + 3 + 3 tokens
    const withTokens = { ...r, tokens: [[0, 1, 2, 3, 1, 2, 3], [0, 4, 5, 6, 4, 5, 6]] };
    expect(inductionCeiling(3)).toBeCloseTo(3 / 7, 12);
    const ind = headScoreFigure(withTokens, 'induction');
    expect((ind.layout.title as any).text).toBe('Induction score, 2 × [BOS + 3 + 3 random]');
    expect((ind.data[0] as any).colorbar.title.text).toBe('score (ceiling 0.43)');
    expect(ind.table.columns).toEqual(['layer', 'head', 'score']);
    expect((headScoreFigure(withTokens, 'previous_token').data[0] as any).colorbar.title.text).toBe('score');
  });
  it('loss by position splits the first and second copy of the span', () => {
    const f = lossByPositionFigure(r);
    expect((f.data[0] as any).y).toEqual([5, 6, 7, null, null, null]);
    expect((f.data[1] as any).y).toEqual([null, null, null, 1, 2, 3]);
    expect((f.data[0] as any).x).toEqual([1, 2, 3, 4, 5, 6]);
    expect((f.data[3] as any).y).toEqual([2, 2]);
    expect(f.table.rows[3]).toEqual([4, 'second', 1]);
  });
});

describe('IOI and patching figures', () => {
  const ioi = {
    prompts: [{ text: 'A <b>', io: 'Mary', s: 'John', logitDiff: 1.5 }, { text: 'B', io: 'John', s: 'Mary', logitDiff: -0.5 }],
    meanLogitDiff: 0.5, accuracy: 0.5, layers: [0], heads: [0, 1], headAttribution: [[0.25, -1]],
  };
  it('one bar per prompt coloured by sign; escaped hover', () => {
    const f = ioiLogitDiffFigure(ioi);
    const t = f.data[0] as any;
    expect(t.y).toEqual([1.5, -0.5]);
    expect(t.marker.color).toEqual(['#2166ac', '#b2182b']);
    expect(t.customdata[0]).toContain('A &lt;b&gt;');
    expect((f.layout.title as any).text).toContain('accuracy 50%');
  });
  it('attribution heatmap is diverging', () => {
    const t = ioiAttributionFigure(ioi).data[0] as any;
    expect([t.zmin, t.zmax]).toEqual([-1, 1]);
  });
  it('patching: [layer][pos] and [layer][pos][head] grids', () => {
    const p = {
      cleanTokens: [1, 2], cleanStrTokens: ['a', 'b'], metric: { label: 'ld' }, clean: 3, corrupted: -1,
      results: [
        { kind: 'resid_pre', dims: ['layer', 'pos'] as ('layer' | 'pos' | 'head')[], values: [[1, 0.5], [0, 1]] },
        { kind: 'head_out_by_pos', dims: ['layer', 'pos', 'head'] as ('layer' | 'pos' | 'head')[], values: [[[0.1, 0.2], [0.3, 0.4]]] },
      ],
    };
    const a = patchingFigure(p, 0);
    expect((a.data[0] as any).z).toEqual([[1, 0.5], [0, 1]]);
    expect((a.layout.xaxis as any).ticktext).toEqual(['0: a', '1: b']);
    const b = patchingFigure(p, 1);
    expect((b.data[0] as any).z).toEqual([[0.1, 0.3], [0.2, 0.4]]);
    expect((b.layout.yaxis as any).ticktext).toEqual(['L0H0', 'L0H1']);
    expect(b.table.rows).toHaveLength(4);
    expect(() => patchingFigure(p, 2)).toThrow(/result 2/);
  });
});

describe('circuits figures', () => {
  it('composition: earlier head rows × later head columns, only l1 < l2, hover L{l}H{h} → L{l\'}H{h\'}', () => {
    const s = (v: number) => [[v, v + 1], [v + 2, v + 3]];
    const r = {
      mode: 'K' as const, layers: [0, 1], heads: [0, 1], baseline: { mean: 0.1, std: 0.01, samples: 10 },
      scores: [[[s(0), s(0)], [s(0), s(0)]], [[s(0), s(0)], [s(0), s(0)]]].map((l1, a) => l1.map((h1, b) => h1.map((_l2, c) => [0.1 * (a * 8 + b * 4 + c * 2), 0.1 * (a * 8 + b * 4 + c * 2 + 1)]))),
    };
    const raw = compositionFigure(r, { scale: 'score' });
    const t = raw.data[0] as any;
    expect(t.z[0]).toEqual([null, null, 0.1 * 2, 0.1 * 3]); // L0H0 → L1H0, L1H1
    expect(t.z[1][2]).toBeCloseTo(0.1 * 6, 12);
    expect(t.z[2]).toEqual([null, null, null, null]);
    expect(t.customdata[0][3]).toBe('L0H0 → L1H1<br>K-composition 0.3000');
    expect(t.customdata[2][0]).toBe('L1H0 → L0H0');
    expect(t.colorbar.title.text).toBe('K-composition');
    expect((raw.layout.title as any).text).toContain('baseline 0.100 ± 0.010');
    // default: z-scores against the baseline, (score − 0.1) / 0.01, on a diverging scale centred on the baseline
    const f = compositionFigure(r);
    const zt = f.data[0] as any;
    expect(zt.z[0][2]).toBeCloseTo((0.2 - 0.1) / 0.01, 9);
    expect(zt.z[1][3]).toBeCloseTo((0.7 - 0.1) / 0.01, 9);
    expect(zt.zmid).toBe(0);
    expect(zt.zmax).toBeCloseTo(60, 9);
    expect(zt.zmin).toBeCloseTo(-60, 9);
    expect(zt.colorbar.title.text).toBe('K-composition, z vs random');
    expect(zt.customdata[0][3]).toBe('L0H0 → L1H1<br>K-composition 0.3000<br>z = 20.0 vs the random baseline');
    expect((f.layout.title as any).text.replace(/<br>/g, ' ')).toBe('K-composition scores as z-scores against random matrices (random baseline 0.100 ± 0.010, 10 pairs)');
    expect(f.table.columns).toEqual(['mode', 'layer_from', 'head_from', 'layer_to', 'head_to', 'score', 'z_vs_baseline']);
    expect(f.table.rows).toHaveLength(4);
    expect(f.table.rows[0][5]).toBeCloseTo(0.2, 12);
    expect(f.table.rows[0][6]).toBeCloseTo(10, 9);
    // a baseline without spread cannot give z-scores: the raw score is drawn
    expect((compositionFigure({ ...r, baseline: { mean: 0.1, std: 0, samples: 1 } }).data[0] as any).z).toEqual(t.z);
    const past = compositionFigure({ ...r, pastMlp0: true });
    expect((past.layout.title as any).text).toContain("layer-0 heads read past block 0's");
    expect(past.name).toBe('composition-K-past-mlp0');
    expect((past.data[0] as any).z).toEqual(zt.z);
  });
  it('copying scores: one bar per head', () => {
    const f = copyingFigure({ layers: [0, 1], heads: [0, 1], scores: [[0.9, -0.2], [0.1, 'NaN']] });
    const t = f.data[0] as any;
    expect(t.y).toEqual([0.9, -0.2, 0.1, null]);
    expect(t.customdata).toEqual(['L0H0', 'L0H1', 'L1H0', 'L1H1']);
    expect((f.layout.xaxis as any).ticktext).toEqual(['L0H0', 'L0H1', 'L1H0', 'L1H1']);
    expect(t.marker.colorbar.title.text).toBe('copying score');
    expect((f.layout.shapes as any[])[0]).toMatchObject({ y0: 0.7, y1: 0.7 });
    expect((f.layout.annotations as any[])[0]).toMatchObject({ text: '0.7: mostly copying', y: 0.7 });
    const past = copyingFigure({ layers: [0], heads: [0], scores: [[0.5]], pastMlp0: true, tokens: 512 });
    expect((past.layout.title as any).text).toMatch(/past block 0's(<br>| )MLP.*512 tokens/);
    expect(past.name).toBe('copying-scores-past-mlp0');
  });
  it('positional QK pattern masks the future', () => {
    const f = positionalFigure({ layer: 1, head: 0, nPos: 2, pattern: [[1, 0], [0.7, 0.3]], previousTokenScore: 0.7 });
    expect((f.data[0] as any).z).toEqual([[1, null], [0.7, 0.3]]);
    expect(f.table.rows).toHaveLength(3);
  });
  it('top copied tokens: one row per source token, escaped', () => {
    const f = topCopiedFigure({ layer: 0, head: 1, rows: [{ token: 5, str: ' <a', top: [{ token: 6, str: ' x', value: 2 }, { token: 7, str: null, value: 1 }] }] });
    const t = f.data[0] as any;
    expect(t.header.values).toEqual(['source token', '#1', '#2']);
    expect(t.cells.values).toEqual([[' &lt;a'], [' x (2.00)'], ['7 (1.00)']]);
    expect(f.table.rows).toEqual([[0, 1, 5, ' <a', 1, 6, ' x', 2], [0, 1, 5, ' <a', 2, 7, null, 1]]);
  });
});
