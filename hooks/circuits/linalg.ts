/**
 * Float64 dense linear algebra for the circuits code: row-major matrices, batched over leading dims,
 * plus the bridges to `ml-matrix` (QR, SVD, eigenvalues).
 *
 * Why ml-matrix (6.x): a small, widely used, pure-JS port of JAMA with QR, SVD and a general
 * (non-symmetric) eigenvalue decomposition in float64, synchronous and with no native build — what
 * FactoredMatrix needs on the small (d_head-sized) factors. Products of big matrices are done here with
 * plain float64 loops, which are faster than going through ml-matrix's per-element accessors.
 */
import { EigenvalueDecomposition, Matrix, QrDecomposition, SingularValueDecomposition } from 'ml-matrix';
import { layerNormRows } from '../ops/index.ts';
import { Tensor } from '../tensor.ts';

/** Something with a row-major float buffer and a shape: a Lensboard Tensor or a float64 array. */
export interface DenseLike {
  readonly data: Float32Array | Float64Array;
  readonly shape: readonly number[];
}

export function prod(shape: readonly number[]): number {
  let p = 1;
  for (const s of shape) p *= s;
  return p;
}

export const fmtShape = (shape: readonly number[]): string => `[${shape.join(', ')}]`;

/** A float64 copy of a dense array (shares nothing with the input). */
export function toF64(x: DenseLike): Float64Array {
  return Float64Array.from(x.data);
}

/** A float32 Lensboard Tensor from float64 data. */
export function toTensor(data: Float64Array, shape: readonly number[]): Tensor {
  return new Tensor(Float32Array.from(data), shape);
}

/**
 * out[m, n] = a[m, k] @ b[k, n] for one matrix each (offsets into larger buffers), float64, i-k-j order.
 * `out` must be zeroed (it is accumulated into).
 */
export function gemm(
  a: Float64Array, aOff: number, b: Float64Array, bOff: number, out: Float64Array, oOff: number,
  m: number, k: number, n: number,
): void {
  for (let i = 0; i < m; i++) {
    const rowA = aOff + i * k;
    const rowO = oOff + i * n;
    for (let p = 0; p < k; p++) {
      const aip = a[rowA + p];
      if (aip === 0) continue;
      const rowB = bOff + p * n;
      for (let j = 0; j < n; j++) out[rowO + j] += aip * b[rowB + j];
    }
  }
}

/** NumPy broadcast of two leading-dim shapes; throws naming both. */
export function broadcastLead(op: string, a: readonly number[], b: readonly number[]): number[] {
  const nd = Math.max(a.length, b.length);
  const out: number[] = [];
  for (let d = 0; d < nd; d++) {
    const x = a[d - (nd - a.length)] ?? 1;
    const y = b[d - (nd - b.length)] ?? 1;
    if (x !== y && x !== 1 && y !== 1) {
      throw new Error(`${op}: leading dims ${fmtShape(a)} and ${fmtShape(b)} cannot be broadcast (${x} vs ${y})`);
    }
    out.push(x === 1 ? y : x);
  }
  return out;
}

/** For each flat batch index of `target`, the matrix index into a tensor with leading dims `lead` (broadcast). */
export function batchMap(lead: readonly number[], target: readonly number[]): Int32Array {
  const n = prod(target);
  const out = new Int32Array(n);
  const off = target.length - lead.length;
  const strides: number[] = new Array(target.length).fill(0);
  let s = 1;
  for (let d = lead.length - 1; d >= 0; d--) {
    strides[d + off] = lead[d] === 1 ? 0 : s;
    s *= lead[d];
  }
  const idx = new Array<number>(target.length).fill(0);
  for (let i = 0; i < n; i++) {
    let o = 0;
    for (let d = 0; d < target.length; d++) o += idx[d] * strides[d];
    out[i] = o;
    for (let d = target.length - 1; d >= 0; d--) {
      if (++idx[d] < target[d]) break;
      idx[d] = 0;
    }
  }
  return out;
}

/** Materialises a batch of [r, c] matrices with leading dims `lead` broadcast to `target`. */
export function broadcastBatch(data: Float64Array, lead: readonly number[], target: readonly number[], r: number, c: number): Float64Array {
  if (lead.length === target.length && lead.every((v, i) => v === target[i])) return data;
  const map = batchMap(lead, target);
  const sz = r * c;
  const out = new Float64Array(map.length * sz);
  for (let i = 0; i < map.length; i++) out.set(data.subarray(map[i] * sz, (map[i] + 1) * sz), i * sz);
  return out;
}

/** Batched product with broadcast leading dims: a [...la, m, k] @ b [...lb, k, n] → [...lead, m, n]. */
export function bmm(
  a: Float64Array, aLead: readonly number[], m: number, k: number,
  b: Float64Array, bLead: readonly number[], n: number,
  op = 'matmul',
): { data: Float64Array; lead: number[] } {
  const lead = broadcastLead(op, aLead, bLead);
  const ma = batchMap(aLead, lead);
  const mb = batchMap(bLead, lead);
  const out = new Float64Array(ma.length * m * n);
  for (let i = 0; i < ma.length; i++) gemm(a, ma[i] * m * k, b, mb[i] * k * n, out, i * m * n, m, k, n);
  return { data: out, lead };
}

