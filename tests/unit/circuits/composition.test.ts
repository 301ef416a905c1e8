/** Composition scores against the framework's formula computed densely on a tiny random model (tolerance 1e-4). */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HookedTransformer } from '../../../hooks/HookedTransformer.ts';
import { FactoredMatrix, OV, QK, TensorWeights, allCompositionScores, compositionBaseline, compositionScores } from '../../../hooks/circuits/index.ts';
import { gpt2Config, randomWeights } from '../../../hooks/init.ts';
import { Tensor } from '../../../hooks/tensor.ts';
import { Rng } from '../../../hooks/random.ts';
import { frob, mat, maxDiff, mm, randTensor, tr, type D } from './dense.ts';

const cfg = gpt2Config({ n_layers: 3, n_heads: 4, d_model: 16, d_head: 4, d_mlp: 32, d_vocab: 40, n_ctx: 16 });
const { n_layers: L, n_heads: H } = cfg;
let model: HookedTransformer;
let ov: D[]; // dense W_V W_O per head (layer-major)
let qk: D[]; // dense W_Q W_Kᵀ per head

beforeAll(async () => {
  model = await HookedTransformer.fromWeights(cfg, randomWeights(cfg, { seed: 3 }), { threads: 1 });
  const [W_Q, W_K, W_V, W_O] = [model.W_Q, model.W_K, model.W_V, model.W_O];
  ov = [];
  qk = [];
  for (let i = 0; i < L * H; i++) {
    ov.push(mm(mat(W_V, i), mat(W_O, i)));
    qk.push(mm(mat(W_Q, i), tr(mat(W_K, i))));
  }
});

afterAll(async () => {
  await model.dispose();
});

/** The framework's score, densely: ‖W_A W_B‖_F / (‖W_A‖_F ‖W_B‖_F). */
const score = (a: D, b: D) => frob(mm(a, b)) / (frob(a) * frob(b));
const right = (mode: 'Q' | 'K' | 'V', j: number) => (mode === 'Q' ? qk[j] : mode === 'K' ? tr(qk[j]) : ov[j]);

describe('QK and OV', () => {
  it('are [n_layers, n_heads, d_model, d_model] factored matrices equal to W_Q W_Kᵀ and W_V W_O', () => {
    const q = QK(model);
    const o = OV(model);
    expect(q.shape).toEqual([L, H, 16, 16]);
    expect(o.shape).toEqual([L, H, 16, 16]);
    expect(q.mdim).toBe(4);
    for (const i of [0, 5, 11]) {
      expect(maxDiff(mat(q.AB, i).x, qk[i].x)).toBeLessThan(1e-6);
      expect(maxDiff(mat(o.AB, i).x, ov[i].x)).toBeLessThan(1e-6);
    }
    // Also from a plain object of TL-shaped weights.
    const fromObj = OV(new TensorWeights({ W_V: model.W_V, W_O: model.W_O }));
    expect(maxDiff(fromObj.index(2, 1).AB.data, ov[2 * H + 1].x)).toBeLessThan(1e-6);
  });
});

