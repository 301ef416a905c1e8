/** Attention figure specs from a hand-made /api/attention answer: axes, masked upper triangle, grid traces, focus and lines. */
import { describe, expect, it } from 'vitest';
import {
  attentionFocus, attentionGridFigure, attentionHeadFigure, attentionLinesFigure, focusLineShapes, focusShapes, gridHeadAt, gridHeadOutline, headPattern, poolPattern,
  type AttentionData,
} from '../../../hooks/figures/index.ts';

// 2 layers × 2 heads over 3 tokens; row q is a causal distribution (the server sends 0 above the diagonal).
const P = (a: number, b: number): number[][] => [[1, 0, 0], [a, 1 - a, 0], [b, 0.5 - b, 0.5]];
const A: AttentionData = {
  tokens: [50256, 464, 3797],
  strTokens: ['<|endoftext|>', 'The', ' cat'],
  layers: [0, 1],
  heads: [0, 1],
  patterns: [[P(0.9, 0.1), P(0.2, 0.3)], [P(0.6, 0.25), P(0.05, 0.45)]],
};

describe('attentionHeadFigure', () => {
  const f = attentionHeadFigure(A, 1, 0);
  const t = f.data[0] as any;
  it('draws query rows × key columns with the future greyed (null)', () => {
    expect(t.type).toBe('heatmap');
    expect(t.z).toEqual([[1, null, null], [0.6, 0.4, null], [0.25, 0.25, 0.5]]);
    expect(t.zmin).toBe(0);
    expect(t.zmax).toBe(1);
    expect(t.colorbar.title.text).toBe('attention');
    expect(f.layout.plot_bgcolor).toBe('#d9d9d9');
  });
  it('labels both axes with escaped tokens and their positions, query 0 at the top', () => {
    const x = f.layout.xaxis as any;
    const y = f.layout.yaxis as any;
    expect(x.ticktext).toEqual(['0: &lt;|endoftext|&gt;', '1: The', '2:  cat']);
    expect(x.tickvals).toEqual([0, 1, 2]);
    expect(y.range).toEqual([2.5, -0.5]);
    expect(y.title.text).toMatch(/query/);
    expect(x.title.text).toMatch(/key/);
    expect((f.layout.title as any).text).toBe('Attention pattern L1H0');
  });
  it('exports the causal entries only', () => {
    expect(f.table.columns).toEqual(['layer', 'head', 'query_pos', 'key_pos', 'query_token', 'key_token', 'pattern']);
    expect(f.table.rows).toHaveLength(6);
    expect(f.table.rows[4]).toEqual([1, 0, 2, 1, ' cat', 'The', 0.25]);
  });
  it('outlines the focused token row and column', () => {
    const g = attentionHeadFigure(A, 1, 0, { focus: 1 });
    const shapes = g.layout.shapes as any[];
    expect(shapes).toHaveLength(2);
    expect(shapes[0]).toMatchObject({ x0: -0.5, x1: 1.5, y0: 0.5, y1: 1.5 });
    expect(shapes[1]).toMatchObject({ x0: 0.5, x1: 1.5, y0: 0.5, y1: 2.5 });
  });
  it('names a layer or head that was not returned', () => {
    expect(() => attentionHeadFigure(A, 2, 0)).toThrow(/layer 2 is not in the answer \(layers 0, 1\)/);
    expect(() => headPattern(A, 0, 5)).toThrow(/head 5/);
  });
});

describe('attentionGridFigure', () => {
  const f = attentionGridFigure(A, { selected: { layer: 1, head: 1 } });
  it('has one heatmap per head on its own axes, one shared colour scale', () => {
    expect(f.data).toHaveLength(4);
    expect(f.data.map((t: any) => t.xaxis)).toEqual(['x', 'x2', 'x3', 'x4']);
    expect(f.data.map((t: any) => t.showscale)).toEqual([true, false, false, false]);
    expect((f.data[0] as any).colorbar.title.text).toBe('attention');
    expect((f.data[2] as any).z).toEqual(headPattern(A, 1, 0));
    expect((f.layout.grid as any)).toMatchObject({ rows: 2, columns: 2 });
    expect((f.layout.annotations as any[]).map((a) => a.text)).toEqual(['L0H0', 'L0H1', 'L1H0', 'L1H1']);
  });
  it('labels only the top row of a wide grid (more than 8 heads a layer)', () => {
    const wide: AttentionData = { ...A, heads: Array.from({ length: 12 }, (_v, h) => h), patterns: A.patterns.map((l) => Array.from({ length: 12 }, (_v, h) => l[h % 2])) };
    const g = attentionGridFigure(wide);
    expect(g.data).toHaveLength(24);
    expect((g.layout.annotations as any[]).map((a) => a.text)).toEqual(Array.from({ length: 12 }, (_v, h) => `H${h}`));
    expect(gridHeadAt(wide, 13)).toEqual({ layer: 1, head: 1 });
  });
  it('maps traces back to heads and outlines the selected head', () => {
    expect(gridHeadAt(A, 3)).toEqual({ layer: 1, head: 1 });
    expect(gridHeadAt(A, 1)).toEqual({ layer: 0, head: 1 });
    const shapes = f.layout.shapes as any[];
    expect(shapes).toHaveLength(1);
    expect(shapes[0].xref).toBe('x4 domain');
    expect(f.table.rows).toHaveLength(4 * 6);
  });
});

