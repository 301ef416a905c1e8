/** FactoredMatrix against dense plain-loop / ml-matrix computations on small random matrices (tolerance 1e-4). */
import { describe, expect, it } from 'vitest';
import { FactoredMatrix } from '../../../hooks/circuits/index.ts';
import { Rng } from '../../../hooks/random.ts';
import { Tensor } from '../../../hooks/tensor.ts';
import {
  denseEigenvalues, denseSingularValues, frob, mat, maxAbs, maxDiff, mm, randTensor, sortComplex, tr, type D,
} from './dense.ts';

const TOL = 1e-4;

/** A batched FM and the dense product of every matrix. */
function setup(seed: number, lead: number[], l: number, m: number, r: number) {
  const rng = new Rng(seed);
  const A = randTensor(rng, [...lead, l, m]);
  const B = randTensor(rng, [...lead, m, r]);
  const n = lead.reduce((a, b) => a * b, 1);
  const dense: D[] = [];
  for (let i = 0; i < n; i++) dense.push(mm(mat(A, i), mat(B, i)));
  return { A, B, fm: new FactoredMatrix(A, B), dense, n };
}

describe('FactoredMatrix basics', () => {
  it('has TransformerLens shape attributes', () => {
    const { fm } = setup(1, [2, 3], 7, 3, 5);
    expect(fm.shape).toEqual([2, 3, 7, 5]);
    expect(fm.ndim).toBe(4);
    expect([fm.ldim, fm.mdim, fm.rdim]).toEqual([7, 3, 5]);
    expect(fm.A.shape).toEqual([2, 3, 7, 3]);
    expect(fm.B.shape).toEqual([2, 3, 3, 5]);
  });

  it('AB equals the dense product of every matrix in the batch', () => {
    const { fm, dense, n } = setup(2, [2, 3], 7, 3, 5);
    const ab = fm.AB;
    expect(ab.shape).toEqual([2, 3, 7, 5]);
    for (let i = 0; i < n; i++) expect(maxDiff(mat(ab, i).x, dense[i].x)).toBeLessThan(TOL);
  });

  it('BA equals B @ A, and needs ldim == rdim', () => {
    const { A, B, fm, n } = setup(3, [4], 6, 2, 6);
    const ba = fm.BA;
    expect(ba.shape).toEqual([4, 2, 2]);
    for (let i = 0; i < n; i++) expect(maxDiff(mat(ba, i).x, mm(mat(B, i), mat(A, i)).x)).toBeLessThan(TOL);
    expect(() => setup(3, [], 6, 2, 5).fm.BA).toThrow(/ldim == rdim/);
  });

  it('T is the transpose, still factored', () => {
    const { fm, dense, n } = setup(4, [3], 5, 2, 4);
    const t = fm.T;
    expect(t.shape).toEqual([3, 4, 5]);
    expect(t.mdim).toBe(2);
    for (let i = 0; i < n; i++) expect(maxDiff(mat(t.AB, i).x, tr(dense[i]).x)).toBeLessThan(TOL);
  });

  it('broadcasts leading dims of the factors', () => {
    const rng = new Rng(5);
    const A = randTensor(rng, [3, 1, 4, 2]);
    const B = randTensor(rng, [2, 2, 5]);
    const fm = new FactoredMatrix(A, B);
    expect(fm.shape).toEqual([3, 2, 4, 5]);
    expect(maxDiff(mat(fm.AB, 3).x, mm(mat(A, 1), mat(B, 1)).x)).toBeLessThan(TOL);
  });

  it('rejects factors whose inner dims differ', () => {
    const rng = new Rng(6);
    expect(() => new FactoredMatrix(randTensor(rng, [4, 3]), randTensor(rng, [2, 5]))).toThrow(/inner dims must match.*3 vs 2/);
  });
});

