/**
 * Reading circuits past block 0's MLP, on a tiny random model with the default processing:
 * effectiveEmbedding and blockZeroMlpInputs against the plain-TypeScript reference forward (with hooks that set
 * block 0's attention), mlpLinearization against central finite differences of x ↦ x + MLP(LN(x)) in float64,
 * geluDerivative against finite differences of gelu.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HookedTransformer } from '../../../hooks/HookedTransformer.ts';
import { blockZeroMlpInputs, effectiveEmbedding, embeddingTokenSet, mlpLinearization } from '../../../hooks/circuits/index.ts';
import { DEFAULT_PROCESSING, type HookedTransformerConfig } from '../../../hooks/config.ts';
import { gpt2Config, randomWeights } from '../../../hooks/init.ts';
import { processWeights } from '../../../hooks/processing.ts';
import { Rng } from '../../../hooks/random.ts';
import { gelu, geluDerivative, referenceForward } from '../../../hooks/reference.ts';
import { Tensor } from '../../../hooks/tensor.ts';
import type { TransformerWeights } from '../../../hooks/weights.ts';
import { maxAbs, maxDiff } from './dense.ts';

const base = gpt2Config({ n_layers: 2, n_heads: 3, d_model: 16, d_head: 4, d_mlp: 24, d_vocab: 40, n_ctx: 12 });
const SEED = 9;
let model: HookedTransformer;
let ref: { cfg: HookedTransformerConfig; weights: TransformerWeights }; // the same weights, processed, for the reference

/** Random weights with random (non-zero) biases and LayerNorm weights; std 0.3 keeps the MLP's pre-activations in gelu's curved range. */
function weights(): TransformerWeights {
  const w = randomWeights(base, { seed: SEED, std: 0.3 });
  const rng = new Rng(SEED + 1);
  const fill = (a: Float32Array, mean = 0) => a.set(rng.normals(a.length, 0.2, mean));
  for (const b of w.blocks) {
    for (const a of [b.b_Q, b.b_K, b.b_V, b.b_O, b.b_in, b.b_out]) fill(a);
    for (const ln of [b.ln1, b.ln2]) if (ln) { fill(ln.w, 1); fill(ln.b); }
  }
  return w;
}

beforeAll(async () => {
  model = await HookedTransformer.fromWeights(base, weights(), { ...DEFAULT_PROCESSING, threads: 1 });
  ref = processWeights(base, weights(), DEFAULT_PROCESSING);
});

afterAll(async () => {
  await model.dispose();
});

const { d_model: d, d_mlp: m, n_heads: H } = base;

describe('geluDerivative', () => {
  it('equals central finite differences of gelu for every act_fn (|Δ| < 1e-7)', () => {
    for (const fn of ['gelu_new', 'gelu', 'gelu_fast', 'relu'] as const) {
      for (let x = -4.05; x < 4; x += 0.37) {
        const fd = (gelu(x + 1e-5, fn) - gelu(x - 1e-5, fn)) / 2e-5;
        expect(Math.abs(geluDerivative(x, fn) - fd)).toBeLessThan(1e-7);
      }
    }
    expect(() => geluDerivative(1, 'tanh' as 'gelu')).toThrow(/unknown act_fn 'tanh'/);
  });
});

