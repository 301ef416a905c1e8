/** Plain-loop dense references for the circuits tests (float64, no shared code with hooks/circuits). */
import { EigenvalueDecomposition, Matrix, SingularValueDecomposition } from 'ml-matrix';
import { Rng } from '../../../hooks/random.ts';
import { Tensor } from '../../../hooks/tensor.ts';

/** A dense float64 matrix. */
export interface D {
  r: number;
  c: number;
  x: Float64Array;
}

export function randTensor(rng: Rng, shape: number[], std = 1): Tensor {
  return new Tensor(rng.normals(shape.reduce((a, b) => a * b, 1), std), shape);
}

/** Matrix `i` (flat batch index) of a tensor's last two dims, as float64. */
export function mat(t: Tensor, i = 0): D {
  const r = t.shape[t.ndim - 2];
  const c = t.shape[t.ndim - 1];
  return { r, c, x: Float64Array.from(t.data.subarray(i * r * c, (i + 1) * r * c)) };
}

export function mm(a: D, b: D): D {
  if (a.c !== b.r) throw new Error(`mm: ${a.r}x${a.c} @ ${b.r}x${b.c}`);
  const x = new Float64Array(a.r * b.c);
  for (let i = 0; i < a.r; i++) {
    for (let j = 0; j < b.c; j++) {
      let s = 0;
      for (let k = 0; k < a.c; k++) s += a.x[i * a.c + k] * b.x[k * b.c + j];
      x[i * b.c + j] = s;
    }
  }
  return { r: a.r, c: b.c, x };
}

export function tr(a: D): D {
  const x = new Float64Array(a.r * a.c);
  for (let i = 0; i < a.r; i++) for (let j = 0; j < a.c; j++) x[j * a.r + i] = a.x[i * a.c + j];
  return { r: a.c, c: a.r, x };
}

export function frob(a: D): number {
  let s = 0;
  for (const v of a.x) s += v * v;
  return Math.sqrt(s);
}

export function scale(a: D, s: number): D {
  return { r: a.r, c: a.c, x: a.x.map((v) => v * s) };
}

/** max |a - b| over two same-size arrays. */
export function maxDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) throw new Error(`maxDiff: lengths ${a.length} vs ${b.length}`);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

export function maxAbs(a: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]));
  return m;
}

const toMl = (a: D) => Matrix.from1DArray(a.r, a.c, Array.from(a.x));

/** Singular values of a dense matrix (ml-matrix on the dense product), descending. */
export function denseSingularValues(a: D): number[] {
  return new SingularValueDecomposition(toMl(a), { autoTranspose: true }).diagonal;
}

/** Eigenvalues of a dense square matrix (ml-matrix), as [re, im] pairs. */
export function denseEigenvalues(a: D): [number, number][] {
  const e = new EigenvalueDecomposition(toMl(a));
  return e.realEigenvalues.map((re, i) => [re, e.imaginaryEigenvalues[i]]);
}

/** Sorts [re, im] pairs by re then im. */
export function sortComplex(v: [number, number][]): [number, number][] {
  return [...v].sort((p, q) => p[0] - q[0] || p[1] - q[1]);
}
