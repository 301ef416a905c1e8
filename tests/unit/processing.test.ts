/** Tests for TransformerLens-style weight processing (hooks/processing.ts), checked through the reference forward pass. */
import { describe, expect, it } from 'vitest';
import { DEFAULT_PROCESSING, NO_PROCESSING, type HookedTransformerConfig, type ProcessingFlags } from '../../hooks/config.ts';
import type { HookName } from '../../hooks/hookPoints.ts';
import { gpt2Config, randomWeights } from '../../hooks/init.ts';
import { lmCrossEntropyLoss } from '../../hooks/loss.ts';
import { foldLayerNorm, processWeights } from '../../hooks/processing.ts';
import { referenceForward } from '../../hooks/reference.ts';
import type { Tensor } from '../../hooks/tensor.ts';
import type { LayerNormWeights, TransformerWeights } from '../../hooks/weights.ts';

const cfg = gpt2Config({ n_layers: 2, d_model: 16, n_heads: 4, d_vocab: 50, n_ctx: 32 });
const original = randomWeights(cfg, { seed: 3, randomAffine: true, std: 0.3 });
const TOKENS = [[3, 17, 8, 42, 0, 25], [9, 9, 1, 33, 48, 2]];
const D = 16;
const V = 50;

function cloneWeights(w: TransformerWeights): TransformerWeights {
  const ln = (l: LayerNormWeights | null) => (l ? { w: l.w.slice(), b: l.b.slice() } : null);
  return {
    W_E: w.W_E.slice(),
    W_pos: w.W_pos.slice(),
    blocks: w.blocks.map((b) => ({
      ln1: ln(b.ln1), W_Q: b.W_Q.slice(), b_Q: b.b_Q.slice(), W_K: b.W_K.slice(), b_K: b.b_K.slice(),
      W_V: b.W_V.slice(), b_V: b.b_V.slice(), W_O: b.W_O.slice(), b_O: b.b_O.slice(),
      ln2: ln(b.ln2), W_in: b.W_in.slice(), b_in: b.b_in.slice(), W_out: b.W_out.slice(), b_out: b.b_out.slice(),
    })),
    ln_final: ln(w.ln_final),
    W_U: w.W_U.slice(),
    b_U: w.b_U.slice(),
  };
}

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  expect(a.length).toBe(b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

/** Subtracts from each row of `width` entries its mean (float64). */
function centred(a: ArrayLike<number>, width: number): Float64Array {
  const out = new Float64Array(a.length);
  for (let r = 0; r < a.length / width; r++) {
    let s = 0;
    for (let i = 0; i < width; i++) s += a[r * width + i];
    for (let i = 0; i < width; i++) out[r * width + i] = a[r * width + i] - s / width;
  }
  return out;
}

function logSoftmax(t: Tensor): Float64Array {
  const v = t.shape[t.shape.length - 1];
  const out = new Float64Array(t.data.length);
  for (let r = 0; r < t.data.length / v; r++) {
    let max = -Infinity;
    for (let i = 0; i < v; i++) max = Math.max(max, t.data[r * v + i]);
    let s = 0;
    for (let i = 0; i < v; i++) s += Math.exp(t.data[r * v + i] - max);
    for (let i = 0; i < v; i++) out[r * v + i] = t.data[r * v + i] - max - Math.log(s);
  }
  return out;
}

function maxRowMeanAbs(a: ArrayLike<number>, width: number): number {
  let m = 0;
  for (let r = 0; r < a.length / width; r++) {
    let s = 0;
    for (let i = 0; i < width; i++) s += a[r * width + i];
    m = Math.max(m, Math.abs(s / width));
  }
  return m;
}

function maxColMeanAbs(a: ArrayLike<number>, rows: number, cols: number): number {
  let m = 0;
  for (let c = 0; c < cols; c++) {
    let s = 0;
    for (let r = 0; r < rows; r++) s += a[r * cols + c];
    m = Math.max(m, Math.abs(s / rows));
  }
  return m;
}

const base = referenceForward(cfg, original, TOKENS);
const cacheOf = (cache: Map<HookName, Tensor>, n: string) => {
  const t = cache.get(n as HookName);
  if (!t) throw new Error(`not cached: ${n}`);
  return t.data;
};

function processed(flags: Partial<ProcessingFlags>): { cfg: HookedTransformerConfig; weights: TransformerWeights; run: ReturnType<typeof referenceForward> } {
  const out = processWeights(cfg, cloneWeights(original), { ...NO_PROCESSING, ...flags });
  return { ...out, run: referenceForward(out.cfg, out.weights, TOKENS) };
}

const RESID_NAMES = ['hook_embed', 'hook_pos_embed', ...[0, 1].flatMap((l) => ['hook_resid_pre', 'hook_attn_out', 'hook_resid_mid', 'hook_mlp_out', 'hook_resid_post'].map((s) => `blocks.${l}.${s}`))];

describe('each processing step keeps log-probs unchanged', () => {
  const cases: [string, Partial<ProcessingFlags>][] = [
    ['foldLn', { foldLn: true }],
    ['centerWritingWeights', { centerWritingWeights: true }],
    ['centerUnembed', { centerUnembed: true }],
    ['foldValueBiases', { foldValueBiases: true }],
    ['all (DEFAULT_PROCESSING)', DEFAULT_PROCESSING],
  ];
  for (const [label, flags] of cases) {
    it(`${label}: log_softmax(logits) within 1e-4, loss within 1e-5`, () => {
      const { run } = processed(flags);
      expect(maxAbsDiff(logSoftmax(run.logits), logSoftmax(base.logits))).toBeLessThan(1e-4);
      expect(lmCrossEntropyLoss(run.logits, TOKENS)).toBeCloseTo(lmCrossEntropyLoss(base.logits, TOKENS), 5);
    });
  }

  it('all steps with a left-padded batch: real positions unchanged within 1e-4', () => {
    const toks = [[3, 17, 8, 42, 0, 25], [49, 49, 1, 33, 48, 2]];
    const mask = [[1, 1, 1, 1, 1, 1], [0, 0, 1, 1, 1, 1]];
    const before = logSoftmax(referenceForward(cfg, original, toks, { attentionMask: mask }).logits);
    const p = processWeights(cfg, cloneWeights(original), DEFAULT_PROCESSING);
    const after = logSoftmax(referenceForward(p.cfg, p.weights, toks, { attentionMask: mask }).logits);
    for (let b = 0; b < 2; b++) for (let q = 0; q < 6; q++) {
      if (mask[b][q] === 0) continue;
      const o = (b * 6 + q) * V;
      expect(maxAbsDiff(after.subarray(o, o + V), before.subarray(o, o + V))).toBeLessThan(1e-4);
    }
  });
});

describe('foldLayerNorm', () => {
  const { cfg: c, weights: w, run } = processed({ foldLn: true });

  it('nulls every LayerNorm, returns an LNPre cfg, leaves the input cfg alone', () => {
    expect(c.normalization_type).toBe('LNPre');
    expect(cfg.normalization_type).toBe('LN');
    expect(w.ln_final).toBeNull();
    for (const b of w.blocks) {
      expect(b.ln1).toBeNull();
      expect(b.ln2).toBeNull();
    }
  });

  it('logits, residual streams, scales, q/k/v and patterns are unchanged', () => {
    expect(maxAbsDiff(run.logits.data, base.logits.data)).toBeLessThan(1e-4);
    for (const n of [...RESID_NAMES, 'blocks.1.ln2.hook_scale', 'ln_final.hook_scale']) {
      expect(maxAbsDiff(cacheOf(run.cache, n), cacheOf(base.cache, n))).toBeLessThan(1e-5);
    }
    for (const n of ['attn.hook_q', 'attn.hook_k', 'attn.hook_v', 'attn.hook_pattern', 'mlp.hook_pre']) {
      expect(maxAbsDiff(cacheOf(run.cache, `blocks.1.${n}`), cacheOf(base.cache, `blocks.1.${n}`))).toBeLessThan(1e-4);
    }
  });

  it('hook_normalized becomes the pre-affine value: before = after · w + b', () => {
    const { w: g, b } = original.blocks[0].ln1!;
    const after = cacheOf(run.cache, 'blocks.0.ln1.hook_normalized'), before = cacheOf(base.cache, 'blocks.0.ln1.hook_normalized');
    expect(maxAbsDiff(before, after.map((v, i) => v * g[i % D] + b[i % D]))).toBeLessThan(1e-5);
  });

  it('hand check: b_Q += ln1.b @ W_Q, W_Q = centred(ln1.w ⊙ W_Q), b_U += ln_final.b @ W_U', () => {
    const ob = original.blocks[1];
    const H = 16;
    for (const j of [0, 5, 15]) {
      let bq = ob.b_Q[j];
      for (let d = 0; d < D; d++) bq += ob.W_Q[d * H + j] * ob.ln1!.b[d];
      expect(w.blocks[1].b_Q[j]).toBeCloseTo(bq, 5);
      const scaled = Array.from({ length: D }, (_, d) => ob.W_Q[d * H + j] * ob.ln1!.w[d]);
      const mean = scaled.reduce((a, v) => a + v, 0) / D;
      for (let d = 0; d < D; d++) expect(w.blocks[1].W_Q[d * H + j]).toBeCloseTo(scaled[d] - mean, 6);
    }
    for (const v of [0, 49]) {
      let bu = original.b_U[v];
      for (let d = 0; d < D; d++) bu += original.W_U[d * V + v] * original.ln_final!.b[d];
      expect(w.b_U[v]).toBeCloseTo(bu, 5);
    }
    expect(maxColMeanAbs(w.W_U, D, V)).toBeLessThan(1e-6);
    expect(maxColMeanAbs(w.blocks[0].W_in, D, cfg.d_mlp)).toBeLessThan(1e-6);
    expect(maxColMeanAbs(w.blocks[0].W_V, D, 16)).toBeLessThan(1e-6);
  });

  it('refuses to fold twice', () => {
    expect(() => foldLayerNorm(c, w)).toThrow(/already folded/);
    expect(() => foldLayerNorm(cfg, w)).toThrow(/already folded/);
  });
});

describe('centerWritingWeights', () => {
  const { weights: w, run } = processed({ centerWritingWeights: true });

  it('writing weights have zero mean along d_model', () => {
    expect(maxRowMeanAbs(w.W_E, D)).toBeLessThan(1e-7);
    expect(maxRowMeanAbs(w.W_pos, D)).toBeLessThan(1e-7);
    for (const b of w.blocks) {
      expect(maxRowMeanAbs(b.W_O, D)).toBeLessThan(1e-7);
      expect(maxRowMeanAbs(b.W_out, D)).toBeLessThan(1e-7);
      expect(maxRowMeanAbs(b.b_O, D)).toBeLessThan(1e-7);
      expect(maxRowMeanAbs(b.b_out, D)).toBeLessThan(1e-7);
    }
  });

  it('residual streams change only by their per-position mean; logits and scales unchanged', () => {
    for (const n of RESID_NAMES) {
      expect(maxAbsDiff(cacheOf(run.cache, n), centred(cacheOf(base.cache, n), D))).toBeLessThan(1e-5);
    }
    expect(maxAbsDiff(cacheOf(run.cache, 'blocks.1.ln1.hook_scale'), cacheOf(base.cache, 'blocks.1.ln1.hook_scale'))).toBeLessThan(1e-5);
    expect(maxAbsDiff(run.logits.data, base.logits.data)).toBeLessThan(1e-4);
  });
});

describe('centerUnembed', () => {
  const { weights: w, run } = processed({ centerUnembed: true });

  it('W_U rows and b_U have zero mean over d_vocab', () => {
    expect(maxRowMeanAbs(w.W_U, V)).toBeLessThan(1e-7);
    expect(maxRowMeanAbs(w.b_U, V)).toBeLessThan(1e-7);
  });

  it('logits become logits minus their mean over d_vocab; activations are untouched', () => {
    expect(maxAbsDiff(run.logits.data, centred(base.logits.data, V))).toBeLessThan(1e-5);
    expect(Array.from(cacheOf(run.cache, 'ln_final.hook_normalized'))).toEqual(Array.from(cacheOf(base.cache, 'ln_final.hook_normalized')));
  });
});

describe('foldValueBiases', () => {
  const { weights: w, run } = processed({ foldValueBiases: true });

  it('b_V becomes 0 and b_O absorbs b_V @ W_O', () => {
    for (let l = 0; l < 2; l++) {
      expect(Array.from(w.blocks[l].b_V).every((x) => x === 0)).toBe(true);
      const ob = original.blocks[l];
      for (const d of [0, 7]) {
        let s = ob.b_O[d];
        for (let j = 0; j < 16; j++) s += ob.b_V[j] * ob.W_O[j * D + d];
        expect(w.blocks[l].b_O[d]).toBeCloseTo(s, 6);
      }
    }
  });

  it('v and z shift by -b_V, attn_out and logits unchanged', () => {
    for (let l = 0; l < 2; l++) {
      const bV = original.blocks[l].b_V;
      for (const n of ['attn.hook_v', 'attn.hook_z']) {
        const before = cacheOf(base.cache, `blocks.${l}.${n}`);
        expect(maxAbsDiff(cacheOf(run.cache, `blocks.${l}.${n}`), before.map((x, i) => x - bV[i % 16]))).toBeLessThan(1e-5);
      }
      expect(maxAbsDiff(cacheOf(run.cache, `blocks.${l}.hook_attn_out`), cacheOf(base.cache, `blocks.${l}.hook_attn_out`))).toBeLessThan(1e-5);
    }
    expect(maxAbsDiff(run.logits.data, base.logits.data)).toBeLessThan(1e-4);
  });
});

describe('processWeights', () => {
  it('applies everything in place and returns the same weights object', () => {
    const w = cloneWeights(original);
    const out = processWeights(cfg, w, DEFAULT_PROCESSING);
    expect(out.weights).toBe(w);
    expect(out.cfg.normalization_type).toBe('LNPre');
    expect(w.blocks[0].ln1).toBeNull();
    expect(maxRowMeanAbs(w.W_U, V)).toBeLessThan(1e-7);
    expect(maxColMeanAbs(w.W_U, D, V)).toBeLessThan(1e-6);
    expect(maxRowMeanAbs(w.W_E, D)).toBeLessThan(1e-7);
    for (const b of w.blocks) {
      expect(Array.from(b.b_V).every((x) => x === 0)).toBe(true);
      expect(maxRowMeanAbs(b.b_O, D)).toBeLessThan(1e-7);
      expect(maxColMeanAbs(b.W_Q, D, 16)).toBeLessThan(1e-6);
    }
  });

  it('with no flags changes nothing', () => {
    const w = cloneWeights(original);
    const out = processWeights(cfg, w, NO_PROCESSING);
    expect(out.cfg.normalization_type).toBe('LN');
    expect(Array.from(w.W_U)).toEqual(Array.from(original.W_U));
    expect(Array.from(w.blocks[1].b_O)).toEqual(Array.from(original.blocks[1].b_O));
  });

  it('refuses weights whose tensors share memory', () => {
    const w = cloneWeights(original);
    w.blocks[1].b_out = w.blocks[0].b_out;
    expect(() => processWeights(cfg, w, DEFAULT_PROCESSING)).toThrow(/blocks\[0\]\.b_out and blocks\[1\]\.b_out share memory/);
  });
});
