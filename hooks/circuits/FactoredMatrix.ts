/**
 * TransformerLens's FactoredMatrix: a product `A @ B` kept as its factors, batched over leading dims
 * (`[n_layers, n_heads, ldim, rdim]` with A `[..., ldim, mdim]`, B `[..., mdim, rdim]`). Products, SVD,
 * eigenvalues and norms come from the small factors; the dense product is only formed by `AB`.
 * Float64 internally; getters return float32 Lensboard Tensors.
 */
import { batchTransposed } from '../ops/index.ts';
import { Tensor } from '../tensor.ts';
import {
  bmm, broadcastBatch, broadcastLead, eigenvalues as evd, fmtShape, gemm, gramCols, gramRows,
  prod, qrThin, svdThin, toF64, toTensor, type DenseLike,
} from './linalg.ts';

/** `svd()`'s result, TransformerLens's convention: M = U diag(S) Vhᵀ (Vh is V, not Vᵀ, as in TL). */
export interface FactoredSvd {
  U: Tensor; // [..., ldim, k], k = min(ldim, mdim, rdim)
  S: Tensor; // [..., k], descending
  Vh: Tensor; // [..., rdim, k]
}

/** Eigenvalues as real and imaginary parts (unordered, as torch.linalg.eig). */
export interface ComplexTensor {
  re: Tensor; // [..., mdim]
  im: Tensor; // [..., mdim]
}

interface Svd64 {
  u: Float64Array;
  s: Float64Array;
  v: Float64Array;
  k: number;
}

function checkDense(what: string, x: DenseLike, minDims: number): void {
  if (!x || !(x.data instanceof Float32Array || x.data instanceof Float64Array) || !Array.isArray(x.shape)) {
    throw new Error(`FactoredMatrix: ${what} must be a Tensor (or { data: Float32Array | Float64Array, shape })`);
  }
  if (x.shape.length < minDims) {
    throw new Error(`FactoredMatrix: ${what} must have at least ${minDims} dims, got shape ${fmtShape(x.shape)}`);
  }
  if (prod(x.shape) !== x.data.length) {
    throw new Error(`FactoredMatrix: ${what} has ${x.data.length} elements but shape ${fmtShape(x.shape)}`);
  }
}

export class FactoredMatrix {
  /** Leading (batch) dims, e.g. [n_layers, n_heads]. */
  readonly lead: readonly number[];
  readonly ldim: number;
  readonly mdim: number;
  readonly rdim: number;
  /** A [...lead, ldim, mdim] and B [...lead, mdim, rdim], float64, leading dims materialised. */
  private readonly a: Float64Array;
  private readonly b: Float64Array;
  private svdCache: Svd64[] | null = null;

  /**
   * A @ B with A [..., ldim, mdim] and B [..., mdim, rdim]; leading dims broadcast (NumPy rules) and
   * are materialised. Inputs are copied to float64.
   */
  constructor(A: DenseLike, B: DenseLike) {
    checkDense('A', A, 2);
    checkDense('B', B, 2);
    const [ldim, mdim] = A.shape.slice(-2);
    const [mdimB, rdim] = B.shape.slice(-2);
    if (mdim !== mdimB) {
      throw new Error(`FactoredMatrix: inner dims must match, got A ${fmtShape(A.shape)} and B ${fmtShape(B.shape)} (${mdim} vs ${mdimB})`);
    }
    const aLead = A.shape.slice(0, -2);
    const bLead = B.shape.slice(0, -2);
    const lead = broadcastLead('FactoredMatrix', aLead, bLead);
    this.lead = lead;
    this.ldim = ldim;
    this.mdim = mdim;
    this.rdim = rdim;
    this.a = broadcastBatch(toF64(A), aLead, lead, ldim, mdim);
    this.b = broadcastBatch(toF64(B), bLead, lead, mdim, rdim);
  }

  /** Internal: wraps float64 factors without copying. */
  private static of(a: Float64Array, b: Float64Array, lead: readonly number[], l: number, m: number, r: number): FactoredMatrix {
    const fm = Object.create(FactoredMatrix.prototype) as FactoredMatrix;
    Object.assign(fm, { lead: [...lead], ldim: l, mdim: m, rdim: r, a, b, svdCache: null });
    return fm;
  }

  /** [...lead, ldim, rdim]. */
  get shape(): number[] {
    return [...this.lead, this.ldim, this.rdim];
  }

  get ndim(): number {
    return this.lead.length + 2;
  }

  private get batch(): number {
    return prod(this.lead);
  }

