/** Unit tests for hooks/tensor.ts: every operation against hand-computed values or a plain-loop reference. */
import { describe, expect, it } from 'vitest';
import { Tensor } from '../../hooks/tensor.ts';
import { Rng } from '../../hooks/random.ts';

/** Asserts shape exactly and values within `atol` (NaN must match NaN, infinities must match exactly). */
function expectTensor(t: Tensor, shape: number[], values: number[], atol = 1e-6): void {
  expect(t.shape).toEqual(shape);
  expect(t.data.length).toBe(values.length);
  values.forEach((v, i) => {
    const got = t.data[i];
    if (Number.isNaN(v)) expect(got, `element ${i}`).toBeNaN();
    else if (!Number.isFinite(v)) expect(got, `element ${i}`).toBe(v);
    else expect(Math.abs(got - v), `element ${i}: got ${got}, want ${v}`).toBeLessThanOrEqual(atol);
  });
}

const m23 = () => Tensor.from([[1, 2, 3], [4, 5, 6]]); // [2, 3]
/** arange(24) as [2, 3, 4]: element [i][j][k] = 12i + 4j + k. */
const cube = () => Tensor.arange(24).reshape([2, 3, 4]);

function randn(rng: Rng, shape: number[]): Tensor {
  return new Tensor(rng.normals(shape.reduce((a, b) => a * b, 1)), shape);
}

describe('construction', () => {
  it('keeps the original constructor, zeros, ndim and size', () => {
    const z = Tensor.zeros([2, 3]);
    expectTensor(z, [2, 3], [0, 0, 0, 0, 0, 0]);
    expect(z.ndim).toBe(2);
    expect(z.size).toBe(6);
    expect(() => new Tensor(new Float32Array(5), [2, 3])).toThrow('data has 5 elements but shape [2, 3] needs 6');
  });

  it('from infers shapes, including 0-D, empty and typed-array leaves', () => {
    expectTensor(m23(), [2, 3], [1, 2, 3, 4, 5, 6]);
    expectTensor(Tensor.from([[[1], [2]], [[3], [4]]]), [2, 2, 1], [1, 2, 3, 4]);
    const s = Tensor.from(7);
    expect(s.shape).toEqual([]);
    expect(s.item()).toBe(7);
    expectTensor(Tensor.from([]), [0], []);
    expectTensor(Tensor.from([[], []]), [2, 0], []);
    expectTensor(Tensor.from([Float32Array.of(1, 2), Float32Array.of(3, 4)] as unknown as number[][]), [2, 2], [1, 2, 3, 4]);
    expect(Tensor.from([0.1]).data[0]).toBe(Math.fround(0.1));
    expectTensor(Tensor.from([Infinity, -Infinity, NaN]), [3], [Infinity, -Infinity, NaN]);
  });

  it('from rejects ragged and non-numeric input, naming where', () => {
    expect(() => Tensor.from([[1, 2], [3]])).toThrow('ragged input at [1]: expected an array of length 2 (like the first one), got length 1');
    expect(() => Tensor.from([[1, 2], 3] as unknown as number[][])).toThrow('ragged input at [1]: expected an array of length 2, got number');
    expect(() => Tensor.from([1, [2]] as unknown as number[])).toThrow('ragged input at [1]: expected a number, got an array');
    expect(() => Tensor.from([[[1, 2], [3, 4]], [[5, 6], [7]]])).toThrow('ragged input at [1, 1]');
    expect(() => Tensor.from([1, 'x'] as unknown as number[])).toThrow('bad element at [1]: expected a number, got string');
  });

  it('full, ones, arange', () => {
    expectTensor(Tensor.full([2, 2], 2.5), [2, 2], [2.5, 2.5, 2.5, 2.5]);
    expectTensor(Tensor.ones([3]), [3], [1, 1, 1]);
    expectTensor(Tensor.ones([]), [], [1]);
    expectTensor(Tensor.arange(4), [4], [0, 1, 2, 3]);
    expectTensor(Tensor.arange(0), [0], []);
    expect(() => Tensor.full([2, -1], 0)).toThrow('shape [2, -1] is invalid (entries must be non-negative integers)');
    expect(() => Tensor.ones([1.5])).toThrow('Tensor.ones: shape [1.5] is invalid');
    expect(() => Tensor.arange(-1)).toThrow('n must be a non-negative integer, got -1');
  });

  it('stack along new dims, negative dims included', () => {
    const a = Tensor.from([[1, 2], [3, 4]]);
    const b = Tensor.from([[5, 6], [7, 8]]);
    expectTensor(Tensor.stack([a, b]), [2, 2, 2], [1, 2, 3, 4, 5, 6, 7, 8]);
    expectTensor(Tensor.stack([a, b], 1), [2, 2, 2], [1, 2, 5, 6, 3, 4, 7, 8]);
    expectTensor(Tensor.stack([a, b], -1), [2, 2, 2], [1, 5, 2, 6, 3, 7, 4, 8]);
    expectTensor(Tensor.stack([Tensor.from(1), Tensor.from(2)]), [2], [1, 2]);
    expect(() => Tensor.stack([a, Tensor.zeros([2, 3])])).toThrow('same shape, got [2, 2] and [2, 3]');
    expect(() => Tensor.stack([a, b], 3)).toThrow('dim 3 is out of range for inserting a dim into a 2-D tensor (allowed -3..2)');
    expect(() => Tensor.stack([])).toThrow('at least one tensor');
  });

  it('cat along existing dims', () => {
    const a = Tensor.from([[1, 2], [3, 4]]);
    const b = Tensor.from([[5], [6]]);
    expectTensor(Tensor.cat([a, b], 1), [2, 3], [1, 2, 5, 3, 4, 6]);
    expectTensor(Tensor.cat([a, b], -1), [2, 3], [1, 2, 5, 3, 4, 6]);
    expectTensor(Tensor.cat([a, Tensor.from([[9, 10]])], 0), [3, 2], [1, 2, 3, 4, 9, 10]);
    expect(() => Tensor.cat([a, b], 0)).toThrow('shapes [2, 2] and [2, 1] must match in every dim except dim 0');
    expect(() => Tensor.cat([a, Tensor.zeros([2])], 0)).toThrow('shapes [2, 2] and [2]');
    expect(() => Tensor.cat([a], -3)).toThrow('dim -3 is out of range for a 2-D tensor (allowed -2..1)');
  });
});