describe('long prompts in the grid', () => {
  it('max-pools a pattern into blocks, null where a whole block is in the future', () => {
    const z = [[1, null, null, null, null], [0.5, 0.5, null, null, null], [0.1, 0.2, 0.7, null, null], [0.9, 0, 0, 0.1, null], [0.2, 0.2, 0.2, 0.2, 0.2]];
    expect(poolPattern(z, 2)).toEqual([[1, null, null], [0.9, 0.7, null], [0.2, 0.2, 0.2]]);
    expect(poolPattern(z, 1)).toEqual(z);
  });
  it('draws at most maxCells cells a side, names each block in the hover, keeps every weight in the table', () => {
    const n = 10;
    const pat = Array.from({ length: n }, (_r, q) => Array.from({ length: n }, (_c, k) => (k <= q ? 1 / (q + 1) : 0)));
    const long: AttentionData = { tokens: Array.from({ length: n }, (_v, i) => i), strTokens: null, layers: [0], heads: [0], patterns: [[pat]] };
    const g = attentionGridFigure(long, { maxCells: 4 });
    const t = g.data[0] as any;
    expect(t.z).toHaveLength(4); // blocks of 3: 0-2, 3-5, 6-8, 9
    expect(t.z[0][0]).toBe(1);
    expect(t.z[3][3]).toBeCloseTo(0.1, 12);
    expect(t.customdata[1][0]).toBe('query 3–5 (largest weight in the block)<br>key 0–2 (largest weight in the block)');
    expect((g.layout.title as any).text).toBe('All heads (3×3 positions a cell)');
    expect(g.table.rows).toHaveLength((n * (n + 1)) / 2);
  });
});

describe('what the dashboard draws over figures (never exported)', () => {
  it('the grid title carries no UI hint; the lock box is a separate shape', () => {
    const g = attentionGridFigure(A);
    expect((g.layout.title as any).text).not.toMatch(/hover|click/);
    expect(g.layout.shapes).toEqual([]);
    expect(gridHeadOutline(A, 1, 1)).toMatchObject({ xref: 'x4 domain', yref: 'y4 domain' });
    expect(gridHeadOutline(A, 5, 1)).toBeNull();
  });
  it('focus shapes are the focused row and column', () => {
    expect(focusShapes(3, 1)).toEqual(attentionHeadFigure(A, 1, 0, { focus: 1 }).layout.shapes);
    expect(focusShapes(3, null)).toEqual([]);
    expect(focusShapes(3, 3)).toEqual([]);
  });
});

describe('attentionFocus and attentionLinesFigure', () => {
  it('finds what a token attends to and what attends to it', () => {
    const p = headPattern(A, 1, 0); // [[1], [0.6, 0.4], [0.25, 0.25, 0.5]]
    const f = attentionFocus(p, 1, 2);
    expect(f.attendsTo).toEqual([[0, 0.6], [1, 0.4]]);
    expect(f.attendedBy).toEqual([[1, 0.4], [2, 0.25]]);
  });
  it('draws one line per weight ≥ minWeight, only the focused token\'s with focus', () => {
    const all = attentionLinesFigure(A, 1, 0, { minWeight: 0.3 });
    expect(all.table.rows).toEqual([[1, 0, 0, 0, 1], [1, 0, 1, 0, 0.6], [1, 0, 1, 1, 0.4], [1, 0, 2, 2, 0.5]]);
    const lineTraces = all.data.filter((t: any) => t.mode === 'lines');
    const segments = lineTraces.reduce((n, t: any) => n + t.x.length / 3, 0);
    expect(segments).toBe(4);
    const focused = attentionLinesFigure(A, 1, 0, { minWeight: 0.2, focus: 2 });
    expect(focused.table.rows).toEqual([[1, 0, 2, 0, 0.25], [1, 0, 2, 1, 0.25], [1, 0, 2, 2, 0.5]]);
  });
  it('the focused token\'s lines as shapes: the same edges as the focused figure', () => {
    // token 1 of L1H0: it attends to 0 (0.6) and 1 (0.4); token 2 attends to it with 0.25
    const shapes = focusLineShapes(A, 1, 0, 1, 0.2);
    expect(shapes.map((s: any) => [s.y0, s.y1])).toEqual([[0, 1], [1, 1], [1, 2]]);
    expect((shapes[0] as any).line.width).toBeCloseTo(1 + 4 * 0.6, 12);
    const focused = attentionLinesFigure(A, 1, 0, { minWeight: 0.2, focus: 1 }).table.rows.map((r) => [r[3], r[2]]);
    expect(shapes.map((s: any) => [s.y0, s.y1]).sort()).toEqual(focused.sort());
    expect(focusLineShapes(A, 1, 0, null)).toEqual([]);
  });
});
