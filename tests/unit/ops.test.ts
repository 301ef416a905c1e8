/**
 * The shared arithmetic (hooks/ops) against independent computations: LayerNorm against the plain
 * definition and its backward pass against finite differences, the activations against the
 * reference forward's own gelu and finite differences, softmax / log-sum-exp against float64 loops
 * and their edge cases, the next-token loss's mask rule by hand, and the transposes against a plain loop.
 */
import { describe, expect, it } from 'vitest';
import type { ActFn } from '../../hooks/config.ts';
import {
  activationDerivative, activationFn, layerNormBackward, layerNormRows, logSumExp, nextTokenLoss, scoresNextToken, softmaxAt, softmaxLine,
  transposeInPlace, transposeInto, batchTransposed,
} from '../../hooks/ops/index.ts';
import { Rng } from '../../hooks/random.ts';
import { gelu } from '../../hooks/reference.ts';
import type { Tensor } from '../../hooks/tensor.ts';

/** Plain-loop transpose: out[c][r] = a[r][c]. */
function naiveTranspose(a: Float32Array, rows: number, cols: number): Float32Array {
  const out = new Float32Array(a.length);
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) out[c * rows + r] = a[r * cols + c];
  return out;
}

describe('layerNormRows', () => {
  const rng = new Rng(3);
  const [rows, d, eps] = [5, 12, 1e-5];
  const x = rng.normals(rows * d, 2, 0.5);
  const w = rng.normals(d, 0.3, 1);
  const b = rng.normals(d, 0.2);

  it('equals (x - mean) / sqrt(var + eps) · w + b per row (1e-6), with rstd and the normalized rows', () => {
    const y = new Float32Array(rows * d);
    const normalized = new Float64Array(rows * d);
    const rstd = new Float64Array(rows);
    layerNormRows(x, rows, d, eps, { w, b }, { y, normalized, rstd });
    for (let r = 0; r < rows; r++) {
      const row = Array.from(x.subarray(r * d, (r + 1) * d));
      const mean = row.reduce((s, v) => s + v, 0) / d;
      const v = row.reduce((s, u) => s + (u - mean) ** 2, 0) / d;
      expect(Math.abs(rstd[r] - 1 / Math.sqrt(v + eps))).toBeLessThan(1e-9);
      row.forEach((u, k) => {
        const n = (u - mean) / Math.sqrt(v + eps);
        expect(Math.abs(normalized[r * d + k] - n)).toBeLessThan(1e-9);
        expect(Math.abs(y[r * d + k] - (n * w[k] + b[k]))).toBeLessThan(1e-6);
      });
    }
    const pre = new Float32Array(rows * d); // without weights: the normalized rows themselves
    layerNormRows(x, rows, d, eps, null, { y: pre });
    pre.forEach((v, i) => expect(Math.abs(v - normalized[i])).toBeLessThan(1e-6));
  });

  it('layerNormBackward equals central finite differences of Σ y·g for x, w and b (2e-3 relative)', () => {
    const g = rng.normals(rows * d, 1);
    const loss = (xx: Float32Array, ww: Float32Array, bb: Float32Array) => {
      const y = new Float64Array(rows * d);
      layerNormRows(xx, rows, d, eps, { w: ww, b: bb }, { y });
      return y.reduce((s, v, i) => s + v * g[i], 0);
    };
    const xn = new Float32Array(rows * d);
    const rstd = new Float32Array(rows);
    layerNormRows(x, rows, d, eps, { w, b }, { normalized: xn, rstd });
    const dw = new Float32Array(d);
    const db = new Float32Array(d);
    const dx = layerNormBackward(g, xn, rstd, rows, d, w, dw, db);
    const h = 1e-3;
    const fd = (arr: Float32Array, i: number) => {
      const keep = arr[i];
      arr[i] = keep + h;
      const up = loss(x, w, b);
      arr[i] = keep - h;
      const down = loss(x, w, b);
      arr[i] = keep;
      return (up - down) / (2 * h);
    };
    for (const [arr, grad] of [[x, dx], [w, dw], [b, db]] as const) {
      for (const i of [0, 7, arr.length - 1]) expect(Math.abs(fd(arr, i) - grad[i])).toBeLessThan(2e-3 * Math.max(1, Math.abs(grad[i])));
    }
  });
});

describe('activations', () => {
  const xs = [-6, -3.2, -1, -0.25, 0, 0.1, 0.7, 2, 5.5];
  for (const actFn of ['gelu_new', 'gelu', 'gelu_fast', 'relu'] as ActFn[]) {
    it(`${actFn}: equals the reference forward's (1e-12) and its derivative equals central finite differences (1e-6)`, () => {
      const f = activationFn(actFn);
      const df = activationDerivative(actFn);
      for (const x of xs) {
        expect(Math.abs(f(x) - gelu(x, actFn))).toBeLessThan(1e-12);
        if (actFn === 'relu' && x === 0) continue; // not differentiable at 0
        const h = 1e-5;
        expect(Math.abs((f(x + h) - f(x - h)) / (2 * h) - df(x))).toBeLessThan(1e-6);
      }
    });
  }
  it('an unknown activation is a clear error', () => {
    expect(() => activationFn('swish' as ActFn)).toThrow("unknown act_fn 'swish'; allowed: gelu_new, gelu, gelu_fast, relu");
  });
});

