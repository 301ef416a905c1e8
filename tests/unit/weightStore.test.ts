/** The weight store: adoption of TransformerWeights (matrices transposed in place), reads without copies, TransformerLens-shaped stacks, export to Lensboard's layout. */
import { describe, expect, it } from 'vitest';
import { gpt2Config, randomWeights } from '../../hooks/init.ts';
import { FEATURE_MAJOR, WeightStore, type WeightName } from '../../hooks/weightStore.ts';
import type { TransformerWeights } from '../../hooks/weights.ts';

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

/**
 * TransformerLens's shape of a weight from Lensboard's layout, by plain loops (the independent
 * computation stacked() is checked against): W_Q/W_K/W_V [d_model, n_heads·d_head] per layer ->
 * [n_layers, n_heads, d_model, d_head]; the other block weights stacked as they are.
 */
function naiveStacked(w: TransformerWeights, name: WeightName): { shape: number[]; data: number[] } {
  const { n_layers, n_heads, d_head, d_model, d_mlp, d_vocab, n_ctx } = cfg;
  const H = n_heads * d_head;
  if (name === 'W_E') return { shape: [d_vocab, d_model], data: Array.from(w.W_E) };
  if (name === 'W_pos') return { shape: [n_ctx, d_model], data: Array.from(w.W_pos) };
  if (name === 'W_U') return { shape: [d_model, d_vocab], data: Array.from(w.W_U) };
  if (name === 'b_U') return { shape: [d_vocab], data: Array.from(w.b_U) };
  const data: number[] = [];
  for (let l = 0; l < n_layers; l++) {
    const b = w.blocks[l];
    if (name === 'W_Q' || name === 'W_K' || name === 'W_V') {
      for (let h = 0; h < n_heads; h++) for (let i = 0; i < d_model; i++) for (let e = 0; e < d_head; e++) data.push(b[name][i * H + h * d_head + e]);
    } else data.push(...b[name]);
  }
  const per: Record<string, number[]> = {
    W_Q: [n_heads, d_model, d_head], W_K: [n_heads, d_model, d_head], W_V: [n_heads, d_model, d_head], W_O: [n_heads, d_head, d_model],
    b_Q: [n_heads, d_head], b_K: [n_heads, d_head], b_V: [n_heads, d_head], b_O: [d_model], W_in: [d_model, d_mlp], b_in: [d_mlp],
    W_out: [d_mlp, d_model], b_out: [d_model],
  };
  return { shape: [n_layers, ...per[name]], data };
}

describe('WeightStore.adopt', () => {
  it('stores the matrices transposed ([out, in]) in their own memory and everything else as is', () => {
    const w = fresh();
    const copy = structuredClone(w);
    const arrays = new Map<string, Float32Array>();
    w.blocks.forEach((b, l) => MATRICES.forEach((k) => arrays.set(`blocks.${l}.${k}`, b[k])));
    const W_U = w.W_U;
    const store = WeightStore.adopt(cfg, w);
    expect(store.matrix('W_U')).toBe(W_U); // no second copy: the same Float32Array, rearranged
    expect(Array.from(store.matrix('W_U'))).toEqual(Array.from(naiveTranspose(copy.W_U, cfg.d_model, cfg.d_vocab)));
    copy.blocks.forEach((b, l) => {
      for (const k of MATRICES) {
        const a = store.matrix(k, l);
        expect(a).toBe(arrays.get(`blocks.${l}.${k}`));
        expect(store.feeds().get(`blocks.${l}.${k}`)).toBe(a); // the engine feeds the same array
        expect(Array.from(a), `blocks.${l}.${k}`).toEqual(Array.from(naiveTranspose(b[k], ...dims(k))));
      }
      expect(Array.from(store.vector('b_in', l))).toEqual(Array.from(b.b_in));
      expect(Array.from(store.layerNorm('ln2', l)!.w)).toEqual(Array.from(b.ln2!.w));
    });
    expect(Array.from(store.matrix('W_E'))).toEqual(Array.from(copy.W_E));
    expect([...FEATURE_MAJOR].sort()).toEqual(['W_K', 'W_O', 'W_Q', 'W_U', 'W_V', 'W_in', 'W_out']);
  });

  it('empties the handed-over object and refuses it a second time, naming the fix', () => {
    const w = fresh();
    const store = WeightStore.adopt(cfg, w);
    expect(w.W_U.length).toBe(0);
    expect(w.blocks).toEqual([]);
    expect(() => WeightStore.adopt(cfg, w)).toThrow(/handed to a model already.*structuredClone\(weights\)/);
    // A copy from the store builds a second, independent store.
    const second = WeightStore.adopt(cfg, store.toTransformerWeights());
    expect(second.matrix('W_U')).not.toBe(store.matrix('W_U'));
    expect(Array.from(second.matrix('W_U'))).toEqual(Array.from(store.matrix('W_U')));
  });

  it('copies a matrix that shares memory with another tensor before transposing it', () => {
    const w = fresh();
    w.blocks[0].W_K = w.blocks[0].W_Q; // one array for two tensors
    const copy = structuredClone(w);
    const store = WeightStore.adopt(cfg, w);
    const q = store.matrix('W_Q', 0);
    const k = store.matrix('W_K', 0);
    expect(q).not.toBe(k);
    const want = Array.from(naiveTranspose(copy.blocks[0].W_Q, cfg.d_model, cfg.d_model));
    expect(Array.from(q)).toEqual(want);
    expect(Array.from(k)).toEqual(want);
  });

  it('rejects weights of the wrong size with the shape check', () => {
    const w = fresh();
    w.blocks[1].W_in = new Float32Array(3);
    expect(() => WeightStore.adopt(cfg, w)).toThrow(/weights.blocks\[1\].W_in has 3 elements/);
  });
});