  /** The left factor [..., ldim, mdim]. */
  get A(): Tensor {
    return toTensor(this.a, [...this.lead, this.ldim, this.mdim]);
  }

  /** The right factor [..., mdim, rdim]. */
  get B(): Tensor {
    return toTensor(this.b, [...this.lead, this.mdim, this.rdim]);
  }

  /** [A, B] as Tensors (TransformerLens's `pair`). */
  get pair(): [Tensor, Tensor] {
    return [this.A, this.B];
  }

  /** The factors as float64 arrays (shared, do not mutate): A [...lead, ldim, mdim], B [...lead, mdim, rdim]. */
  get factors64(): { a: Float64Array; b: Float64Array } {
    return { a: this.a, b: this.b };
  }

  /** The dense product A @ B [..., ldim, rdim] — the one expensive getter. */
  get AB(): Tensor {
    return toTensor(this.ab64(), this.shape);
  }

  /** Dense A @ B in float64. */
  ab64(): Float64Array {
    return bmm(this.a, this.lead, this.ldim, this.mdim, this.b, this.lead, this.rdim).data;
  }

  /** The reverse product B @ A [..., mdim, mdim]; needs ldim == rdim. */
  get BA(): Tensor {
    return toTensor(this.ba64(), [...this.lead, this.mdim, this.mdim]);
  }

  ba64(): Float64Array {
    if (this.ldim !== this.rdim) {
      throw new Error(`FactoredMatrix.BA: needs ldim == rdim, shape is ${fmtShape(this.shape)}`);
    }
    return bmm(this.b, this.lead, this.mdim, this.rdim, this.a, this.lead, this.mdim).data;
  }

  /** The transpose (A B)ᵀ = Bᵀ Aᵀ, factored: [..., rdim, ldim]. */
  get T(): FactoredMatrix {
    return FactoredMatrix.of(
      batchTransposed(this.b, this.batch, this.mdim, this.rdim),
      batchTransposed(this.a, this.batch, this.ldim, this.mdim),
      this.lead, this.rdim, this.mdim, this.ldim,
    );
  }

  /**
   * Thin SVD of every matrix from its factors: A = Qa Ra and Bᵀ = Qb Rb (QR when the factor is tall,
   * the factor itself otherwise), SVD of the small middle Ra Rbᵀ, then U = Qa Um, V = Qb Vm.
   * The dense product is never formed.
   */
  private svd64(): Svd64[] {
    if (this.svdCache) return this.svdCache;
    const { ldim: l, mdim: m, rdim: r } = this;
    const bt = batchTransposed(this.b, this.batch, m, r); // [..., rdim, mdim]
    const out: Svd64[] = [];
    for (let i = 0; i < this.batch; i++) {
      // Left: A = Qa Ra, Ra [ka, m]; Qa = I when A is wide.
      const left = l > m ? qrThin(this.a, i * l * m, l, m) : null;
      const ka = left ? m : l;
      const ra = left ? left.rr : this.a.subarray(i * l * m, (i + 1) * l * m);
      // Right: Bᵀ = Qb Rb, Rb [kb, m]; Qb = I when Bᵀ is wide.
      const right = r > m ? qrThin(bt, i * r * m, r, m) : null;
      const kb = right ? m : r;
      const rb = right ? right.rr : bt.subarray(i * r * m, (i + 1) * r * m);
      // Middle = Ra Rbᵀ [ka, kb].
      const rbT = batchTransposed(Float64Array.from(rb), 1, kb, m);
      const mid = new Float64Array(ka * kb);
      gemm(Float64Array.from(ra), 0, rbT, 0, mid, 0, ka, m, kb);
      const sv = svdThin(mid, 0, ka, kb);
      let u = sv.u;
      if (left) {
        u = new Float64Array(l * sv.k);
        gemm(left.q, 0, sv.u, 0, u, 0, l, m, sv.k);
      }
      let v = sv.v;
      if (right) {
        v = new Float64Array(r * sv.k);
        gemm(right.q, 0, sv.v, 0, v, 0, r, m, sv.k);
      }
      out.push({ u, s: sv.s, v, k: sv.k });
    }
    this.svdCache = out;
    return out;
  }

  private svdStack(): { u: Float64Array; s: Float64Array; v: Float64Array; k: number } {
    const parts = this.svd64();
    const k = parts.length ? parts[0].k : Math.min(this.ldim, this.mdim, this.rdim);
    const u = new Float64Array(parts.length * this.ldim * k);
    const s = new Float64Array(parts.length * k);
    const v = new Float64Array(parts.length * this.rdim * k);
    parts.forEach((p, i) => {
      u.set(p.u, i * this.ldim * k);
      s.set(p.s, i * k);
      v.set(p.v, i * this.rdim * k);
    });
    return { u, s, v, k };
  }