describe('effectiveEmbedding', () => {
  it("equals the reference forward's blocks.1.ln1.hook_normalized with mean W_pos and block 0's attention reduced to b_O (1e-5)", async () => {
    const tokens = [3, 17, 0, 39, 22];
    const positions = [1, 2, 5, 9];
    const emb = await effectiveEmbedding(model, tokens, { positions, threads: 1 });
    expect(emb.tokens).toEqual(tokens);
    expect(emb.vectors.shape).toEqual([tokens.length, d]);
    const W_pos = ref.weights.W_pos;
    const posMean = new Float32Array(d);
    for (const p of positions) for (let k = 0; k < d; k++) posMean[k] += W_pos[p * d + k] / positions.length;
    const b_O = ref.weights.blocks[0].b_O;
    const { cache } = referenceForward(ref.cfg, ref.weights, [tokens], {
      hooks: {
        hook_pos_embed: (t) => new Tensor(Float32Array.from(t.data, (_, i) => posMean[i % d]), t.shape),
        'blocks.0.hook_attn_out': (t) => new Tensor(Float32Array.from(t.data, (_, i) => b_O[i % d]), t.shape),
      },
      cacheNames: (n) => n === 'blocks.1.ln1.hook_normalized',
    });
    const want = cache.get('blocks.1.ln1.hook_normalized')!; // [1, pos, d_model]
    expect(maxDiff(emb.vectors.data, want.data)).toBeLessThan(1e-5);
  });

  it('defaults to positions 1 … min(64, n_ctx − 1) and rejects bad input', async () => {
    const a = await effectiveEmbedding(model, [4, 5], { threads: 1 });
    const b = await effectiveEmbedding(model, [4, 5], { threads: 1, positions: Array.from({ length: 11 }, (_, i) => i + 1) });
    expect(maxDiff(a.vectors.data, b.vectors.data)).toBe(0);
    await expect(effectiveEmbedding(model, [40])).rejects.toThrow(/token id 40 is not an integer in \[0, 40\)/);
    await expect(effectiveEmbedding(model, [1], { positions: [12] })).rejects.toThrow(/position 12 is not an integer in \[0, 12\)/);
    const raw = await HookedTransformer.fromWeights(base, randomWeights(base, { seed: SEED }), { threads: 1 });
    await expect(effectiveEmbedding(raw, [1])).rejects.toThrow(/needs the LayerNorms folded .* this model has 'LN'/);
    await raw.dispose();
  });
});

describe('blockZeroMlpInputs', () => {
  it("with one token and maxPos 1, every point is the reference's resid_mid of block 0 at position 1 when every head attends to position 0 (1e-5)", () => {
    const t = 7;
    const pts = blockZeroMlpInputs(model, [t], { samples: 3, maxPos: 1 });
    expect(pts.shape).toEqual([3, d]);
    const { cache } = referenceForward(ref.cfg, ref.weights, [[t, t]], {
      hooks: {
        // [batch, head, query_pos, key_pos]: query 1 puts all its attention on key 0.
        'blocks.0.attn.hook_pattern': (p) => {
          const out = new Float32Array(p.data);
          for (let h = 0; h < H; h++) { out[h * 4 + 2] = 1; out[h * 4 + 3] = 0; }
          return new Tensor(out, p.shape);
        },
      },
      cacheNames: (n) => n === 'blocks.0.hook_resid_mid',
    });
    const want = cache.get('blocks.0.hook_resid_mid')!.data.subarray(d, 2 * d); // batch 0, position 1
    for (let s = 0; s < 3; s++) expect(maxDiff(pts.data.subarray(s * d, (s + 1) * d), want)).toBeLessThan(1e-5);
  });

  it('is reproducible per seed, varies with it, and rejects bad options', () => {
    const a = blockZeroMlpInputs(model, [1, 2, 3, 4], { samples: 20, seed: 1 });
    expect(maxDiff(a.data, blockZeroMlpInputs(model, [1, 2, 3, 4], { samples: 20, seed: 1 }).data)).toBe(0);
    expect(maxDiff(a.data, blockZeroMlpInputs(model, [1, 2, 3, 4], { samples: 20, seed: 2 }).data)).toBeGreaterThan(1e-3);
    expect(() => blockZeroMlpInputs(model, [1], { samples: 0 })).toThrow(/samples must be a positive integer/);
    expect(() => blockZeroMlpInputs(model, [1], { maxPos: 12 })).toThrow(/maxPos must be an integer in \[1, 12\)/);
    expect(() => blockZeroMlpInputs(model, [])).toThrow(/tokens must be a non-empty array/);
  });
});

