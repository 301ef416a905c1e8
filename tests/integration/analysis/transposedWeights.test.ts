/**
 * Reading matrices transposed, as the model stores them (no copy): HookedTransformer.transposedWeight,
 * the weight store's matrix/vector (what the cache and the toolkit read), tokensToResidualDirections,
 * and the logit lens's onnxruntime unembedding (its log-sum-exp stays finite for logits in the hundreds; topK 0).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { logitLens } from '../../../hooks/analysis/logitLens.ts';
import { HookedTransformer } from '../../../hooks/HookedTransformer.ts';
import { referenceForward } from '../../../hooks/reference.ts';
import type { Tensor } from '../../../hooks/tensor.ts';
import { cloneWeights, tinyConfig, tinyWeights, tokenBatch } from '../engine/helpers.ts';

const cfg = tinyConfig({ n_layers: 2, d_model: 16, n_heads: 4, d_mlp: 24, d_vocab: 60 });
const H = cfg.n_heads * cfg.d_head;
let model: HookedTransformer;

beforeAll(async () => {
  model = await HookedTransformer.fromWeights(cfg, cloneWeights(tinyWeights(cfg, 5)), { threads: 1 });
});
afterAll(async () => {
  await model?.dispose();
});

/** a [rows, cols] row-major → [cols, rows]. */
function transpose(a: Float32Array, rows: number, cols: number): Float32Array {
  const out = new Float32Array(a.length);
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) out[c * rows + r] = a[r * cols + c];
  return out;
}

/** Layer `l` of a layer-stacked weight tensor, flattened: [rows, cols] of TransformerLens's layout. */
function layerOf(t: Tensor, l: number): Float32Array {
  const per = t.size / cfg.n_layers;
  return t.data.slice(l * per, (l + 1) * per);
}

describe('transposedWeight', () => {
  it("equals the transpose of TransformerLens's W_U, W_Q/W_K/W_V, W_O, W_in, W_out (exactly) and is the model's own array", () => {
    expect(model.transposedWeight('W_U')).toEqual(transpose(model.W_U.data, cfg.d_model, cfg.d_vocab));
    expect(model.transposedWeight('W_U')).toBe(model.transposedWeight('W_U')); // no copy
    for (let l = 0; l < cfg.n_layers; l++) {
      // W_Q [n_layers, n_heads, d_model, d_head] → per layer [d_model, n_heads·d_head], head-major columns.
      for (const name of ['W_Q', 'W_K', 'W_V'] as const) {
        const w = layerOf(model.weight(name), l); // [head, d_model, d_head]
        const lensboard = new Float32Array(cfg.d_model * H); // [d_model, head·d_head]
        for (let h = 0; h < cfg.n_heads; h++) {
          for (let i = 0; i < cfg.d_model; i++) {
            for (let e = 0; e < cfg.d_head; e++) lensboard[i * H + h * cfg.d_head + e] = w[(h * cfg.d_model + i) * cfg.d_head + e];
          }
        }
        expect(model.transposedWeight(name, l), `${name} L${l}`).toEqual(transpose(lensboard, cfg.d_model, H));
      }
      expect(model.transposedWeight('W_O', l)).toEqual(transpose(layerOf(model.W_O, l), H, cfg.d_model));
      expect(model.transposedWeight('W_in', l)).toEqual(transpose(layerOf(model.W_in, l), cfg.d_model, cfg.d_mlp));
      expect(model.transposedWeight('W_out', l)).toEqual(transpose(layerOf(model.W_out, l), cfg.d_mlp, cfg.d_model));
    }
  });

  it('bad names and layers are clear errors', () => {
    expect(() => model.transposedWeight('W_E' as never)).toThrow("transposedWeight: 'W_E' is not one of W_Q, W_K, W_V, W_O, W_in, W_out, W_U");
    expect(() => model.transposedWeight('W_U', 0)).toThrow('transposedWeight: W_U has no layer');
    expect(() => model.transposedWeight('W_O')).toThrow('transposedWeight: W_O needs a layer, an integer in 0…1; got undefined');
    expect(() => model.transposedWeight('W_in', 2)).toThrow('transposedWeight: W_in needs a layer, an integer in 0…1; got 2');
  });

  it("the store's matrix() is the same array and equals the original (Lensboard-layout) weights transposed; vector() the biases", () => {
    const original = tinyWeights(cfg, 5);
    expect(model.weights.matrix('W_U')).toBe(model.transposedWeight('W_U'));
    expect(model.weights.matrix('W_U')).toEqual(transpose(original.W_U, cfg.d_model, cfg.d_vocab));
    expect(model.weights.matrix('W_O', 1)).toEqual(transpose(original.blocks[1].W_O, H, cfg.d_model));
    expect(model.weights.matrix('W_out', 0)).toEqual(transpose(original.blocks[0].W_out, cfg.d_mlp, cfg.d_model));
    expect(model.weights.matrix('W_E')).toEqual(original.W_E);
    expect(model.weights.vector('b_O', 1)).toEqual(original.blocks[1].b_O);
    expect(() => model.weights.matrix('W_O')).toThrow('weights.matrix: W_O needs a layer, an integer in 0…1; got undefined');
  });
});

