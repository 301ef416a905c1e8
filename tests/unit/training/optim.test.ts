/** AdamW, the warmup + cosine schedule and global-norm clipping, against hand-computed values. */
import { describe, expect, it } from 'vitest';
import type { ParamSet } from '../../../training/model/params.ts';
import { adamWState, adamWStep, clipGradNorm, globalNorm, learningRate } from '../../../training/optim.ts';

function set(values: Record<string, number[]>, decay: Record<string, boolean>): ParamSet {
  const specs = Object.keys(values).map((name) => ({ name, shape: [values[name].length], decay: decay[name] }));
  return { specs, data: new Map(Object.entries(values).map(([k, v]) => [k, Float32Array.from(v)])) };
}

describe('learningRate', () => {
  const s = { lr: 1e-3, warmupSteps: 10, totalSteps: 110, minRatio: 0.1 };
  it('warms up linearly, peaks, decays by a cosine to lr·minRatio', () => {
    expect(learningRate(s, 0)).toBeCloseTo(1e-4, 12);
    expect(learningRate(s, 4)).toBeCloseTo(5e-4, 12);
    expect(learningRate(s, 9)).toBeCloseTo(1e-3, 12);
    expect(learningRate(s, 10)).toBeCloseTo(1e-3, 12);
    // halfway through the decay: min + (lr - min)/2
    expect(learningRate(s, 60)).toBeCloseTo(1e-4 + 0.5 * 9e-4, 12);
    expect(learningRate(s, 110)).toBeCloseTo(1e-4, 12);
    expect(learningRate(s, 500)).toBeCloseTo(1e-4, 12);
  });
});

describe('clipGradNorm', () => {
  it('computes the global L2 norm and scales down only above the limit', () => {
    const g = set({ a: [3, 0], b: [4] }, { a: true, b: false });
    expect(globalNorm(g)).toBeCloseTo(5, 6);
    expect(clipGradNorm(g, 10)).toBeCloseTo(5, 6);
    expect(Array.from(g.data.get('a')!)).toEqual([3, 0]);
    expect(clipGradNorm(g, 1)).toBeCloseTo(5, 6);
    expect(g.data.get('a')![0]).toBeCloseTo(0.6, 6);
    expect(g.data.get('b')![0]).toBeCloseTo(0.8, 6);
    expect(globalNorm(g)).toBeCloseTo(1, 6);
  });
});

describe('adamWStep', () => {
  it('matches the AdamW update by hand for two steps, with decay only where enabled', () => {
    const p = set({ w: [1, -2], b: [0.5] }, { w: true, b: false });
    const cfg = { lr: 0.1, beta1: 0.9, beta2: 0.99, eps: 1e-8, weightDecay: 0.5 };
    const st = adamWState(p);
    const g1 = set({ w: [0.2, -0.4], b: [1] }, { w: true, b: false });
    adamWStep(p, g1, st, cfg, 0.1);
    // step 1: m̂ = g, v̂ = g² → update = sign(g) (eps negligible); decoupled decay uses the old weight
    expect(p.data.get('w')![0]).toBeCloseTo(1 - 0.1 * (1 + 0.5 * 1), 5);
    expect(p.data.get('w')![1]).toBeCloseTo(-2 - 0.1 * (-1 + 0.5 * -2), 5);
    expect(p.data.get('b')![0]).toBeCloseTo(0.5 - 0.1, 5);
    // step 2 with g = 0.5 for b: m = 0.9·0.1·1 + 0.1·0.5... computed explicitly
    const g2 = set({ w: [0, 0], b: [0.5] }, { w: true, b: false });
    adamWStep(p, g2, st, cfg, 0.05);
    const m = 0.9 * 0.1 + 0.1 * 0.5;
    const v = 0.99 * 0.01 + 0.01 * 0.25;
    const mhat = m / (1 - 0.81);
    const vhat = v / (1 - 0.9801);
    expect(p.data.get('b')![0]).toBeCloseTo(0.4 - 0.05 * (mhat / (Math.sqrt(vhat) + 1e-8)), 5);
    expect(st.t).toBe(2);
  });

  it('lazy rows: rows flagged 0 keep their weights and moments; the other rows get the plain update', () => {
    const rowsSet = (v: number[]): ParamSet => ({ specs: [{ name: 'e', shape: [3, 2], decay: false }], data: new Map([['e', Float32Array.from(v)]]) });
    const cfg = { lr: 0.1, beta1: 0.9, beta2: 0.99, eps: 1e-8, weightDecay: 0 };
    const lazy = rowsSet([1, 2, 3, 4, 5, 6]);
    const plain = rowsSet([1, 2, 3, 4, 5, 6]);
    const sl = adamWState(lazy);
    const sp = adamWState(plain);
    for (const g of [[0.1, -0.2, 0.3, 0.4, -0.5, 0.6], [0.2, 0.1, -0.3, 0.2, 0.5, 0.1]]) {
      adamWStep(lazy, rowsSet(g), sl, cfg, 0.1, new Map([['e', Uint8Array.from([1, 0, 1])]]));
      adamWStep(plain, rowsSet(g), sp, cfg, 0.1);
    }
    const e = Array.from(lazy.data.get('e')!);
    const q = Array.from(plain.data.get('e')!);
    expect(e.slice(2, 4)).toEqual([3, 4]);
    expect(Array.from(sl.m.data.get('e')!).slice(2, 4)).toEqual([0, 0]);
    expect(Array.from(sl.v.data.get('e')!).slice(2, 4)).toEqual([0, 0]);
    for (const i of [0, 1, 4, 5]) expect(e[i]).toBe(q[i]);
    expect(q[2]).not.toBe(3);
    expect(() => adamWStep(lazy, rowsSet([0, 0, 0, 0, 0, 0]), sl, cfg, 0.1, new Map([['e', Uint8Array.from([1, 0])]]))).toThrow(/lazy rows of e must number 3; got 2/);
  });
});