  /** TransformerLens's svd(): U [..., ldim, k], S [..., k], Vh [..., rdim, k] with M = U diag(S) Vhᵀ. */
  svd(): FactoredSvd {
    const { u, s, v, k } = this.svdStack();
    return {
      U: toTensor(u, [...this.lead, this.ldim, k]),
      S: toTensor(s, [...this.lead, k]),
      Vh: toTensor(v, [...this.lead, this.rdim, k]),
    };
  }

  get U(): Tensor {
    return this.svd().U;
  }

  get S(): Tensor {
    return this.svd().S;
  }

  get Vh(): Tensor {
    return this.svd().Vh;
  }

  /** Eigenvalues of A B, computed as those of B A [..., mdim, mdim] (same non-zero spectrum); needs ldim == rdim. */
  get eigenvalues(): ComplexTensor {
    const { re, im } = this.eigenvalues64();
    return { re: toTensor(re, [...this.lead, this.mdim]), im: toTensor(im, [...this.lead, this.mdim]) };
  }

  eigenvalues64(): { re: Float64Array; im: Float64Array } {
    const ba = this.ba64();
    const m = this.mdim;
    const re = new Float64Array(this.batch * m);
    const im = new Float64Array(this.batch * m);
    for (let i = 0; i < this.batch; i++) {
      const e = evd(ba, i * m * m, m);
      re.set(e.re, i * m);
      im.set(e.im, i * m);
    }
    return { re, im };
  }

  /** Squared Frobenius norms [batch] from the factors: ‖AB‖² = Σ (AᵀA) ∘ (B Bᵀ). */
  normSq64(): Float64Array {
    const { ldim: l, mdim: m, rdim: r } = this;
    const out = new Float64Array(this.batch);
    for (let i = 0; i < this.batch; i++) {
      const ga = gramCols(this.a, i * l * m, l, m);
      const gb = gramRows(this.b, i * m * r, m, r);
      let s = 0;
      for (let j = 0; j < m * m; j++) s += ga[j] * gb[j];
      out[i] = Math.max(0, s);
    }
    return out;
  }

  /** Frobenius norm of every matrix, [...lead] (a 0-D tensor when there are no leading dims). */
  norm(): Tensor {
    return toTensor(this.normSq64().map(Math.sqrt), this.lead);
  }

  /**
   * this @ other. A FactoredMatrix gives (this @ other.A) @ other.B; a dense matrix [..., rdim, n] is folded
   * into whichever side keeps the inner dim small (as TransformerLens); a vector [rdim] gives a dense [..., ldim].
   */
  matmul(other: FactoredMatrix): FactoredMatrix;
  matmul(other: Tensor): FactoredMatrix | Tensor;
  matmul(other: FactoredMatrix | Tensor): FactoredMatrix | Tensor {
    if (other instanceof FactoredMatrix) {
      // (this @ other.A) @ other.B
      return this.matmulDense(other.a, other.lead, other.ldim, other.mdim).matmulDense(other.b, other.lead, other.mdim, other.rdim);
    }
    checkDense('matmul operand', other, 1);
    if (other.ndim === 1) {
      if (other.shape[0] !== this.rdim) {
        throw new Error(`FactoredMatrix.matmul: vector of length ${other.shape[0]} does not match rdim ${this.rdim} (shape ${fmtShape(this.shape)})`);
      }
      const bv = bmm(this.b, this.lead, this.mdim, this.rdim, toF64(other), [], 1).data;
      const v = bmm(this.a, this.lead, this.ldim, this.mdim, bv, this.lead, 1).data;
      return toTensor(v, [...this.lead, this.ldim]);
    }
    return this.matmulDense(toF64(other), other.shape.slice(0, -2), other.shape[other.ndim - 2], other.shape[other.ndim - 1]);
  }