describe('softmax and log-sum-exp', () => {
  it('equal float64 loops on a strided line; softmaxAt on a contiguous one', () => {
    const x = Float32Array.from([3, 100, -2, 100, 0.5, 100, 7]); // the line at 0, 2, 4, 6
    const line = [3, -2, 0.5, 7];
    const m = Math.max(...line);
    const lse = m + Math.log(line.reduce((s, v) => s + Math.exp(v - m), 0));
    expect(Math.abs(logSumExp(x, 0, 4, 2) - lse)).toBeLessThan(1e-12);
    const out = new Float64Array(7).fill(-9);
    softmaxLine(x, out, 0, 4, 2);
    line.forEach((v, i) => expect(Math.abs(out[2 * i] - Math.exp(v - lse))).toBeLessThan(1e-12));
    expect([out[1], out[3], out[5]]).toEqual([-9, -9, -9]); // only the line is written
    softmaxLine(x, out, 0, 4, 2, true);
    line.forEach((v, i) => expect(Math.abs(out[2 * i] - (v - lse))).toBeLessThan(1e-12));
    expect(Math.abs(softmaxAt(Float32Array.from(line), 3) - Math.exp(7 - lse))).toBeLessThan(1e-12);
  });

  it('a line of -Infinity gives 0 (log: -Infinity), NaN spreads, logits in the hundreds stay finite', () => {
    const out = new Float64Array(3);
    softmaxLine([-Infinity, -Infinity, -Infinity], out, 0, 3);
    expect(Array.from(out)).toEqual([0, 0, 0]);
    softmaxLine([-Infinity, -Infinity, -Infinity], out, 0, 3, 1, true);
    expect(Array.from(out)).toEqual([-Infinity, -Infinity, -Infinity]);
    expect(logSumExp([-Infinity, -Infinity])).toBe(-Infinity);
    expect(logSumExp([1, NaN])).toBeNaN();
    softmaxLine([1, NaN], out, 0, 2);
    expect(Number.isNaN(out[0]) && Number.isNaN(out[1])).toBe(true);
    expect(Math.abs(logSumExp([800, 800]) - (800 + Math.LN2))).toBeLessThan(1e-9);
  });
});

describe('nextTokenLoss', () => {
  const lp = (b: number, p: number) => -(1 + b + p / 10); // log p of the next token
  it('scores (b, p) when mask[b][p] and mask[b][p + 1] are both 1 (every pair without a mask)', () => {
    const mask = [[0, 1, 1, 1], [1, 1, 0, 0]];
    expect([0, 1, 2].map((p) => scoresNextToken(mask, 0, p))).toEqual([false, true, true]);
    expect([0, 1, 2].map((p) => scoresNextToken(mask, 1, p))).toEqual([true, false, false]);
    expect(scoresNextToken(undefined, 1, 2)).toBe(true);
    // mean over the scored pairs (0,1), (0,2), (1,0): 1.1, 1.2, 2.0
    expect(nextTokenLoss(lp, 2, 4, mask, false)).toBeCloseTo((1.1 + 1.2 + 2.0) / 3, 12);
    const per = nextTokenLoss(lp, 2, 4, mask, true) as Tensor;
    expect(per.shape).toEqual([2, 3]);
    expect(Array.from(per.data).map((v) => Math.round(v * 10) / 10)).toEqual([0, 1.1, 1.2, 2, 0, 0]);
    expect(nextTokenLoss(lp, 2, 4, null, false)).toBeCloseTo((1 + 1.1 + 1.2 + 2 + 2.1 + 2.2) / 6, 12);
  });

  it("no scored pair is an error (opened by the caller's name when given)", () => {
    expect(() => nextTokenLoss(lp, 1, 3, [[1, 0, 0]], false)).toThrow(/^the attention mask leaves no \(token, next token\) pair to score$/);
    expect(() => nextTokenLoss(lp, 1, 3, [[1, 0, 0]], false, 'lmCrossEntropyLoss')).toThrow(/^lmCrossEntropyLoss: the attention mask leaves no/);
  });
});

describe('transposes', () => {
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


it('batchTransposed transposes each matrix of a batch (float64 too)', () => {
  const a = Float64Array.from({ length: 3 * 4 * 5 }, (_, i) => i * 0.25);
  const out = batchTransposed(a, 3, 4, 5);
  for (let g = 0; g < 3; g++) {
    expect(Array.from(out.subarray(g * 20, (g + 1) * 20))).toEqual(Array.from(naiveTranspose(Float32Array.from(a.subarray(g * 20, (g + 1) * 20)), 4, 5)));
  }
  expect(out).toBeInstanceOf(Float64Array);
});