describe('FactoredMatrix SVD, eigenvalues and norm', () => {
  for (const [name, l, m, r] of [['tall factors', 9, 3, 8], ['wide middle (mdim > ldim, rdim)', 4, 6, 5], ['ldim < rdim', 3, 4, 7]] as const) {
    it(`svd (${name}): S = dense singular values, U diag(S) Vhᵀ = AB, orthonormal U and Vh`, () => {
      const { fm, dense, n } = setup(7, [2], l, m, r);
      const { U, S, Vh } = fm.svd();
      const k = Math.min(l, m, r);
      expect(U.shape).toEqual([2, l, k]);
      expect(S.shape).toEqual([2, k]);
      expect(Vh.shape).toEqual([2, r, k]);
      for (let i = 0; i < n; i++) {
        const s = Array.from(S.data.subarray(i * k, (i + 1) * k));
        expect(maxDiff(s, denseSingularValues(dense[i]).slice(0, k))).toBeLessThan(TOL);
        const u = mat(U, i);
        const v = mat(Vh, i);
        const us = { r: l, c: k, x: u.x.map((x, j) => x * s[j % k]) };
        expect(maxDiff(mm(us, tr(v)).x, dense[i].x)).toBeLessThan(TOL);
        const eye = (q: number) => Float64Array.from({ length: q * q }, (_, j) => (j % (q + 1) === 0 ? 1 : 0));
        expect(maxDiff(mm(tr(u), u).x, eye(k))).toBeLessThan(TOL);
        expect(maxDiff(mm(tr(v), v).x, eye(k))).toBeLessThan(TOL);
      }
    });
  }

  it('eigenvalues (from BA) equal the non-zero eigenvalues of the dense AB, complex ones included', () => {
    const { fm, dense, n } = setup(8, [3], 7, 3, 7);
    const { re, im } = fm.eigenvalues;
    expect(re.shape).toEqual([3, 3]);
    let sawComplex = false;
    for (let i = 0; i < n; i++) {
      const ours = sortComplex(Array.from({ length: 3 }, (_, j) => [re.data[i * 3 + j], im.data[i * 3 + j]] as [number, number]));
      const all = denseEigenvalues(dense[i]);
      const big = Math.max(...all.map(([a, b]) => Math.hypot(a, b)));
      const nonzero = sortComplex(all.filter(([a, b]) => Math.hypot(a, b) > 1e-9 * big));
      expect(nonzero.length).toBe(3);
      expect(maxDiff(ours.flat(), nonzero.flat())).toBeLessThan(TOL);
      if (ours.some(([, b]) => Math.abs(b) > 1e-3)) sawComplex = true;
    }
    // Seed 8 gives at least one complex pair, so the imaginary parts are really checked.
    expect(sawComplex).toBe(true);
  });

  it('norm() is the Frobenius norm of the dense product', () => {
    const { fm, dense, n } = setup(9, [2, 2], 6, 3, 5);
    const nrm = fm.norm();
    expect(nrm.shape).toEqual([2, 2]);
    for (let i = 0; i < n; i++) expect(Math.abs(nrm.data[i] - frob(dense[i]))).toBeLessThan(TOL * frob(dense[i]));
    const single = setup(10, [], 4, 2, 4);
    expect(single.fm.norm().shape).toEqual([]);
    expect(single.fm.norm().item()).toBeCloseTo(frob(single.dense[0]), 4);
  });

  it('collapseL = S Vhᵀ and collapseR = U S, with U collapseL = collapseR Vhᵀ = AB', () => {
    const { fm, dense, n } = setup(11, [2], 8, 3, 6);
    const cl = fm.collapseL();
    const cr = fm.collapseR();
    expect(cl.shape).toEqual([2, 3, 6]);
    expect(cr.shape).toEqual([2, 8, 3]);
    const { U, Vh } = fm.svd();
    for (let i = 0; i < n; i++) {
      expect(maxDiff(mm(mat(U, i), mat(cl, i)).x, dense[i].x)).toBeLessThan(TOL);
      expect(maxDiff(mm(mat(cr, i), tr(mat(Vh, i))).x, dense[i].x)).toBeLessThan(TOL);
    }
  });

  it('makeEven keeps the product', () => {
    const { fm, dense } = setup(12, [], 6, 3, 5);
    const ev = fm.makeEven();
    expect(maxDiff(ev.AB.data, dense[0].x)).toBeLessThan(TOL);
  });

  it('reconstructs a rank-64 768×768 product from its factored SVD (1e-4 relative)', () => {
    const { fm, dense } = setup(13, [], 768, 64, 768);
    const { U, S, Vh } = fm.svd();
    expect(S.shape).toEqual([64]);
    const s = S.data;
    const us = { r: 768, c: 64, x: mat(U).x.map((x, j) => x * s[j % 64]) };
    const rec = mm(us, tr(mat(Vh)));
    expect(maxDiff(rec.x, dense[0].x) / maxAbs(dense[0].x)).toBeLessThan(1e-4);
    const ssq = Array.from(s).reduce((a, b) => a + b * b, 0);
    expect(Math.abs(Math.sqrt(ssq) - frob(dense[0])) / frob(dense[0])).toBeLessThan(1e-4);
  });
});