  /** this @ M for dense M [...lead, k, n] (float64), TransformerLens's choice of side. */
  private matmulDense(x: Float64Array, xLead: readonly number[], k: number, n: number): FactoredMatrix {
    if (k !== this.rdim) {
      throw new Error(`FactoredMatrix.matmul: right operand has ${k} rows but rdim is ${this.rdim} (shapes ${fmtShape(this.shape)} and ${fmtShape([...xLead, k, n])})`);
    }
    const lead = broadcastLead('FactoredMatrix.matmul', this.lead, xLead);
    if (this.rdim > this.mdim) {
      const nb = bmm(this.b, this.lead, this.mdim, this.rdim, x, xLead, n, 'FactoredMatrix.matmul');
      const a = broadcastBatch(this.a, this.lead, lead, this.ldim, this.mdim);
      return FactoredMatrix.of(a, nb.data, lead, this.ldim, this.mdim, n);
    }
    const ab = broadcastBatch(this.ab64(), this.lead, lead, this.ldim, this.rdim);
    return FactoredMatrix.of(ab, broadcastBatch(x, xLead, lead, k, n), lead, this.ldim, this.rdim, n);
  }

  /**
   * other @ this. A FactoredMatrix gives other.A @ (other.B @ this); a dense [..., n, ldim] is folded into
   * whichever side keeps the inner dim small; a vector [ldim] gives a dense [..., rdim].
   */
  rmatmul(other: FactoredMatrix): FactoredMatrix;
  rmatmul(other: Tensor): FactoredMatrix | Tensor;
  rmatmul(other: FactoredMatrix | Tensor): FactoredMatrix | Tensor {
    if (other instanceof FactoredMatrix) return other.matmul(this);
    checkDense('rmatmul operand', other, 1);
    if (other.ndim === 1) {
      if (other.shape[0] !== this.ldim) {
        throw new Error(`FactoredMatrix.rmatmul: vector of length ${other.shape[0]} does not match ldim ${this.ldim} (shape ${fmtShape(this.shape)})`);
      }
      const va = bmm(toF64(other), [], 1, this.ldim, this.a, this.lead, this.mdim).data;
      const v = bmm(va, this.lead, 1, this.mdim, this.b, this.lead, this.rdim).data;
      return toTensor(v, [...this.lead, this.rdim]);
    }
    const n = other.shape[other.ndim - 2];
    const k = other.shape[other.ndim - 1];
    const xLead = other.shape.slice(0, -2);
    if (k !== this.ldim) {
      throw new Error(`FactoredMatrix.rmatmul: left operand has ${k} columns but ldim is ${this.ldim} (shapes ${fmtShape(other.shape)} and ${fmtShape(this.shape)})`);
    }
    const x = toF64(other);
    const lead = broadcastLead('FactoredMatrix.rmatmul', xLead, this.lead);
    if (this.ldim > this.mdim) {
      const na = bmm(x, xLead, n, k, this.a, this.lead, this.mdim, 'FactoredMatrix.rmatmul');
      return FactoredMatrix.of(na.data, broadcastBatch(this.b, this.lead, lead, this.mdim, this.rdim), lead, n, this.mdim, this.rdim);
    }
    const ab = broadcastBatch(this.ab64(), this.lead, lead, this.ldim, this.rdim);
    return FactoredMatrix.of(broadcastBatch(x, xLead, lead, n, k), ab, lead, n, this.ldim, this.rdim);
  }

  /** Scalar multiple (scales A). */
  mul(scalar: number): FactoredMatrix {
    if (typeof scalar !== 'number' || !Number.isFinite(scalar)) {
      throw new Error(`FactoredMatrix.mul: needs a finite number, got ${String(scalar)} (use matmul for matrices)`);
    }
    return FactoredMatrix.of(this.a.map((v) => v * scalar), this.b, this.lead, this.ldim, this.mdim, this.rdim);
  }

  /**
   * Selects along the leading dims: `index(layer)` → [n_heads, ldim, rdim], `index(layer, head)` →
   * [ldim, rdim]. Negative indices count from the end. Only leading dims can be indexed.
   */
  index(...idx: number[]): FactoredMatrix {
    if (idx.length === 0) return this;
    if (idx.length > this.lead.length) {
      throw new Error(`FactoredMatrix.index: ${idx.length} indices for ${this.lead.length} leading dims (shape ${fmtShape(this.shape)}); only leading dims can be indexed`);
    }
    let off = 0;
    idx.forEach((i, d) => {
      const n = this.lead[d];
      if (!Number.isInteger(i) || i < -n || i >= n) {
        throw new Error(`FactoredMatrix.index: index ${i} is out of range for leading dim ${d} of size ${n} (allowed ${-n}..${n - 1})`);
      }
      off = off * n + (i < 0 ? i + n : i);
    });
    const rest = this.lead.slice(idx.length);
    const per = prod(rest);
    const sa = this.ldim * this.mdim * per;
    const sb = this.mdim * this.rdim * per;
    return FactoredMatrix.of(
      this.a.slice(off * sa, (off + 1) * sa),
      this.b.slice(off * sb, (off + 1) * sb),
      rest, this.ldim, this.mdim, this.rdim,
    );
  }