/** Gram matrices of the columns: g = xᵀ x, x [r, c] at offset → g [c, c]. */
export function gramCols(x: Float64Array, off: number, r: number, c: number): Float64Array {
  const g = new Float64Array(c * c);
  for (let p = 0; p < r; p++) {
    const row = off + p * c;
    for (let i = 0; i < c; i++) {
      const xi = x[row + i];
      if (xi === 0) continue;
      for (let j = i; j < c; j++) g[i * c + j] += xi * x[row + j];
    }
  }
  for (let i = 0; i < c; i++) for (let j = 0; j < i; j++) g[i * c + j] = g[j * c + i];
  return g;
}

/** Gram matrices of the rows: g = x xᵀ, x [r, c] at offset → g [r, r]. */
export function gramRows(x: Float64Array, off: number, r: number, c: number): Float64Array {
  const g = new Float64Array(r * r);
  for (let i = 0; i < r; i++) {
    for (let j = i; j < r; j++) {
      let s = 0;
      const a = off + i * c;
      const b = off + j * c;
      for (let p = 0; p < c; p++) s += x[a + p] * x[b + p];
      g[i * r + j] = s;
      g[j * r + i] = s;
    }
  }
  return g;
}

/** Σ_ij x_ij y_ij over two equal-length buffers. */
export function dot(x: Float64Array, y: Float64Array): number {
  let s = 0;
  for (let i = 0; i < x.length; i++) s += x[i] * y[i];
  return s;
}

// ---- ml-matrix bridges ---------------------------------------------------------------------------

function toMl(x: Float64Array, off: number, r: number, c: number): Matrix {
  const m = new Matrix(r, c);
  for (let i = 0; i < r; i++) for (let j = 0; j < c; j++) m.set(i, j, x[off + i * c + j]);
  return m;
}

function fromMl(m: Matrix, rows = m.rows, cols = m.columns): Float64Array {
  const out = new Float64Array(rows * cols);
  for (let i = 0; i < rows; i++) for (let j = 0; j < cols; j++) out[i * cols + j] = m.get(i, j);
  return out;
}

/** Thin QR of x [r, c] with r ≥ c: q [r, c] (orthonormal columns), rr [c, c] upper triangular. */
export function qrThin(x: Float64Array, off: number, r: number, c: number): { q: Float64Array; rr: Float64Array } {
  const qr = new QrDecomposition(toMl(x, off, r, c));
  return { q: fromMl(qr.orthogonalMatrix, r, c), rr: fromMl(qr.upperTriangularMatrix, c, c) };
}

/** Thin SVD of x [r, c]: u [r, k], s [k] descending, v [c, k], k = min(r, c), x = u diag(s) vᵀ. */
export function svdThin(x: Float64Array, off: number, r: number, c: number): { u: Float64Array; s: Float64Array; v: Float64Array; k: number } {
  const k = Math.min(r, c);
  const svd = new SingularValueDecomposition(toMl(x, off, r, c), { autoTranspose: true });
  return {
    u: fromMl(svd.leftSingularVectors, r, k),
    s: Float64Array.from(svd.diagonal.slice(0, k)),
    v: fromMl(svd.rightSingularVectors, c, k),
    k,
  };
}

/** Eigenvalues (real and imaginary parts, in ml-matrix's order) of a square x [n, n]. */
export function eigenvalues(x: Float64Array, off: number, n: number): { re: Float64Array; im: Float64Array } {
  const evd = new EigenvalueDecomposition(toMl(x, off, n, n));
  return { re: Float64Array.from(evd.realEigenvalues), im: Float64Array.from(evd.imaginaryEigenvalues) };
}

/**
 * Lower-triangular L with x = L Lᵀ for a symmetric positive semi-definite x [n, n] at offset. A pivot at or
 * below `relTol` × the largest diagonal entry is taken as 0 (its column of L set to 0), so rank-deficient
 * Gram matrices (e.g. of a head whose W_V has dependent columns) factor without blowing up rounding noise.
 */
export function choleskyPsd(x: ArrayLike<number>, off: number, n: number, relTol = 1e-6): Float64Array {
  const L = new Float64Array(n * n);
  let maxDiag = 0;
  for (let i = 0; i < n; i++) maxDiag = Math.max(maxDiag, x[off + i * n + i]);
  const tol = relTol * maxDiag;
  for (let j = 0; j < n; j++) {
    let d = x[off + j * n + j];
    for (let k = 0; k < j; k++) d -= L[j * n + k] * L[j * n + k];
    if (!(d > tol)) continue; // column j stays 0
    const ljj = Math.sqrt(d);
    L[j * n + j] = ljj;
    for (let i = j + 1; i < n; i++) {
      let s = x[off + i * n + j];
      for (let k = 0; k < j; k++) s -= L[i * n + k] * L[j * n + k];
      L[i * n + j] = s / ljj;
    }
  }
  return L;
}

/** LayerNorm without weights of each row of x [rows, d] (float64): the normalised rows and 1/σ per row. */
export function normalizeRows(x: Float64Array, rows: number, d: number, eps: number): { n: Float64Array; r: Float64Array } {
  const n = new Float64Array(rows * d);
  const r = new Float64Array(rows);
  layerNormRows(x, rows, d, eps, null, { normalized: n, rstd: r });
  return { n, r };
}