describe('FactoredMatrix products, indexing, corner', () => {
  it('matmul with a dense matrix, on both TransformerLens branches', () => {
    const rng = new Rng(14);
    for (const [l, m, r] of [[5, 2, 6], [5, 4, 3]]) {
      const A = randTensor(rng, [2, l, m]);
      const B = randTensor(rng, [2, m, r]);
      const M = randTensor(rng, [r, 4]);
      const out = new FactoredMatrix(A, B).matmul(M) as FactoredMatrix;
      expect(out).toBeInstanceOf(FactoredMatrix);
      expect(out.shape).toEqual([2, l, 4]);
      expect(out.mdim).toBe(r > m ? m : r);
      for (let i = 0; i < 2; i++) expect(maxDiff(mat(out.AB, i).x, mm(mm(mat(A, i), mat(B, i)), mat(M)).x)).toBeLessThan(TOL);
    }
  });

  it('rmatmul with a dense matrix, on both branches', () => {
    const rng = new Rng(15);
    for (const [l, m, r] of [[6, 2, 5], [3, 4, 5]]) {
      const A = randTensor(rng, [l, m]);
      const B = randTensor(rng, [m, r]);
      const M = randTensor(rng, [3, 4, l]);
      const out = new FactoredMatrix(A, B).rmatmul(M) as FactoredMatrix;
      expect(out.shape).toEqual([3, 4, r]);
      for (let i = 0; i < 3; i++) expect(maxDiff(mat(out.AB, i).x, mm(mat(M, i), mm(mat(A), mat(B))).x)).toBeLessThan(TOL);
    }
  });

  it('matmul and rmatmul with another FactoredMatrix and with vectors', () => {
    const rng = new Rng(16);
    const f1 = new FactoredMatrix(randTensor(rng, [2, 5, 2]), randTensor(rng, [2, 2, 6]));
    const f2 = new FactoredMatrix(randTensor(rng, [2, 6, 3]), randTensor(rng, [2, 3, 4]));
    const p = f1.matmul(f2);
    const q = f2.rmatmul(f1) as FactoredMatrix;
    expect(p.shape).toEqual([2, 5, 4]);
    for (let i = 0; i < 2; i++) {
      const want = mm(mat(f1.AB, i), mat(f2.AB, i)).x;
      expect(maxDiff(mat(p.AB, i).x, want)).toBeLessThan(TOL);
      expect(maxDiff(mat(q.AB, i).x, want)).toBeLessThan(TOL);
    }
    const v = randTensor(rng, [6]);
    const fv = f1.matmul(v) as Tensor;
    expect(fv.shape).toEqual([2, 5]);
    const w = randTensor(rng, [5]);
    const wf = f1.rmatmul(w) as Tensor;
    expect(wf.shape).toEqual([2, 6]);
    for (let i = 0; i < 2; i++) {
      const ab = mat(f1.AB, i);
      expect(maxDiff(fv.data.subarray(i * 5, i * 5 + 5), mm(ab, { r: 6, c: 1, x: Float64Array.from(v.data) }).x)).toBeLessThan(TOL);
      expect(maxDiff(wf.data.subarray(i * 6, i * 6 + 6), mm({ r: 1, c: 5, x: Float64Array.from(w.data) }, ab).x)).toBeLessThan(TOL);
    }
    expect(() => f1.matmul(randTensor(rng, [5]))).toThrow(/does not match rdim 6/);
  });

  it('mul scales the product', () => {
    const { fm, dense } = setup(17, [], 4, 2, 3);
    expect(maxDiff(fm.mul(-2.5).AB.data, dense[0].x.map((x) => -2.5 * x))).toBeLessThan(TOL);
  });

  it('index selects along leading dims (negative indices too) and rejects the rest', () => {
    const { fm, dense } = setup(18, [3, 4], 5, 2, 6);
    const layer = fm.index(1);
    expect(layer.shape).toEqual([4, 5, 6]);
    expect(maxDiff(mat(layer.AB, 2).x, dense[1 * 4 + 2].x)).toBeLessThan(TOL);
    const head = fm.index(-1, -2);
    expect(head.shape).toEqual([5, 6]);
    expect(maxDiff(head.AB.data, dense[2 * 4 + 2].x)).toBeLessThan(TOL);
    expect(() => fm.index(3)).toThrow(/out of range for leading dim 0 of size 3/);
    expect(() => fm.index(0, 0, 0)).toThrow(/only leading dims/);
    expect(fm.unsqueeze(1).shape).toEqual([3, 1, 4, 5, 6]);
  });

  it('getCorner(k) is the top-left k×k of every dim, as TransformerLens', () => {
    const { fm, dense } = setup(19, [4], 6, 2, 5);
    const c = fm.getCorner(3);
    expect(c.shape).toEqual([3, 3, 3]);
    for (let b = 0; b < 3; b++) {
      for (let i = 0; i < 3; i++) for (let j = 0; j < 3; j++) expect(c.get(b, i, j)).toBeCloseTo(dense[b].x[i * 5 + j], 4);
    }
    expect(setup(20, [], 2, 2, 2).fm.getCorner(3).shape).toEqual([2, 2]);
  });
});