  /** Inserts a leading dim of size 1 at `k` (0..lead.length; negatives count from the end of the leading dims). */
  unsqueeze(k: number): FactoredMatrix {
    const n = this.lead.length;
    if (!Number.isInteger(k) || k < -(n + 1) || k > n) {
      throw new Error(`FactoredMatrix.unsqueeze: dim ${k} out of range for ${n} leading dims (allowed ${-(n + 1)}..${n})`);
    }
    const d = k < 0 ? k + n + 1 : k;
    const lead = [...this.lead.slice(0, d), 1, ...this.lead.slice(d)];
    return FactoredMatrix.of(this.a, this.b, lead, this.ldim, this.mdim, this.rdim);
  }

  /** S[..., :, None] * Vhᵀ: [..., k, rdim] — the product with the left orthogonal factor U removed. */
  collapseL(): Tensor {
    const { s, v, k } = this.svdStack();
    const r = this.rdim;
    const out = new Float64Array(this.batch * k * r);
    for (let i = 0; i < this.batch; i++) {
      for (let p = 0; p < k; p++) {
        const sp = s[i * k + p];
        for (let j = 0; j < r; j++) out[(i * k + p) * r + j] = sp * v[(i * r + j) * k + p];
      }
    }
    return toTensor(out, [...this.lead, k, r]);
  }

  /** U * S[..., None, :]: [..., ldim, k] — the product with the right orthogonal factor removed. */
  collapseR(): Tensor {
    const { u, s, k } = this.svdStack();
    const l = this.ldim;
    const out = new Float64Array(this.batch * l * k);
    for (let i = 0; i < this.batch; i++) {
      for (let j = 0; j < l; j++) for (let p = 0; p < k; p++) out[(i * l + j) * k + p] = u[(i * l + j) * k + p] * s[i * k + p];
    }
    return toTensor(out, [...this.lead, l, k]);
  }

  /** An equivalent, balanced factorisation (U √S, √S Vhᵀ). */
  makeEven(): FactoredMatrix {
    const { u, s, v, k } = this.svdStack();
    const { ldim: l, rdim: r } = this;
    const a = new Float64Array(this.batch * l * k);
    const b = new Float64Array(this.batch * k * r);
    for (let i = 0; i < this.batch; i++) {
      for (let p = 0; p < k; p++) {
        const rs = Math.sqrt(s[i * k + p]);
        for (let j = 0; j < l; j++) a[(i * l + j) * k + p] = u[(i * l + j) * k + p] * rs;
        for (let j = 0; j < r; j++) b[(i * k + p) * r + j] = rs * v[(i * r + j) * k + p];
      }
    }
    return FactoredMatrix.of(a, b, this.lead, l, k, r);
  }

  /**
   * TransformerLens's get_corner: the top-left k×k block of every matrix, computed from the first k rows
   * of A and k columns of B, then (like TL's utils.get_corner) the first k entries of every leading dim.
   */
  getCorner(k = 3): Tensor {
    if (!Number.isInteger(k) || k < 1) throw new Error(`FactoredMatrix.getCorner: k must be a positive integer, got ${k}`);
    const kl = Math.min(k, this.ldim);
    const kr = Math.min(k, this.rdim);
    const leadOut = this.lead.map((n) => Math.min(n, k));
    const nOut = prod(leadOut);
    const out = new Float64Array(nOut * kl * kr);
    const { ldim: l, mdim: m, rdim: r } = this;
    const idx = new Array<number>(leadOut.length).fill(0);
    for (let o = 0; o < nOut; o++) {
      let src = 0;
      for (let d = 0; d < leadOut.length; d++) src = src * this.lead[d] + idx[d];
      for (let i = 0; i < kl; i++) {
        for (let j = 0; j < kr; j++) {
          let s = 0;
          for (let p = 0; p < m; p++) s += this.a[(src * l + i) * m + p] * this.b[(src * m + p) * r + j];
          out[(o * kl + i) * kr + j] = s;
        }
      }
      for (let d = leadOut.length - 1; d >= 0; d--) {
        if (++idx[d] < leadOut[d]) break;
        idx[d] = 0;
      }
    }
    return toTensor(out, [...leadOut, kl, kr]);
  }

  toString(): string {
    return `FactoredMatrix(shape ${fmtShape(this.shape)}, hidden dim ${this.mdim})`;
  }
}