describe('tokensToResidualDirections', () => {
  it("gives W_U's columns in the tokens' shape (one id, a list, [batch, pos])", () => {
    const W_U = model.W_U; // [d_model, d_vocab]
    const column = (t: number) => Array.from({ length: cfg.d_model }, (_, d) => W_U.data[d * cfg.d_vocab + t]);
    const one = model.tokensToResidualDirections(7);
    expect(one.shape).toEqual([cfg.d_model]);
    expect(Array.from(one.data)).toEqual(column(7));
    const list = model.tokensToResidualDirections([3, 59]);
    expect(list.shape).toEqual([2, cfg.d_model]);
    expect(Array.from(list.data)).toEqual([...column(3), ...column(59)]);
    const grid = model.tokensToResidualDirections([[1, 2, 3], [4, 5, 6]]);
    expect(grid.shape).toEqual([2, 3, cfg.d_model]);
    expect(Array.from(grid.data.subarray(5 * cfg.d_model))).toEqual(column(6));
    expect(() => model.tokensToResidualDirections(60)).toThrow('tokensToResidualDirections: token 60 is not an integer in [0, 60)');
  });
});

describe('logitLens on onnxruntime', () => {
  it('logits in the hundreds: probabilities stay finite and match a float64 softmax (1e-5); topK 0 gives empty tops', async () => {
    const w = cloneWeights(tinyWeights(cfg, 8));
    w.W_U = w.W_U.map((v) => v * 60); // logits of a few hundred: exp overflows float32 without the max shift
    const big = await HookedTransformer.fromWeights(cfg, cloneWeights(w), { threads: 1 });
    try {
      const tokens = tokenBatch(1, 4, cfg.d_vocab, 3);
      const res = await logitLens(big, tokens, { topK: cfg.d_vocab, target: 'next' });
      const final = await big.forward(tokens); // [1, 4, d_vocab]: the final layer's logits
      const L = res.labels.length;
      let maxLogit = 0;
      for (let p = 0; p < 4; p++) {
        const logits = Array.from(final.data.subarray(p * cfg.d_vocab, (p + 1) * cfg.d_vocab));
        const m = Math.max(...logits);
        maxLogit = Math.max(maxLogit, Math.abs(m));
        const z = logits.reduce((a, v) => a + Math.exp(v - m), 0);
        let sum = 0;
        for (let k = 0; k < cfg.d_vocab; k++) {
          const prob = res.topProbs.get(L - 1, 0, p, k);
          expect(Number.isFinite(prob)).toBe(true);
          sum += prob;
          const t = res.topTokens.get(L - 1, 0, p, k);
          expect(prob).toBeCloseTo(Math.exp(logits[t] - m) / z, 5);
        }
        expect(sum).toBeCloseTo(1, 5);
        if (p < 3) {
          const t = tokens[0][p + 1];
          expect(res.target!.prob.get(L - 1, 0, p)).toBeCloseTo(Math.exp(logits[t] - m) / z, 5);
        }
      }
      expect(maxLogit).toBeGreaterThan(100);
      // The reference forward agrees on the final layer's top token.
      const refLogits = referenceForward(big.cfg, big.rawWeights, tokens).logits;
      expect(res.topTokens.get(L - 1, 0, 3, 0)).toBe(refLogits.argmax(-1).get(0, 3));

      const none = await logitLens(big, tokens, { topK: 0, target: 'next' });
      expect(none.topTokens.shape).toEqual([L, 1, 4, 0]);
      expect(none.topProbs.size).toBe(0);
      expect(none.target!.rank.shape).toEqual([L, 1, 4]);
    } finally {
      await big.dispose();
    }
  });
});