describe('element access', () => {
  it('get and set with negative indices', () => {
    const t = m23();
    expect(t.get(1, 2)).toBe(6);
    expect(t.get(-1, -3)).toBe(4);
    expect(t.get(0, -1)).toBe(3);
    t.set(42, -2, 1);
    expect(t.toArray()).toEqual([[1, 42, 3], [4, 5, 6]]);
    expect(Tensor.from(3).get()).toBe(3);
  });

  it('get/set/item errors name the allowed range', () => {
    const t = m23();
    expect(() => t.get(0, 3)).toThrow('Tensor.get: index 3 is out of range for dim 1 of size 3 (allowed -3..2)');
    expect(() => t.set(1, -3, 0)).toThrow('Tensor.set: index -3 is out of range for dim 0 of size 2 (allowed -2..1)');
    expect(() => t.get(0)).toThrow('got 1 indices for a 2-D tensor of shape [2, 3]');
    expect(() => t.get(0.5, 0)).toThrow('index 0.5 is out of range');
    expect(() => t.item()).toThrow('needs exactly 1 element, shape [2, 3] has 6');
    expect(Tensor.from([[5]]).item()).toBe(5);
  });
});

describe('indexing and shape', () => {
  it('index removes the dim', () => {
    expectTensor(cube().index(1, 2), [2, 4], [8, 9, 10, 11, 20, 21, 22, 23]);
    expectTensor(cube().index(-2, -1), [2, 4], [8, 9, 10, 11, 20, 21, 22, 23]);
    expectTensor(cube().index(0, 1).index(-1, 0), [3], [12, 16, 20]);
    expectTensor(Tensor.from([7, 8]).index(0, -1), [], [8]);
    expect(() => cube().index(3, 0)).toThrow('dim 3 is out of range for a 3-D tensor (allowed -3..2)');
    expect(() => cube().index(1, 3)).toThrow('index 3 is out of range for dim 1 of size 3 (allowed -3..2)');
  });

  it('select gathers (negatives and repeats allowed)', () => {
    expectTensor(m23().select(1, [2, 0, -1]), [2, 3], [3, 1, 3, 6, 4, 6]);
    expectTensor(m23().select(0, [1]), [1, 3], [4, 5, 6]);
    expectTensor(m23().select(0, []), [0, 3], []);
    expect(() => m23().select(0, [2])).toThrow('Tensor.select: index 2 is out of range for dim 0 of size 2 (allowed -2..1)');
  });

  it('slice is Python-style and clamps', () => {
    const r = Tensor.arange(10);
    expectTensor(r.slice(0, 2, 5), [3], [2, 3, 4]);
    expectTensor(r.slice(0, -3), [3], [7, 8, 9]);
    expectTensor(r.slice(0, 8, -1), [1], [8]);
    expectTensor(r.slice(0, -100, 100), [10], [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    expectTensor(r.slice(0, 5, 2), [0], []);
    expectTensor(r.slice(0, 12), [0], []);
    expectTensor(m23().slice(1, 1), [2, 2], [2, 3, 5, 6]);
    expectTensor(cube().slice(-1, 1, 3).slice(1, 0, 1), [2, 1, 2], [1, 2, 13, 14]);
    expect(() => r.slice(1, 0)).toThrow('dim 1 is out of range for a 1-D tensor (allowed -1..0)');
  });

  it('reshape with -1 copies data', () => {
    const t = m23();
    const r = t.reshape([3, -1]);
    expectTensor(r, [3, 2], [1, 2, 3, 4, 5, 6]);
    r.set(100, 0, 0);
    expect(t.get(0, 0)).toBe(1);
    expectTensor(t.reshape([6]), [6], [1, 2, 3, 4, 5, 6]);
    expectTensor(Tensor.from([5]).reshape([]), [], [5]);
    expect(() => t.reshape([4, -1])).toThrow('cannot reshape [2, 3] (6 elements) into [4, -1]');
    expect(() => t.reshape([4, 2])).toThrow('cannot reshape [2, 3] (6 elements) into [4, 2]');
    expect(() => t.reshape([-1, -1])).toThrow('at most one -1');
  });

  it('permute and transpose', () => {
    const c = cube();
    const p = c.permute(2, 0, 1); // [4, 2, 3]: p[k][i][j] = c[i][j][k]
    expect(p.shape).toEqual([4, 2, 3]);
    expect(p.get(1, 0, 2)).toBe(9); // c[0][2][1] = 8 + 1
    expect(p.get(3, 1, 0)).toBe(15); // c[1][0][3] = 12 + 3
    for (let i = 0; i < 2; i++) for (let j = 0; j < 3; j++) for (let k = 0; k < 4; k++) expect(p.get(k, i, j)).toBe(12 * i + 4 * j + k);
    expect(c.permute(-1, 0, 1).toArray()).toEqual(p.toArray());
    expectTensor(m23().transpose(0, 1), [3, 2], [1, 4, 2, 5, 3, 6]);
    expectTensor(m23().transpose(-1, -2), [3, 2], [1, 4, 2, 5, 3, 6]);
    expect(c.transpose(0, 2).get(3, 1, 0)).toBe(7);
    expect(() => c.permute(0, 1)).toThrow('got 2 dims for a 3-D tensor of shape [2, 3, 4]');
    expect(() => c.permute(0, 1, -3)).toThrow('dims [0, 1, -3] repeat a dim');
    expect(() => c.transpose(0, 3)).toThrow('dim 3 is out of range for a 3-D tensor (allowed -3..2)');
  });

  it('squeeze, unsqueeze, flatten, clone', () => {
    const t = Tensor.from([[[1], [2], [3]]]); // [1, 3, 1]
    expectTensor(t.squeeze(), [3], [1, 2, 3]);
    expectTensor(t.squeeze(0), [3, 1], [1, 2, 3]);
    expectTensor(t.squeeze(-1), [1, 3], [1, 2, 3]);
    expect(() => t.squeeze(1)).toThrow('dim 1 of shape [1, 3, 1] has size 3, only size-1 dims can be squeezed');
    expectTensor(m23().unsqueeze(0), [1, 2, 3], [1, 2, 3, 4, 5, 6]);
    expectTensor(m23().unsqueeze(-1), [2, 3, 1], [1, 2, 3, 4, 5, 6]);
    expectTensor(m23().unsqueeze(1), [2, 1, 3], [1, 2, 3, 4, 5, 6]);
    expect(() => m23().unsqueeze(3)).toThrow('allowed -3..2');
    expectTensor(cube().flatten().slice(0, 20), [4], [20, 21, 22, 23]);
    const a = m23();
    const b = a.clone();
    b.set(9, 0, 0);
    expect(a.get(0, 0)).toBe(1);
    expect(b.shape).toEqual([2, 3]);
  });
});

describe('elementwise with broadcasting', () => {
  it('same-shape and scalar arithmetic', () => {
    const a = m23();
    const b = Tensor.from([[6, 5, 4], [3, 2, 1]]);
    expectTensor(a.add(b), [2, 3], [7, 7, 7, 7, 7, 7]);
    expectTensor(a.sub(b), [2, 3], [-5, -3, -1, 1, 3, 5]);
    expectTensor(a.mul(b), [2, 3], [6, 10, 12, 12, 10, 6]);
    expectTensor(a.div(b), [2, 3], [1 / 6, 0.4, 0.75, 4 / 3, 2.5, 6]);
    expectTensor(a.add(1), [2, 3], [2, 3, 4, 5, 6, 7]);
    expectTensor(a.sub(0.5), [2, 3], [0.5, 1.5, 2.5, 3.5, 4.5, 5.5]);
    expectTensor(a.mul(-2), [2, 3], [-2, -4, -6, -8, -10, -12]);
    expectTensor(a.div(2), [2, 3], [0.5, 1, 1.5, 2, 2.5, 3]);
    expectTensor(Tensor.from([1, -1, 0]).div(0), [3], [Infinity, -Infinity, NaN]);
  });

  it('broadcasts like NumPy', () => {
    expectTensor(m23().add(Tensor.from([10, 20, 30])), [2, 3], [11, 22, 33, 14, 25, 36]);
    expectTensor(m23().sub(Tensor.from([[1], [4]])), [2, 3], [0, 1, 2, 0, 1, 2]);
    // [2, 1] + [1, 3] → outer sum [2, 3]
    expectTensor(Tensor.from([[0], [10]]).add(Tensor.from([[1, 2, 3]])), [2, 3], [1, 2, 3, 11, 12, 13]);
    // [2, 1, 2] * [3, 1] → [2, 3, 2]
    const x = Tensor.from([[[1, 2]], [[3, 4]]]);
    const y = Tensor.from([[1], [10], [100]]);
    expectTensor(x.mul(y), [2, 3, 2], [1, 2, 10, 20, 100, 200, 3, 4, 30, 40, 300, 400]);
    expectTensor(y.mul(x), [2, 3, 2], [1, 2, 10, 20, 100, 200, 3, 4, 30, 40, 300, 400]);
    // 0-D on either side
    expectTensor(Tensor.from(2).div(Tensor.from([1, 4])), [2], [2, 0.5]);
    expectTensor(Tensor.from([1, 4]).add(Tensor.from(2)), [2], [3, 6]);
    // empty broadcast
    expectTensor(Tensor.zeros([0, 3]).add(Tensor.from([1, 2, 3])), [0, 3], []);
  });

  it('broadcast against a plain-loop reference on random data', () => {
    const rng = new Rng(1);
    const a = randn(rng, [3, 1, 4, 5]);
    const b = randn(rng, [2, 1, 5]);
    const out = a.sub(b);
    expect(out.shape).toEqual([3, 2, 4, 5]);
    for (let i = 0; i < 3; i++) for (let j = 0; j < 2; j++) for (let k = 0; k < 4; k++) for (let l = 0; l < 5; l++) {
      expect(out.get(i, j, k, l)).toBe(Math.fround(a.get(i, 0, k, l) - b.get(j, 0, l)));
    }
  });

  it('shape mismatch names both shapes', () => {
    expect(() => m23().add(Tensor.from([1, 2]))).toThrow('Tensor.add: shapes [2, 3] and [2] cannot be broadcast (3 vs 2 at dim -1)');
    expect(() => Tensor.zeros([4, 3]).mul(Tensor.zeros([2, 3]))).toThrow('shapes [4, 3] and [2, 3] cannot be broadcast (4 vs 2 at dim -2)');
  });

  it('unary ops and map', () => {
    const t = Tensor.from([-4, 0, 1, 4]);
    expectTensor(t.neg(), [4], [4, -0, -1, -4]);
    expectTensor(t.abs(), [4], [4, 0, 1, 4]);
    expectTensor(t.sqrt(), [4], [NaN, 0, 1, 2]);
    expectTensor(t.pow(2), [4], [16, 0, 1, 16]);
    expectTensor(t.pow(3), [4], [-64, 0, 1, 64]);
    expectTensor(t.exp(), [4], [0.0183156389, 1, 2.7182818285, 54.5981500331], 1e-5);
    expectTensor(t.log(), [4], [NaN, -Infinity, 0, 1.3862943611]);
    expectTensor(t.map((v, i) => v * 10 + i), [4], [-40, 1, 12, 43]);
  });

  it('methods do not mutate their receiver; InPlace ones do', () => {
    const t = m23();
    const other = Tensor.from([1, 1, 1]);
    for (const f of [
      () => t.add(other), () => t.mul(2), () => t.neg(), () => t.exp(), () => t.map((v) => v + 1), () => t.softmax(-1),
      () => t.logSoftmax(0), () => t.sum(0), () => t.topk(2), () => t.permute(1, 0), () => t.reshape([6]),
      () => t.matmul(Tensor.ones([3, 2])), () => t.slice(0, 1), () => t.select(1, [0]),
    ]) f();
    expectTensor(t, [2, 3], [1, 2, 3, 4, 5, 6]);

    expect(t.addInPlace(Tensor.from([10, 20, 30]))).toBe(t);
    expectTensor(t, [2, 3], [11, 22, 33, 14, 25, 36]);
    t.subInPlace(Tensor.from([[1], [4]]));
    expectTensor(t, [2, 3], [10, 21, 32, 10, 21, 32]);
    t.mulInPlace(2).divInPlace(Tensor.from([[2, 1, 2]]));
    expectTensor(t, [2, 3], [10, 42, 32, 10, 42, 32]);
    t.mapInPlace((v, i) => v - i);
    expectTensor(t, [2, 3], [10, 41, 30, 7, 38, 27]);
    t.fillInPlace(3);
    expectTensor(t, [2, 3], [3, 3, 3, 3, 3, 3]);
    expect(() => Tensor.zeros([3]).addInPlace(Tensor.zeros([2, 3]))).toThrow(
      'Tensor.addInPlace: shape [2, 3] cannot be broadcast onto [3] in place',
    );
  });
});

describe('reductions', () => {
  it('sum and mean over dims, negative dims and keepdim', () => {
    const t = m23();
    expectTensor(t.sum(), [], [21]);
    expectTensor(t.sum(0), [3], [5, 7, 9]);
    expectTensor(t.sum(1), [2], [6, 15]);
    expectTensor(t.sum(-1), [2], [6, 15]);
    expectTensor(t.sum(-2, { keepdim: true }), [1, 3], [5, 7, 9]);
    expectTensor(t.sum(1, { keepdim: true }), [2, 1], [6, 15]);
    expectTensor(t.sum(undefined, { keepdim: true }), [1, 1], [21]);
    expectTensor(t.mean(), [], [3.5]);
    expectTensor(t.mean(1), [2], [2, 5]);
    expectTensor(t.mean(0), [3], [2.5, 3.5, 4.5]);
    // middle dim of [2, 3, 4]: Σ_j (12i + 4j + k) = 36i + 12 + 3k
    expectTensor(cube().sum(1), [2, 4], [12, 15, 18, 21, 48, 51, 54, 57]);
    expectTensor(cube().mean(-2, { keepdim: true }), [2, 1, 4], [4, 5, 6, 7, 16, 17, 18, 19]);
    expectTensor(Tensor.zeros([2, 0]).sum(1), [2], [0, 0]);
    expectTensor(Tensor.zeros([2, 0]).mean(1), [2], [NaN, NaN]);
  });

  it('max, min, argmax, argmin (first index wins ties, NaN propagates)', () => {
    const t = Tensor.from([[3, -1, 3], [0, 5, 5]]);
    expectTensor(t.max(), [], [5]);
    expectTensor(t.max(1), [2], [3, 5]);
    expectTensor(t.max(0), [3], [3, 5, 5]);
    expectTensor(t.min(-1), [2], [-1, 0]);
    expectTensor(t.min(0, { keepdim: true }), [1, 3], [0, -1, 3]);
    expectTensor(t.argmax(1), [2], [0, 1]);
    expectTensor(t.argmax(), [], [4]);
    expectTensor(t.argmax(0), [3], [0, 1, 1]);
    expectTensor(t.argmin(1), [2], [1, 0]);
    expectTensor(t.argmin(), [], [1]);
    expectTensor(Tensor.from([-Infinity, -Infinity]).max(), [], [-Infinity]);
    const n = Tensor.from([[1, NaN, 3], [1, 2, 3]]);
    expectTensor(n.max(1), [2], [NaN, 3]);
    expectTensor(n.min(1), [2], [NaN, 1]);
    expectTensor(n.argmax(1), [2], [1, 2]);
    expect(() => Tensor.zeros([2, 0]).max(1)).toThrow('Tensor.max: cannot reduce an empty dim (size 0)');
    expect(() => Tensor.zeros([0]).argmax()).toThrow('Tensor.argmax: cannot reduce an empty dim');
  });

  it('norm is L2 over a dim or Frobenius over everything', () => {
    const t = Tensor.from([[3, 4], [6, 8]]);
    expectTensor(t.norm(), [], [Math.sqrt(125)], 1e-5);
    expectTensor(t.norm(1), [2], [5, 10]);
    expectTensor(t.norm(0), [2], [Math.sqrt(45), Math.sqrt(80)], 1e-5);
    expectTensor(t.norm(-1, { keepdim: true }), [2, 1], [5, 10]);
  });

  it('logSumExp is stable', () => {
    expectTensor(Tensor.from([[0, 0], [1000, 1000]]).logSumExp(1), [2], [Math.LN2, 1000 + Math.LN2], 1e-4);
    expectTensor(Tensor.from([1, 2, 3]).logSumExp(0), [], [3.4076059645], 1e-5);
    expectTensor(Tensor.from([[-Infinity, -Infinity], [-Infinity, 0]]).logSumExp(-1, { keepdim: true }), [2, 1], [-Infinity, 0]);
    expectTensor(Tensor.from([1, Infinity]).logSumExp(0), [], [Infinity]);
  });

  it('out-of-range dims name the allowed range', () => {
    expect(() => m23().sum(2)).toThrow('Tensor.sum: dim 2 is out of range for a 2-D tensor (allowed -2..1)');
    expect(() => m23().mean(-3)).toThrow('Tensor.mean: dim -3 is out of range for a 2-D tensor (allowed -2..1)');
    expect(() => Tensor.from(1).sum(0)).toThrow('dim 0 is out of range for a 0-D tensor (none: the tensor is 0-D)');
    expect(() => m23().softmax(5)).toThrow('Tensor.softmax: dim 5 is out of range');
  });
});

describe('softmax and logSoftmax', () => {
  it('hand-computed values along the last and first dims', () => {
    const p = [0.0900305732, 0.2447284711, 0.6652409558];
    expectTensor(Tensor.from([1, 2, 3]).softmax(0), [3], p);
    expectTensor(Tensor.from([[1, 2, 3], [1, 1, 1]]).softmax(-1), [2, 3], [...p, 1 / 3, 1 / 3, 1 / 3]);
    // along dim 0 of [[1, 1], [2, 3]]: column 0 softmax(1,2), column 1 softmax(1,3)
    expectTensor(Tensor.from([[1, 1], [2, 3]]).softmax(0), [2, 2], [0.2689414214, 0.1192029220, 0.7310585786, 0.8807970780]);
    expectTensor(Tensor.from([1, 2, 3]).logSoftmax(-1), [3], [-2.4076059645, -1.4076059645, -0.4076059645], 1e-6);
  });

  it('is stable for large values and handles -Infinity', () => {
    expectTensor(Tensor.from([1000, 1001]).softmax(0), [2], [0.2689414214, 0.7310585786]);
    expectTensor(Tensor.from([-1000, -1001]).logSoftmax(0), [2], [-0.3132616875, -1.3132616875], 1e-5);
    // causal-mask style rows: a fully masked row gives 0 (softmax) / -Infinity (logSoftmax)
    const masked = Tensor.from([[-Infinity, -Infinity, -Infinity], [0, -Infinity, -Infinity], [0, 0, -Infinity]]);
    expectTensor(masked.softmax(-1), [3, 3], [0, 0, 0, 1, 0, 0, 0.5, 0.5, 0]);
    expectTensor(masked.logSoftmax(-1), [3, 3], [-Infinity, -Infinity, -Infinity, 0, -Infinity, -Infinity, -Math.LN2, -Math.LN2, -Infinity]);
  });

  it('rows sum to 1 and exp(logSoftmax) = softmax on random data', () => {
    const x = randn(new Rng(2), [3, 4, 7]).mul(5);
    for (const dim of [0, 1, -1]) {
      const s = x.softmax(dim);
      expect(s.sum(dim).maxAbsDiff(Tensor.ones(s.sum(dim).shape))).toBeLessThan(1e-6);
      expect(x.logSoftmax(dim).exp().maxAbsDiff(s)).toBeLessThan(1e-6);
      expect(x.logSoftmax(dim).maxAbsDiff(x.sub(x.logSumExp(dim, { keepdim: true })))).toBeLessThan(1e-5);
    }
  });
});

describe('topk', () => {
  it('sorted descending, ties by lower index', () => {
    const t = Tensor.from([1, 3, 3, 2, 3]);
    const { values, indices } = t.topk(2);
    expectTensor(values, [2], [3, 3]);
    expectTensor(indices, [2], [1, 2]);
    const all = t.topk(5);
    expectTensor(all.values, [5], [3, 3, 3, 2, 1]);
    expectTensor(all.indices, [5], [1, 2, 4, 3, 0]);
    const small = t.topk(3, -1, false);
    expectTensor(small.values, [3], [1, 2, 3]);
    expectTensor(small.indices, [3], [0, 3, 1]);
    expectTensor(t.topk(0).values, [0], []);
  });

  it('works along other dims, treats NaN as largest, checks k', () => {
    const t = Tensor.from([[1, 9], [5, 2], [5, 7]]);
    const r = t.topk(2, 0);
    expectTensor(r.values, [2, 2], [5, 9, 5, 7]);
    expectTensor(r.indices, [2, 2], [1, 0, 2, 2]);
    const n = Tensor.from([2, NaN, 5]);
    expectTensor(n.topk(2).indices, [2], [1, 2]);
    expectTensor(n.topk(2, 0, false).indices, [2], [0, 2]);
    expect(() => t.topk(4, 0)).toThrow('Tensor.topk: k = 4 is out of range for dim 0 of size 3 (allowed 0..3)');
    expect(() => t.topk(1, 2)).toThrow('dim 2 is out of range for a 2-D tensor (allowed -2..1)');
  });

  it('small-k (buffer) and large-k (heap) paths agree with a stable sort reference, NaN included', () => {
    const rng = new Rng(3);
    const rows = 3;
    const n = 120;
    // values 0..5 (many ties) with a few NaNs
    const data = Float32Array.from({ length: rows * n }, () => (rng.next() < 0.03 ? NaN : rng.int(0, 6)));
    const t = new Tensor(data, [rows, n]);
    // rank key: NaN is the largest value
    const key = (v: number): number => (Number.isNaN(v) ? Infinity : v);
    for (const largest of [true, false]) {
      for (const k of [1, 5, 16, 17, 40, 119, 120]) {
        const { values, indices } = t.topk(k, 1, largest);
        for (let r = 0; r < rows; r++) {
          const ref = Array.from({ length: n }, (_, i) => i).sort((a, b) => {
            const ka = key(t.get(r, a));
            const kb = key(t.get(r, b));
            if (ka !== kb) return largest ? (kb > ka ? 1 : -1) : ka > kb ? 1 : -1;
            return a - b;
          });
          for (let j = 0; j < k; j++) {
            expect(indices.get(r, j), `k=${k} largest=${largest} row ${r} rank ${j}`).toBe(ref[j]);
            expect(Object.is(values.get(r, j), t.get(r, ref[j]))).toBe(true);
          }
        }
      }
    }
  });
});

describe('matmul', () => {
  /** Plain triple loop on [m, k] @ [k, n] nested arrays. */
  function naive(a: number[][], b: number[][]): number[][] {
    return a.map((row) => b[0].map((_, j) => row.reduce((s, v, p) => s + v * b[p][j], 0)));
  }

  it('2-D hand-computed', () => {
    const a = m23();
    const b = Tensor.from([[7, 8], [9, 10], [11, 12]]);
    expectTensor(a.matmul(b), [2, 2], [58, 64, 139, 154]);
  });

  it('1-D operands act as vectors', () => {
    const b = Tensor.from([[7, 8], [9, 10], [11, 12]]);
    expectTensor(Tensor.from([1, 2, 3]).matmul(b), [2], [58, 64]);
    expectTensor(m23().matmul(Tensor.from([1, 0, -1])), [2], [-2, -2]);
    expectTensor(Tensor.from([1, 2, 3]).matmul(Tensor.from([4, 5, 6])), [], [32]);
  });

  it('2-D and batched products match a naive triple loop on random data', () => {
    const rng = new Rng(4);
    const a = randn(rng, [5, 7]);
    const b = randn(rng, [7, 3]);
    const ref = naive(a.toArray() as number[][], b.toArray() as number[][]);
    expect(a.matmul(b).maxAbsDiff(Tensor.from(ref))).toBeLessThan(1e-5);

    // [b, h, m, k] @ [b, h, k, n]
    const q = randn(rng, [2, 3, 4, 5]);
    const kT = randn(rng, [2, 3, 5, 6]);
    const out = q.matmul(kT);
    expect(out.shape).toEqual([2, 3, 4, 6]);
    for (let i = 0; i < 2; i++) for (let h = 0; h < 3; h++) {
      const r = naive(q.index(0, i).index(0, h).toArray() as number[][], kT.index(0, i).index(0, h).toArray() as number[][]);
      expect(out.index(0, i).index(0, h).maxAbsDiff(Tensor.from(r))).toBeLessThan(1e-5);
    }

    // [..., m, k] @ [k, n]
    const x = randn(rng, [2, 3, 4, 5]);
    const w = randn(rng, [5, 2]);
    const xw = x.matmul(w);
    expect(xw.shape).toEqual([2, 3, 4, 2]);
    for (let i = 0; i < 2; i++) for (let j = 0; j < 3; j++) {
      const r = naive(x.index(0, i).index(0, j).toArray() as number[][], w.toArray() as number[][]);
      expect(xw.index(0, i).index(0, j).maxAbsDiff(Tensor.from(r))).toBeLessThan(1e-5);
    }

    // broadcast batch dims: [2, 1, 3, 4] @ [5, 4, 2] → [2, 5, 3, 2]
    const u = randn(rng, [2, 1, 3, 4]);
    const v = randn(rng, [5, 4, 2]);
    const uv = u.matmul(v);
    expect(uv.shape).toEqual([2, 5, 3, 2]);
    for (let i = 0; i < 2; i++) for (let j = 0; j < 5; j++) {
      const r = naive(u.index(0, i).index(0, 0).toArray() as number[][], v.index(0, j).toArray() as number[][]);
      expect(uv.index(0, i).index(0, j).maxAbsDiff(Tensor.from(r))).toBeLessThan(1e-5);
    }
  });

  it('errors name both shapes', () => {
    expect(() => m23().matmul(m23())).toThrow('Tensor.matmul: shapes [2, 3] and [2, 3] do not match (inner dims 3 vs 2)');
    expect(() => Tensor.zeros([2, 2, 3]).matmul(Tensor.zeros([3, 3, 1]))).toThrow(
      'batch dims of [2, 2, 3] and [3, 3, 1] cannot be broadcast ([2] vs [3])',
    );
    expect(() => Tensor.from(1).matmul(m23())).toThrow('at least 1 dim, got [] and [2, 3]');
  });
});

describe('conversion and comparison', () => {
  it('toArray and toString', () => {
    expect(m23().toArray()).toEqual([[1, 2, 3], [4, 5, 6]]);
    expect(Tensor.from(2).toArray()).toBe(2);
    expect(Tensor.zeros([2, 0]).toArray()).toEqual([[], []]);
    expect(m23().toString()).toBe('Tensor([2, 3])');
    expect(String(Tensor.from(1))).toBe('Tensor([])');
  });

  it('maxAbsDiff is NaN- and Infinity-aware', () => {
    const a = Tensor.from([1, NaN, Infinity, -Infinity]);
    expect(a.maxAbsDiff(Tensor.from([1.5, NaN, Infinity, -Infinity]))).toBe(0.5);
    expect(a.maxAbsDiff(a.clone())).toBe(0);
    expect(a.maxAbsDiff(Tensor.from([1, 0, Infinity, -Infinity]))).toBe(Infinity);
    expect(a.maxAbsDiff(Tensor.from([1, NaN, -Infinity, -Infinity]))).toBe(Infinity);
    expect(a.maxAbsDiff(Tensor.from([1, NaN, 1e30, -Infinity]))).toBe(Infinity);
    expect(Tensor.zeros([0]).maxAbsDiff(Tensor.zeros([0]))).toBe(0);
    expect(() => m23().maxAbsDiff(Tensor.zeros([3, 2]))).toThrow('Tensor.maxAbsDiff: shapes [2, 3] and [3, 2] differ');
  });

  it('allClose uses atol + rtol·|other|', () => {
    const a = Tensor.from([1, 100, NaN, Infinity]);
    expect(a.allClose(Tensor.from([1 + 5e-6, 100, NaN, Infinity]))).toBe(true);
    expect(a.allClose(Tensor.from([1 + 5e-5, 100, NaN, Infinity]))).toBe(false);
    expect(a.allClose(Tensor.from([1, 100.0009, NaN, Infinity]))).toBe(true); // 9e-4 <= 1e-5 + 1e-3
    expect(a.allClose(Tensor.from([1, 100.01, NaN, Infinity]))).toBe(false);
    expect(a.allClose(Tensor.from([1, 100.01, NaN, Infinity]), 0.1, 0)).toBe(true);
    expect(a.allClose(Tensor.from([1, 100, 0, Infinity]))).toBe(false);
    expect(a.allClose(Tensor.from([1, 100, NaN, -Infinity]))).toBe(false);
    expect(() => a.allClose(Tensor.zeros([2]))).toThrow('Tensor.allClose: shapes [4] and [2] differ');
  });
});
