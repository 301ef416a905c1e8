/** The engine's feature-major copy of the weights: in-place transposition, adoption of TransformerWeights, Lensboard-layout views, stacked getters. */
import { describe, expect, it } from 'vitest';
import { adoptWeights, FEATURE_MAJOR, lensboardView } from '../../../hooks/engine/featureMajor.ts';
import { transposeInPlace, transposeInto } from '../../../hooks/ops/index.ts';
import { gpt2Config, randomWeights } from '../../../hooks/init.ts';
import { stackedWeight } from '../../../hooks/stackedWeights.ts';
import type { TransformerWeights } from '../../../hooks/weights.ts';

const cfg = gpt2Config({ model_name: 'tiny', n_layers: 2, d_model: 12, n_heads: 3, d_mlp: 20, d_vocab: 17, n_ctx: 8 }); // d_head 4
const fresh = (seed = 4): TransformerWeights => randomWeights(cfg, { seed, randomAffine: true, std: 0.5 });

/** Plain-loop transpose: out[c][r] = a[r][c]. */
function naiveTranspose(a: Float32Array, rows: number, cols: number): Float32Array {
  const out = new Float32Array(a.length);
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) out[c * rows + r] = a[r * cols + c];
  return out;
}

const MATRICES = ['W_Q', 'W_K', 'W_V', 'W_O', 'W_in', 'W_out'] as const;
const dims = (key: string): [number, number] => {
  const H = cfg.n_heads * cfg.d_head;
  return ({ W_Q: [cfg.d_model, H], W_K: [cfg.d_model, H], W_V: [cfg.d_model, H], W_O: [H, cfg.d_model], W_in: [cfg.d_model, cfg.d_mlp], W_out: [cfg.d_mlp, cfg.d_model], W_U: [cfg.d_model, cfg.d_vocab] } as Record<string, [number, number]>)[key];
};

describe('transposeInPlace', () => {
  it('equals a plain-loop transpose for every scratch size, including prime shapes (one-float segments)', () => {
    for (const [rows, cols] of [[1, 7], [7, 1], [6, 10], [13, 7], [12, 17], [64, 31]]) {
      for (const scratch of [1, cols, 2 * cols, 5 * cols, rows * cols]) {
        const a = Float32Array.from({ length: rows * cols }, (_, i) => i * 0.5 - 3);
        const want = naiveTranspose(a, rows, cols);
        expect(Array.from(transposeInPlace(a, rows, cols, scratch)), `[${rows}, ${cols}] scratch ${scratch}`).toEqual(Array.from(want));
      }
    }
  });

  it('uses a given scratch buffer when it is large enough, and is right either way', () => {
    const a = Float32Array.from({ length: 12 * 17 }, (_, i) => i);
    const want = Array.from(naiveTranspose(a, 12, 17));
    const buffer = new Float32Array(4 * 17).fill(-1);
    expect(Array.from(transposeInPlace(a.slice(), 12, 17, 4 * 17, buffer))).toEqual(want);
    expect(buffer.some((v) => v !== -1)).toBe(true); // the slabs went through it
    const small = new Float32Array(3).fill(-1);
    expect(Array.from(transposeInPlace(a.slice(), 12, 17, 4 * 17, small))).toEqual(want);
    expect(Array.from(small)).toEqual([-1, -1, -1]); // too small: not used
  });

  it('transposeInto equals the plain loop on a shape larger than its tiles', () => {
    const a = Float32Array.from({ length: 70 * 45 }, (_, i) => Math.sin(i));
    expect(Array.from(transposeInto(a, 70, 45, new Float32Array(a.length)))).toEqual(Array.from(naiveTranspose(a, 70, 45)));
  });

  it('rejects an array that is not rows × cols', () => {
    expect(() => transposeInPlace(new Float32Array(5), 2, 3)).toThrow(/transposeInPlace of 5 floats as \[2, 3\]/);
  });
});

