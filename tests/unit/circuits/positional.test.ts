/** Positional QK circuits and the previous-token score from weights, against plain loops and a built previous-token head. */
import { describe, expect, it } from 'vitest';
import {
  positionalPattern, positionalQK, previousTokenScoreFromWeights, previousTokenScoresFromWeights, TensorWeights,
} from '../../../hooks/circuits/index.ts';
import { WeightStore } from '../../../hooks/weightStore.ts';
import { gpt2Config, randomWeights } from '../../../hooks/init.ts';
import { Tensor } from '../../../hooks/tensor.ts';
import { mat, maxAbs, maxDiff, mm, tr, type D } from './dense.ts';

const cfg = gpt2Config({ n_layers: 2, n_heads: 2, d_model: 16, d_head: 8, d_mlp: 32, d_vocab: 20, n_ctx: 12 });
const raw = randomWeights(cfg, { seed: 9, std: 0.5 });
const store = WeightStore.adopt(cfg, structuredClone(raw));
const tensors = { W_pos: store.stacked('W_pos'), W_Q: store.stacked('W_Q'), W_K: store.stacked('W_K') };
const weights = new TensorWeights(tensors);

/** Plain-loop causal softmax of s / √d_head and the mean mass on offset −1. */
function refPrev(s: D, dHead: number): { pattern: Float64Array; prev: number } {
  const n = s.r;
  const p = new Float64Array(n * n);
  for (let q = 0; q < n; q++) {
    const row = Array.from({ length: q + 1 }, (_, k) => s.x[q * n + k] / Math.sqrt(dHead));
    const m = Math.max(...row);
    const z = row.reduce((a, v) => a + Math.exp(v - m), 0);
    row.forEach((v, k) => (p[q * n + k] = Math.exp(v - m) / z));
  }
  let prev = 0;
  for (let q = 1; q < n; q++) prev += p[q * n + q - 1];
  return { pattern: p, prev: prev / (n - 1) };
}

function denseQK(l: number, h: number, n: number, normalize = false): D {
  const pos = mat(tensors.W_pos);
  const P: D = { r: n, c: 16, x: pos.x.slice(0, n * 16) };
  if (normalize) {
    for (let r = 0; r < n; r++) {
      const row = P.x.subarray(r * 16, (r + 1) * 16);
      const mean = row.reduce((a, b) => a + b, 0) / 16;
      const v = row.reduce((a, b) => a + (b - mean) ** 2, 0) / 16;
      row.forEach((x, i) => (row[i] = (x - mean) / Math.sqrt(v + 1e-5)));
    }
  }
  const i = l * 2 + h;
  return mm(mm(P, mat(tensors.W_Q, i)), tr(mm(P, mat(tensors.W_K, i))));
}

describe('positional QK', () => {
  it('positionalQK equals W_pos W_Q W_Kᵀ W_posᵀ on the first n positions', () => {
    const s = positionalQK(weights, 1, 0, { nPos: 10 });
    expect(s.shape).toEqual([10, 10]);
    const want = denseQK(1, 0, 10);
    expect(maxDiff(s.data, want.x)).toBeLessThan(1e-5 * maxAbs(want.x));
    const sn = positionalQK(weights, 1, 0, { nPos: 10, normalize: true });
    const wantN = denseQK(1, 0, 10, true);
    expect(maxDiff(sn.data, wantN.x)).toBeLessThan(1e-5 * maxAbs(wantN.x));
    expect(positionalQK(weights, 0, 1).shape).toEqual([12, 12]); // default min(n_ctx, 64)
  });

  it('pattern and previous-token score equal a plain-loop causal softmax', () => {
    for (const [l, h] of [[0, 0], [1, 1]]) {
      const ref = refPrev(denseQK(l, h, 12), 8);
      expect(maxDiff(positionalPattern(weights, l, h).data, ref.pattern)).toBeLessThan(1e-5);
      expect(previousTokenScoreFromWeights(weights, l, h)).toBeCloseTo(ref.prev, 6);
    }
    const all = previousTokenScoresFromWeights(weights);
    expect(all.shape).toEqual([2, 2]);
    expect(all.get(1, 1)).toBeCloseTo(refPrev(denseQK(1, 1, 12), 8).prev, 6);
  });

  it('finds a previous-token head built into the weights, and not a current-token one', () => {
    const n = 16;
    const eye = new Float32Array(n * n);
    const shift = new Float32Array(n * n); // W_Q W_Kᵀ = 40·S with S[q, q−1] = 1
    for (let i = 0; i < n; i++) {
      eye[i * n + i] = 1;
      if (i > 0) shift[i * n + i - 1] = 40;
    }
    const base = { W_pos: new Tensor(eye, [n, n]), W_K: new Tensor(eye.slice(), [1, 1, n, n]) };
    const prevHead = new TensorWeights({ ...base, W_Q: new Tensor(shift, [1, 1, n, n]) });
    const selfHead = new TensorWeights({ ...base, W_Q: new Tensor(eye.map((v) => 40 * v), [1, 1, n, n]) });
    expect(previousTokenScoreFromWeights(prevHead, 0, 0)).toBeGreaterThan(0.99);
    expect(previousTokenScoreFromWeights(selfHead, 0, 0)).toBeLessThan(0.01);
    expect(positionalPattern(prevHead, 0, 0, { nPos: 4 }).get(3, 2)).toBeGreaterThan(0.99);
  });

  it('rejects bad positions and heads', () => {
    expect(() => positionalQK(weights, 0, 0, { nPos: 13 })).toThrow(/nPos must be an integer in \[2, 12\]/);
    expect(() => positionalQK(weights, 0, 2)).toThrow(/head 2 is not an integer in \[0, 2\)/);
    expect(() => positionalQK(new TensorWeights({ W_Q: tensors.W_Q, W_K: tensors.W_K }), 0, 0)).toThrow(/'W_pos' is missing/);
  });
});
