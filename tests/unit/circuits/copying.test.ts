/** Copying scores, top copied tokens and the direct path against dense d_vocab × d_vocab computations on a tiny model. */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HookedTransformer } from '../../../hooks/HookedTransformer.ts';
import {
  bigramTopTokens, copyingScoreOf, copyingScores, directPathLogits, eigenvalueScore, fullOVCircuit, topCopiedTokens, TensorWeights,
} from '../../../hooks/circuits/index.ts';
import { gpt2Config, randomWeights } from '../../../hooks/init.ts';
import { Rng } from '../../../hooks/random.ts';
import { Tensor } from '../../../hooks/tensor.ts';
import { denseEigenvalues, mat, maxAbs, maxDiff, mm, type D } from './dense.ts';

const cfg = gpt2Config({ n_layers: 2, n_heads: 3, d_model: 16, d_head: 8, d_mlp: 32, d_vocab: 30, n_ctx: 16 });
const { n_layers: L, n_heads: H, d_model: d, d_head: h, d_vocab: V } = cfg;
let model: HookedTransformer;
let fullOV: D[]; // dense W_E W_V W_O W_U per head
let WE: D;
let WU: D;

beforeAll(async () => {
  const w = randomWeights(cfg, { seed: 5, std: 0.5 });
  // Layer 0: head 0 copies (W_V = [I_8; 0], W_O = W_Vᵀ, so W_E W_OV W_U = W_E P W_Eᵀ with W_U = W_Eᵀ: PSD),
  // head 1 anti-copies (W_O negated). Raw layouts: W_V [d_model, n_heads, d_head], W_O [n_heads, d_head, d_model].
  const b = w.blocks[0];
  for (const head of [0, 1]) {
    for (let i = 0; i < d; i++) for (let j = 0; j < h; j++) {
      b.W_V[(i * H + head) * h + j] = i === j ? 1 : 0;
      b.W_O[(head * h + j) * d + i] = i === j ? (head === 0 ? 1 : -1) : 0;
    }
  }
  model = await HookedTransformer.fromWeights(cfg, w, { threads: 1 });
  WE = mat(model.W_E);
  WU = mat(model.W_U);
  const [W_V, W_O] = [model.W_V, model.W_O];
  fullOV = [];
  for (let i = 0; i < L * H; i++) fullOV.push(mm(mm(WE, mm(mat(W_V, i), mat(W_O, i))), WU));
});

afterAll(async () => {
  await model.dispose();
});

/** The framework's statistic on the dense d_vocab × d_vocab matrix. */
function denseCopyingScore(m: D): number {
  const ev = denseEigenvalues(m);
  return eigenvalueScore(ev.map((e) => e[0]), ev.map((e) => e[1]));
}

describe('copying scores', () => {
  it('eigenvalueScore is Σ Re λ / Σ |λ|', () => {
    expect(eigenvalueScore([3, 1, 1], [0, 2, -2])).toBeCloseTo(5 / (3 + 2 * Math.sqrt(5)), 12);
    expect(eigenvalueScore([0, 0], [0, 0])).toBe(0);
  });

  it('copyingScores equals the statistic of the dense full OV circuit for every head', async () => {
    const s = await copyingScores(model, { threads: 1 });
    expect(s.shape).toEqual([L, H]);
    for (let i = 0; i < L * H; i++) expect(Math.abs(s.data[i] - denseCopyingScore(fullOV[i]))).toBeLessThan(1e-4);
  });

  it('is ≈ 1 for the copying head and ≈ −1 for the negated one', async () => {
    const s = await copyingScores(model, { threads: 1 });
    expect(s.get(0, 0)).toBeGreaterThan(0.9999);
    expect(s.get(0, 1)).toBeLessThan(-0.9999);
    // The random heads sit strictly inside (−1, 1).
    expect(Math.abs(s.get(1, 2))).toBeLessThan(0.99);
  });

  it('fullOVCircuit is the factored W_E W_OV W_U [d_vocab, d_vocab], and copyingScoreOf agrees', async () => {
    const s = await copyingScores(model, { threads: 1 });
    for (const [l, hh] of [[0, 0], [1, 2]]) {
      const f = fullOVCircuit(model, l, hh);
      expect(f.shape).toEqual([V, V]);
      expect(f.mdim).toBe(h);
      const dense = fullOV[l * H + hh];
      expect(maxDiff(f.AB.data, dense.x)).toBeLessThan(1e-4 * maxAbs(dense.x));
      expect(Math.abs(copyingScoreOf(f).item() - s.get(l, hh))).toBeLessThan(1e-4);
    }
  });

  it('works from a plain object of weights too', async () => {
    const obj = new TensorWeights({ W_E: model.W_E, W_U: model.W_U, W_V: model.W_V, W_O: model.W_O }, { threads: 1 });
    const a = await copyingScores(obj);
    const b = await copyingScores(model, { threads: 1 });
    expect(maxDiff(a.data, b.data)).toBe(0);
    await expect(copyingScores(new TensorWeights({ W_V: model.W_V, W_O: model.W_O }))).rejects.toThrow(/'W_E' is missing/);
    await obj.dispose();
  });
});

/** Top-k indices and values of a dense row, descending (ties by index). */
function topDense(row: ArrayLike<number>, k: number): { ids: number[]; values: number[] } {
  const idx = Array.from({ length: row.length }, (_, i) => i).sort((a, b) => row[b] - row[a] || a - b);
  return { ids: idx.slice(0, k), values: idx.slice(0, k).map((i) => row[i]) };
}

