/** Logit lens figure specs from a hand-made /api/logit-lens answer: rows per component, columns per position, z per metric, cell text, hover. */
import { describe, expect, it } from 'vitest';
import { lensRowLabel, logitLensFigure, type LogitLensData } from '../../../hooks/figures/index.ts';

const tok = (token: number, str: string, prob: number) => ({ token, str, prob });
// 2 layers: labels 0_pre, 1_pre, final_post; 2 positions; top-2.
const R: LogitLensData = {
  tokens: [50256, 7554],
  strTokens: ['<|endoftext|>', ' Mary'],
  labels: ['0_pre', '1_pre', 'final_post'],
  positions: [0, 1],
  top: [
    [[tok(1, 'a', 0.5), tok(2, 'b', 0.2)], [tok(3, '<b>', 0.25), tok(1, 'a', 0.2)]],
    [[tok(1, 'a', 0.6), tok(2, 'b', 0.1)], [tok(4, ' John', 0.4), tok(1, 'a', 0.3)]],
    [[tok(2, 'b', 0.7), tok(1, 'a', 0.1)], [tok(4, ' John', 0.9), tok(1, 'a', 0.05)]],
  ],
  targets: [{ token: 4, str: ' John', prob: [[0.01, 0.1], [0.02, 0.4], [0.03, 0.9]], rank: [[99, 3], [9, 0], [0, 0]], logit: [[0, 1], [1, 2], [2, 3]] }],
};

describe('logitLensFigure', () => {
  it('has one row per component (layers plus final) and one column per position', () => {
    const f = logitLensFigure(R);
    const t = f.data[0] as any;
    expect(t.z).toEqual([[0.5, 0.25], [0.6, 0.4], [0.7, 0.9]]);
    expect((f.layout.yaxis as any).ticktext).toEqual(['L0 resid_pre', 'L1 resid_pre', 'final']);
    expect((f.layout.xaxis as any).ticktext).toEqual(['0: &lt;|endoftext|&gt;', '1:  Mary']);
    expect(t.zmin).toBe(0);
    expect(t.zmax).toBe(1);
    expect(t.colorbar.title.text).toBe('probability');
  });
  it('writes the escaped top-1 token in each cell and the top-k in the hover', () => {
    const t = logitLensFigure(R).data[0] as any;
    expect(t.text).toEqual([['a', '&lt;b&gt;'], ['a', ' John'], ['b', ' John']]);
    expect(t.texttemplate).toBe('%{text}');
    expect(t.customdata[2][1]).toContain('1.  John  0.900');
    expect(t.customdata[2][1]).toContain('2. a  0.050');
    expect(logitLensFigure(R, { cellText: false }).data[0]).not.toHaveProperty('text');
  });
  it('log-probability is ln p; a target\'s rank is drawn as log10(1 + rank) with rank tick labels', () => {
    const lp = logitLensFigure(R, { metric: 'logprob' }).data[0] as any;
    expect(lp.z[0][0]).toBeCloseTo(Math.log(0.5), 12);
    expect(lp.zmax).toBe(0);
    const rk = logitLensFigure(R, { metric: 'rank', of: 0 });
    const t = rk.data[0] as any;
    expect(t.z[0][0]).toBeCloseTo(2, 12); // rank 99
    expect(t.z[0][1]).toBeCloseTo(Math.log10(4), 12);
    expect(t.z[2][0]).toBe(0);
    expect(t.reversescale).toBe(true);
    expect(t.colorbar.ticktext[2]).toBe('99');
    expect(rk.table.columns.at(-1)).toBe('rank');
    expect(rk.table.rows[0]).toEqual(['0_pre', 0, '<|endoftext|>', 1, 'a', 0.5, 99]);
  });
  it('the target\'s probability; rank of the top-1 token falls back to probability', () => {
    expect((logitLensFigure(R, { of: 0 }).data[0] as any).z).toEqual([[0.01, 0.1], [0.02, 0.4], [0.03, 0.9]]);
    expect((logitLensFigure(R, { metric: 'rank' }).data[0] as any).z).toEqual([[0.5, 0.25], [0.6, 0.4], [0.7, 0.9]]);
    expect(() => logitLensFigure(R, { of: 1 })).toThrow(/target 1 is not in the answer \(1 targets\)/);
  });
  it('with a target the cells show its own value, not the top-1 token', () => {
    expect((logitLensFigure(R, { of: 0 }).data[0] as any).text).toEqual([['0.01', '0.10'], ['0.02', '0.40'], ['0.03', '0.90']]);
    expect((logitLensFigure(R, { of: 0, metric: 'rank' }).data[0] as any).text).toEqual([['99', '3'], ['9', '0'], ['0', '0']]);
    expect((logitLensFigure(R, { of: 0, metric: 'logprob' }).data[0] as any).text[0][0]).toBe(Math.log(0.01).toFixed(1));
    expect((logitLensFigure(R, { of: 0 }).layout.title as any).text).toBe('Logit lens: probability of the target  John');
  });
  it('every position can have its tick label (maxTicks)', () => {
    const many = { ...R, positions: Array.from({ length: 60 }, (_v, i) => i % 2), top: R.top.map((row) => Array.from({ length: 60 }, (_v, i) => row[i % 2])) };
    expect((logitLensFigure(many).layout.xaxis as any).tickvals).toHaveLength(30);
    expect((logitLensFigure(many, { maxTicks: 60 }).layout.xaxis as any).tickvals).toHaveLength(60);
  });
  it('exports component × position rows', () => {
    const f = logitLensFigure(R);
    expect(f.table.columns).toEqual(['component', 'pos', 'token', 'top1_id', 'top1_str', 'top1_prob', 'prob']);
    expect(f.table.rows).toHaveLength(6);
    expect(f.table.rows[5]).toEqual(['final_post', 1, ' Mary', 4, ' John', 0.9, 0.9]);
  });
  it('names rows', () => {
    expect(lensRowLabel('3_mid')).toBe('L3 resid_mid');
    expect(lensRowLabel('final_post')).toBe('final');
  });
});