describe('WeightStore reads', () => {
  it('toTransformerWeights equals the original weights, as new arrays each call', () => {
    const copy = fresh();
    const store = WeightStore.adopt(cfg, fresh());
    const exported = store.toTransformerWeights();
    expect(structuredClone(exported)).toEqual(copy);
    expect(store.toTransformerWeights().W_E).not.toBe(exported.W_E);
    expect(exported.W_E).not.toBe(store.matrix('W_E'));
  });

  it('every TransformerLens-shaped weight equals the plain-loop stack of the original layout (exactly), as a copy', () => {
    const copy = fresh();
    const store = WeightStore.adopt(cfg, fresh());
    for (const name of ['W_E', 'W_pos', 'W_Q', 'W_K', 'W_V', 'W_O', 'b_Q', 'b_K', 'b_V', 'b_O', 'W_in', 'b_in', 'W_out', 'b_out', 'W_U', 'b_U'] as const) {
      const a = store.stacked(name);
      const want = naiveStacked(copy, name);
      expect(a.shape, name).toEqual(want.shape);
      expect(Array.from(a.data), name).toEqual(want.data);
    }
    expect(store.stacked('W_E').data).not.toBe(store.matrix('W_E'));
  });

  it("stacked(name, layer) is that layer's slice of the stack (exactly)", () => {
    const store = WeightStore.adopt(cfg, fresh());
    for (const name of ['W_Q', 'W_O', 'b_V', 'W_in', 'b_in', 'W_out'] as const) {
      const all = store.stacked(name);
      const per = all.size / cfg.n_layers;
      const one = store.stacked(name, 1);
      expect(one.shape, name).toEqual(all.shape.slice(1));
      expect(Array.from(one.data), name).toEqual(Array.from(all.data.subarray(per, 2 * per)));
    }
    expect(() => store.stacked('W_E', 0)).toThrow('weights.stacked: W_E has no layer');
    expect(() => store.stacked('W_in', 2)).toThrow('weights.stacked: layer must be an integer in 0…1; got 2');
  });

  it('names and layers are checked', () => {
    const store = WeightStore.adopt(cfg, fresh());
    expect(() => store.matrix('W_U', 0)).toThrow('weights.matrix: W_U has no layer');
    expect(() => store.matrix('W_in', 2)).toThrow('weights.matrix: W_in needs a layer, an integer in 0…1; got 2');
    expect(() => store.matrix('b_O' as never, 0)).toThrow(/'b_O' is not one of W_Q/);
    expect(() => store.vector('W_Q' as never, 0)).toThrow(/'W_Q' is not one of b_Q/);
    expect(() => store.stacked('W_X' as never)).toThrow(/unknown weight 'W_X'; known: W_E/);
  });
});