describe('adoptWeights', () => {
  it('stores the matrices transposed ([out, in]) in their own memory and everything else as is', () => {
    const w = fresh();
    const copy = structuredClone(w);
    const arrays = new Map<string, Float32Array>();
    w.blocks.forEach((b, l) => MATRICES.forEach((k) => arrays.set(`blocks.${l}.${k}`, b[k])));
    const W_U = w.W_U;
    const fm = adoptWeights(cfg, w);
    expect(fm.arrays.get('W_U')).toBe(W_U); // no second copy: the same Float32Array, rearranged
    expect(Array.from(fm.arrays.get('W_U')!)).toEqual(Array.from(naiveTranspose(copy.W_U, cfg.d_model, cfg.d_vocab)));
    copy.blocks.forEach((b, l) => {
      for (const k of MATRICES) {
        const a = fm.arrays.get(`blocks.${l}.${k}`)!;
        expect(a).toBe(arrays.get(`blocks.${l}.${k}`));
        expect(Array.from(a), `blocks.${l}.${k}`).toEqual(Array.from(naiveTranspose(b[k], ...dims(k))));
      }
      expect(Array.from(fm.arrays.get(`blocks.${l}.b_in`)!)).toEqual(Array.from(b.b_in));
      expect(Array.from(fm.arrays.get(`blocks.${l}.ln2.w`)!)).toEqual(Array.from(b.ln2!.w));
    });
    expect(Array.from(fm.arrays.get('W_E')!)).toEqual(Array.from(copy.W_E));
    expect([...FEATURE_MAJOR].sort()).toEqual(['W_K', 'W_O', 'W_Q', 'W_U', 'W_V', 'W_in', 'W_out']);
  });

  it("leaves the handed-over object reading Lensboard's layout, detached: each tensor a copy made on first read, then kept", () => {
    const w = fresh();
    const copy = structuredClone(w);
    const fm = adoptWeights(cfg, w);
    const first = w.blocks[1].W_out;
    expect(Array.from(first)).toEqual(Array.from(copy.blocks[1].W_out));
    expect(w.blocks[1].W_out).toBe(first); // kept, not transposed again
    expect(first).not.toBe(fm.arrays.get('blocks.1.W_out')); // a copy: writing into it does not reach the model
    first[0] += 1;
    expect(fm.arrays.get('blocks.1.W_out')![0]).toBe(naiveTranspose(copy.blocks[1].W_out, cfg.d_mlp, cfg.d_model)[0]);
    expect(Array.from(w.W_U)).toEqual(Array.from(copy.W_U));
    const bias = w.blocks[0].b_in; // vectors are detached copies too
    bias[0] += 5;
    expect(fm.arrays.get('blocks.0.b_in')![0]).toBe(copy.blocks[0].b_in[0]);
    expect(w.blocks[0].b_in[0]).toBe(Math.fround(copy.blocks[0].b_in[0] + 5));
    const replacement = new Float32Array(first.length);
    w.blocks[0].W_Q = replacement; // assigning replaces the view
    expect(w.blocks[0].W_Q).toBe(replacement);
    expect(structuredClone(w).blocks[1].W_in).toEqual(copy.blocks[1].W_in); // structuredClone reads the views
  });

  it('copies a matrix that shares memory with another tensor before transposing it', () => {
    const w = fresh();
    w.blocks[0].W_K = w.blocks[0].W_Q; // one array for two tensors
    const copy = structuredClone(w);
    const fm = adoptWeights(cfg, w);
    const q = fm.arrays.get('blocks.0.W_Q')!;
    const k = fm.arrays.get('blocks.0.W_K')!;
    expect(q).not.toBe(k);
    const want = Array.from(naiveTranspose(copy.blocks[0].W_Q, cfg.d_model, cfg.d_model));
    expect(Array.from(q)).toEqual(want);
    expect(Array.from(k)).toEqual(want);
  });

  it('adopting an already adopted object takes fresh copies (the first model keeps its own)', () => {
    const w = fresh();
    const copy = structuredClone(w);
    const first = adoptWeights(cfg, w);
    const second = adoptWeights(cfg, w);
    expect(second.arrays.get('W_U')).not.toBe(first.arrays.get('W_U'));
    expect(Array.from(second.arrays.get('W_U')!)).toEqual(Array.from(first.arrays.get('W_U')!));
    expect(Array.from(w.blocks[1].W_O)).toEqual(Array.from(copy.blocks[1].W_O));
  });

  it('rejects weights of the wrong size with the shape check', () => {
    const w = fresh();
    w.blocks[1].W_in = new Float32Array(3);
    expect(() => adoptWeights(cfg, w)).toThrow(/weights.blocks\[1\].W_in has 3 elements/);
  });
});

describe('lensboardView and stackedWeight on the feature-major copy', () => {
  it('a view equals the original weights; each call makes a fresh object', () => {
    const copy = fresh();
    const fm = adoptWeights(cfg, fresh());
    const view = lensboardView(cfg, fm);
    expect(structuredClone(view)).toEqual(copy);
    expect(lensboardView(cfg, fm)).not.toBe(view);
    expect(view.W_E).toBe(fm.arrays.get('W_E')); // vectors and embeddings are the engine's own arrays
  });

  it('every TransformerLens-shaped weight equals the one stacked from the original layout', () => {
    const copy = fresh();
    const fm = adoptWeights(cfg, fresh());
    for (const name of ['W_E', 'W_pos', 'W_Q', 'W_K', 'W_V', 'W_O', 'b_Q', 'b_K', 'b_V', 'b_O', 'W_in', 'b_in', 'W_out', 'b_out', 'W_U', 'b_U']) {
      const a = stackedWeight(cfg, fm, name);
      const b = stackedWeight(cfg, copy, name);
      expect(a.shape, name).toEqual(b.shape);
      expect(Array.from(a.data), name).toEqual(Array.from(b.data));
    }
  });
});