describe('allCompositionScores', () => {
  for (const mode of ['Q', 'K', 'V'] as const) {
    it(`mode ${mode}: equals the dense formula for later-layer pairs and is 0 elsewhere`, async () => {
      const s = await allCompositionScores(model, mode, { threads: 1 });
      expect(s.shape).toEqual([L, H, L, H]);
      let checked = 0;
      for (let l1 = 0; l1 < L; l1++) for (let h1 = 0; h1 < H; h1++) for (let l2 = 0; l2 < L; l2++) for (let h2 = 0; h2 < H; h2++) {
        const got = s.get(l1, h1, l2, h2);
        if (l1 >= l2) {
          expect(got).toBe(0);
          continue;
        }
        expect(Math.abs(got - score(ov[l1 * H + h1], right(mode, l2 * H + h2)))).toBeLessThan(1e-4);
        checked++;
      }
      expect(checked).toBe(3 * H * H); // layer pairs (0,1), (0,2), (1,2)
    });
  }

  it('K differs from Q (QKᵀ vs QK is really used)', async () => {
    const q = await allCompositionScores(model, 'Q', { threads: 1 });
    const k = await allCompositionScores(model, 'K', { threads: 1 });
    expect(maxDiff(q.data, k.data)).toBeGreaterThan(1e-3);
  });

  it('handles rank-deficient heads (dependent W_V columns) and zero heads (score 0, not NaN)', async () => {
    const W_V = model.W_V;
    const W_O = model.W_O;
    const W_Q = model.W_Q;
    const W_K = model.W_K;
    // Head (0, 1): W_V's last two columns copy the first two (rank 2 of d_head 4). Head (1, 2): W_O = 0.
    const off = (0 * H + 1) * 16 * 4;
    for (let i = 0; i < 16; i++) for (const j of [2, 3]) W_V.data[off + i * 4 + j] = W_V.data[off + i * 4 + j - 2];
    W_O.data.fill(0, (1 * H + 2) * 4 * 16, (1 * H + 3) * 4 * 16);
    const src = new TensorWeights({ W_Q, W_K, W_V, W_O });
    const ovd = (i: number) => mm(mat(W_V, i), mat(W_O, i));
    for (const mode of ['K', 'V'] as const) {
      const s = await allCompositionScores(src, mode, { threads: 1 });
      const r = (j: number) => (mode === 'K' ? tr(qk[j]) : ovd(j));
      for (const [a, b] of [[1, 1 * H + 0], [1, 2 * H + 3], [0 * H + 2, 1 * H + 1]]) {
        const got = s.data[a * L * H + b];
        expect(Math.abs(got - score(ovd(a), r(b)))).toBeLessThan(1e-4);
      }
      // The zero head as the earlier head: 0 (and as the later head in V mode).
      for (let b = 2 * H; b < 3 * H; b++) expect(s.data[(1 * H + 2) * L * H + b]).toBe(0);
      if (mode === 'V') expect(s.data[(0 * H + 0) * L * H + 1 * H + 2]).toBe(0);
      expect(s.data.every((v) => Number.isFinite(v))).toBe(true);
    }
    await src.dispose();
  });

  it('rejects an unknown mode', async () => {
    await expect(allCompositionScores(model, 'X' as 'Q')).rejects.toThrow(/mode must be 'Q', 'K' or 'V'/);
  });
});

describe('allCompositionScores with outputMaps (composition through a map such as an MLP linearisation)', () => {
  const d = 16;
  const maps = [randTensor(new Rng(21), [d, d]), randTensor(new Rng(22), [d, d])]; // layers 0 and 1; layer 2 writes to nothing later
  for (const mode of ['Q', 'K', 'V'] as const) {
    it(`mode ${mode}: the earlier head's OV is W_V W_O M[layer]; the later head's side is unchanged`, async () => {
      const s = await allCompositionScores(model, mode, { threads: 1, outputMaps: maps });
      for (let l1 = 0; l1 < L; l1++) for (let h1 = 0; h1 < H; h1++) for (let l2 = l1 + 1; l2 < L; l2++) for (let h2 = 0; h2 < H; h2++) {
        const left = mm(ov[l1 * H + h1], mat(maps[l1]));
        expect(Math.abs(s.get(l1, h1, l2, h2) - score(left, right(mode, l2 * H + h2)))).toBeLessThan(1e-4);
      }
    });
  }

  it('identity or null maps give the plain scores; a wrong map is a clear error', async () => {
    const eye = new Tensor(new Float32Array(d * d), [d, d]);
    for (let i = 0; i < d; i++) eye.data[i * d + i] = 1;
    const plain = await allCompositionScores(model, 'K', { threads: 1 });
    expect(maxDiff((await allCompositionScores(model, 'K', { threads: 1, outputMaps: [eye, null] })).data, plain.data)).toBeLessThan(1e-6);
    expect(maxDiff((await allCompositionScores(model, 'V', { threads: 1, outputMaps: [null] })).data, (await allCompositionScores(model, 'V', { threads: 1 })).data)).toBe(0);
    await expect(allCompositionScores(model, 'K', { outputMaps: [new Tensor(new Float32Array(8 * 8), [8, 8])] })).rejects.toThrow(/outputMaps\[0\] must be a Tensor \[16, 16\]/);
    await expect(allCompositionScores(model, 'K', { outputMaps: [null, null, null, null] })).rejects.toThrow(/at most n_layers = 3 entries/);
  });

  it('compositionBaseline maps its random left matrices the same way (identity and scalar maps change nothing)', () => {
    const eye = new Tensor(new Float32Array(d * d), [d, d]);
    for (let i = 0; i < d; i++) eye.data[i * d + i] = 2.5; // scores are scale-free
    const plain = compositionBaseline(model, 'K', { samples: 50, seed: 7 });
    const mapped = compositionBaseline(model, 'K', { samples: 50, seed: 7, outputMap: eye });
    expect(maxDiff(mapped.scores, plain.scores)).toBeLessThan(1e-12);
    // A rank-1 map u vᵀ leaves only vᵀ R of each random right matrix R: every score is ‖vᵀ R‖ / (‖v‖ ‖R‖) < 1 and differs from the plain ones.
    const r1 = new Tensor(new Float32Array(d * d), [d, d]);
    r1.data[0 * d + 3] = 1;
    const low = compositionBaseline(model, 'K', { samples: 50, seed: 7, outputMap: r1 });
    expect(maxDiff(low.scores, plain.scores)).toBeGreaterThan(1e-3);
    expect(() => compositionBaseline(model, 'K', { outputMap: new Tensor(new Float32Array(4), [2, 2]) })).toThrow(/outputMap must be a Tensor \[16, 16\]/);
  });
});