/** x + MLP(LN(x)) of block `layer` in float64, from the reference's processed weights (LN folded, so a plain normalisation). */
function residAfterMlp(layer: number, x: Float64Array): Float64Array {
  const b = ref.weights.blocks[layer];
  let mu = 0;
  for (const v of x) mu += v / d;
  let s = 0;
  for (const v of x) s += (v - mu) ** 2 / d;
  const r = 1 / Math.sqrt(s + ref.cfg.eps);
  const out = Float64Array.from(x);
  for (let j = 0; j < m; j++) {
    let a = b.b_in[j];
    for (let k = 0; k < d; k++) a += (x[k] - mu) * r * b.W_in[k * m + j];
    const g = gelu(a, ref.cfg.act_fn);
    for (let k = 0; k < d; k++) out[k] += g * b.W_out[j * d + k];
  }
  for (let k = 0; k < d; k++) out[k] += b.b_out[k];
  return out;
}

describe('mlpLinearization', () => {
  for (const layer of [0, 1]) {
    it(`layer ${layer}: equals the mean finite-difference Jacobian of x ↦ x + MLP(LN(x)) over the points (relative 1e-4)`, async () => {
      const N = 6;
      const points = new Tensor(new Rng(30 + layer).normals(N * d, 1.5), [N, d]);
      const got = await mlpLinearization(model, layer, points, { threads: 1 });
      expect(got.shape).toEqual([d, d]);
      const want = new Float64Array(d * d); // want[a, b] = mean ∂y_b / ∂x_a
      const eps = 1e-5;
      for (let p = 0; p < N; p++) {
        const x = Float64Array.from(points.data.subarray(p * d, (p + 1) * d));
        for (let a = 0; a < d; a++) {
          const up = Float64Array.from(x);
          const dn = Float64Array.from(x);
          up[a] += eps;
          dn[a] -= eps;
          const yu = residAfterMlp(layer, up);
          const yd = residAfterMlp(layer, dn);
          for (let bb = 0; bb < d; bb++) want[a * d + bb] += (yu[bb] - yd[bb]) / (2 * eps) / N;
        }
      }
      expect(maxDiff(got.data, want)).toBeLessThan(1e-4 * maxAbs(want));
      // The MLP really contributes: the map is not the identity.
      let off = 0;
      for (let a = 0; a < d; a++) for (let bb = 0; bb < d; bb++) off = Math.max(off, Math.abs(want[a * d + bb] - (a === bb ? 1 : 0)));
      expect(off).toBeGreaterThan(0.05);
    });
  }

  it('rejects bad input', async () => {
    await expect(mlpLinearization(model, 2, new Tensor(new Float32Array(d), [1, d]))).rejects.toThrow(/layer 2 is not an integer in \[0, 2\)/);
    await expect(mlpLinearization(model, 0, new Tensor(new Float32Array(8), [1, 8]))).rejects.toThrow(/points must be a Tensor \[n, d_model = 16\]/);
  });
});

describe('embeddingTokenSet', () => {
  it('is n distinct sorted tokens drawn from the whole vocabulary per seed (all tokens when n ≥ d_vocab)', () => {
    const a = embeddingTokenSet({ cfg: { d_vocab: 100 } }, 30, 1);
    expect(a).toHaveLength(30);
    expect(new Set(a).size).toBe(30);
    expect([...a].sort((x, y) => x - y)).toEqual(a);
    expect(a.every((t) => Number.isInteger(t) && t >= 0 && t < 100)).toBe(true);
    expect(embeddingTokenSet({ cfg: { d_vocab: 100 } }, 30, 1)).toEqual(a);
    expect(embeddingTokenSet({ cfg: { d_vocab: 100 } }, 30, 2)).not.toEqual(a);
    expect(embeddingTokenSet({ cfg: { d_vocab: 5 } }, 30)).toEqual([0, 1, 2, 3, 4]);
    expect(() => embeddingTokenSet({ cfg: { d_vocab: 100 } }, 0)).toThrow(/n must be a positive integer/);
  });
});