describe('top copied tokens and the direct path', () => {
  it('topCopiedTokens matches the top of the dense full OV row', () => {
    for (const [l, hh] of [[0, 0], [0, 1], [1, 1]]) {
      const rows = topCopiedTokens(model, l, hh, [0, 7, 29], 5);
      expect(rows.map((r) => r.token)).toEqual([0, 7, 29]);
      for (const r of rows) {
        const dense = fullOV[l * H + hh].x.subarray(r.token * V, (r.token + 1) * V);
        const want = topDense(dense, 5);
        expect(r.ids).toEqual(want.ids);
        expect(maxDiff(r.values, want.values)).toBeLessThan(1e-4 * maxAbs(dense));
      }
    }
    expect(() => topCopiedTokens(model, 2, 0, [1], 3)).toThrow(/layer 2 is not an integer in \[0, 2\)/);
    expect(() => topCopiedTokens(model, 0, 0, [30], 3)).toThrow(/token id 30 is not an integer in \[0, 30\)/);
  });

  it('the copying head maps a token to itself first (W_E P W_Eᵀ is largest on its diagonal here)', () => {
    const rows = topCopiedTokens(model, 0, 0, [3, 11], 1);
    const diagWins = rows.map((r) => {
      const dense = fullOV[0].x.subarray(r.token * V, (r.token + 1) * V);
      return topDense(dense, 1).ids[0];
    });
    expect(rows.map((r) => r.ids[0])).toEqual(diagWins);
  });

  it('directPathLogits and bigramTopTokens read rows of the dense W_E W_U', () => {
    const WEU = mm(WE, WU);
    const row = directPathLogits(model, 4);
    expect(row.shape).toEqual([V]);
    expect(maxDiff(row.data, WEU.x.subarray(4 * V, 5 * V))).toBeLessThan(1e-5);
    const rows = bigramTopTokens(model, [4, 9], 6);
    for (const r of rows) {
      const want = topDense(WEU.x.subarray(r.token * V, (r.token + 1) * V), 6);
      expect(r.ids).toEqual(want.ids);
      expect(maxDiff(r.values, want.values)).toBeLessThan(1e-5);
    }
    expect(() => bigramTopTokens(model, [1], 31)).toThrow(/k must be an integer in \[1, 30\]/);
  });
});

describe('reading the OV circuits through other token vectors (embedding option)', () => {
  it('with W_E itself over the whole vocabulary, copyingScores and topCopiedTokens are unchanged', async () => {
    const all = { tokens: Array.from({ length: V }, (_, i) => i), vectors: model.W_E };
    const a = await copyingScores(model, { threads: 1, embedding: all });
    const b = await copyingScores(model, { threads: 1 });
    expect(maxDiff(a.data, b.data)).toBeLessThan(1e-5);
    const ra = topCopiedTokens(model, 1, 2, [3, 17], 4, { embedding: all });
    const rb = topCopiedTokens(model, 1, 2, [3, 17], 4);
    expect(ra.map((r) => r.ids)).toEqual(rb.map((r) => r.ids));
    expect(maxDiff(ra.flatMap((r) => r.values), rb.flatMap((r) => r.values))).toBeLessThan(1e-6);
  });

  it('with other vectors for a subset of tokens: the statistic of the dense vectors · W_OV · W_U[:, tokens]', async () => {
    const tokens = [2, 5, 9, 14, 20, 21, 28];
    const n = tokens.length;
    const vectors = new Tensor(new Rng(11).normals(n * d), [n, d]);
    const E: D = mat(vectors);
    const Ucols: D = { r: d, c: n, x: new Float64Array(d * n) };
    for (let k = 0; k < d; k++) tokens.forEach((t, i) => { Ucols.x[k * n + i] = WU.x[k * V + t]; });
    const s = await copyingScores(model, { threads: 1, embedding: { tokens, vectors } });
    const [W_V, W_O] = [model.W_V, model.W_O];
    for (let i = 0; i < L * H; i++) {
      const dense = mm(mm(E, mm(mat(W_V, i), mat(W_O, i))), Ucols); // [n, n]
      expect(Math.abs(s.data[i] - denseCopyingScore(dense))).toBeLessThan(1e-4);
    }
    // topCopiedTokens: logits over the whole vocabulary from the token's own vector.
    const rows = topCopiedTokens(model, 0, 2, [9, 28], 5, { embedding: { tokens, vectors } });
    for (const r of rows) {
      const i = tokens.indexOf(r.token);
      const row = mm(mm({ r: 1, c: d, x: E.x.subarray(i * d, (i + 1) * d) }, mm(mat(W_V, 2), mat(W_O, 2))), WU).x;
      const want = topDense(row, 5);
      expect(r.ids).toEqual(want.ids);
      expect(maxDiff(r.values, want.values)).toBeLessThan(1e-4 * maxAbs(row));
    }
  });

  it('rejects a malformed embedding', async () => {
    const vectors = new Tensor(new Float32Array(2 * d), [2, d]);
    await expect(copyingScores(model, { embedding: { tokens: [1, 2, 3], vectors } })).rejects.toThrow(/embedding\.vectors must be \[3, 16\]/);
    await expect(copyingScores(model, { embedding: { tokens: [1, 30], vectors } })).rejects.toThrow(/token id 30 is not an integer in \[0, 30\)/);
    expect(() => topCopiedTokens(model, 0, 0, [4], 3, { embedding: { tokens: [1, 2], vectors } })).toThrow(/token 4 is not one of the embedding's 2 tokens/);
  });
});