describe('compositionScores (TransformerLens utils.composition_scores, float64)', () => {
  it('gives every (left, right) pair unmasked, [L, H, L, H]', () => {
    const s = compositionScores(OV(model), QK(model).T);
    expect(s.shape).toEqual([L, H, L, H]);
    for (const [i, j] of [[0, 0], [3, 7], [11, 2], [6, 6]]) {
      expect(Math.abs(s.data[i * L * H + j] - score(ov[i], tr(qk[j])))).toBeLessThan(1e-5);
    }
  });

  it('with broadcastDims = false pairs matrices elementwise', () => {
    const s = compositionScores(OV(model), OV(model), false);
    expect(s.shape).toEqual([L, H]);
    for (let i = 0; i < L * H; i++) expect(Math.abs(s.data[i] - score(ov[i], ov[i]))).toBeLessThan(1e-5);
  });

  it('is 1 for a rank-1 map composed with itself', () => {
    const u = new Tensor(Float32Array.of(1, 2, 3), [3, 1]);
    const v = new Tensor(Float32Array.of(1, 2, 3), [1, 3]);
    const f = new FactoredMatrix(u, v);
    // ‖u uᵀ u uᵀ‖ = |u|⁴ = ‖u uᵀ‖², so the score is exactly 1.
    expect(compositionScores(f, f).item()).toBeCloseTo(1, 6);
  });
});

describe('compositionBaseline', () => {
  it('is reproducible per seed and centred near 1/√d_model for Gaussian matrices', () => {
    const a = compositionBaseline({ d_model: 64, d_head: 8 }, 'K', { samples: 200, seed: 1 });
    const b = compositionBaseline({ d_model: 64, d_head: 8 }, 'K', { samples: 200, seed: 1 });
    expect(a.scores).toEqual(b.scores);
    expect(a.scores.length).toBe(200);
    // E‖LR‖² / (E‖L‖² E‖R‖²) = 1/d_model for i.i.d. Gaussian factors; the mean ratio concentrates near it.
    expect(Math.abs(a.mean - 1 / Math.sqrt(64))).toBeLessThan(0.015);
    expect(a.std).toBeGreaterThan(0);
    expect(Math.min(...a.scores)).toBeGreaterThan(0);
    expect(Math.max(...a.scores)).toBeLessThan(1);
    const c = compositionBaseline({ d_model: 64, d_head: 8 }, 'K', { samples: 200, seed: 2 });
    expect(c.scores).not.toEqual(a.scores);
  });

  it('reads d_model and d_head from a model', () => {
    const m = compositionBaseline(model, 'V', { samples: 300, seed: 4 });
    expect(m.mode).toBe('V');
    expect(Math.abs(m.mean - 1 / Math.sqrt(16))).toBeLessThan(0.04);
    expect(() => compositionBaseline(model, 'V', { samples: 0 })).toThrow(/samples must be a positive integer/);
  });
});
