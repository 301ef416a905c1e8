/**
 * Lensboard's tensor: a row-major Float32Array with a shape. Just what interpretability code
 * needs (indexing, slicing, reductions, softmax, topk, small matmuls) — not a general numpy.
 * Every method returns a new tensor and leaves `this` alone, except `set` and the `...InPlace` methods.
 */
import { logSumExp, softmaxLine } from './ops/softmax.ts';

/** A number or arbitrarily nested arrays of numbers, as accepted by `Tensor.from` and returned by `toArray`. */
export type NestedArray = number | readonly NestedArray[];

/** Options for reductions: `keepdim` keeps the reduced dim with size 1 (like PyTorch). */
export interface ReduceOptions {
  keepdim?: boolean;
}

/** The result of `topk`: values and their indices (as floats) along the reduced dim. */
export interface TopK {
  values: Tensor;
  indices: Tensor;
}

type BinaryOp = 'add' | 'sub' | 'mul' | 'div';

/** `[2, 3]` — how shapes appear in error messages. */
function fmt(shape: readonly number[]): string {
  return `[${shape.join(', ')}]`;
}

function prod(shape: readonly number[]): number {
  let p = 1;
  for (const s of shape) p *= s;
  return p;
}

/** Row-major strides of a contiguous tensor of `shape`. */
function stridesOf(shape: readonly number[]): number[] {
  const st = new Array<number>(shape.length);
  let s = 1;
  for (let d = shape.length - 1; d >= 0; d--) {
    st[d] = s;
    s *= shape[d];
  }
  return st;
}

/** Throws unless every entry of `shape` is a non-negative integer. */
function checkShape(op: string, shape: readonly number[]): void {
  if (!Array.isArray(shape)) throw new Error(`Tensor.${op}: shape must be an array of non-negative integers`);
  for (const s of shape) {
    if (!Number.isInteger(s) || s < 0) {
      throw new Error(`Tensor.${op}: shape ${fmt(shape)} is invalid (entries must be non-negative integers)`);
    }
  }
}

/**
 * Maps a possibly negative dim into [0, ndim); throws naming the allowed range. With `insert`, the dim
 * is a position for a new dim in an (ndim-1)-D tensor (stack, unsqueeze).
 */
function normDim(op: string, dim: number, ndim: number, insert = false): number {
  if (!Number.isInteger(dim) || dim < -ndim || dim >= ndim) {
    const allowed = ndim === 0 ? 'none: the tensor is 0-D' : `allowed ${-ndim}..${ndim - 1}`;
    const what = insert ? `inserting a dim into a ${ndim - 1}-D tensor` : `a ${ndim}-D tensor`;
    throw new Error(`Tensor.${op}: dim ${dim} is out of range for ${what} (${allowed})`);
  }
  return dim < 0 ? dim + ndim : dim;
}

/** Maps a possibly negative index into [0, n); throws naming the allowed range. */
function normIndex(op: string, i: number, n: number, dim: number): number {
  if (!Number.isInteger(i) || i < -n || i >= n) {
    const allowed = n === 0 ? 'none: the dim is empty' : `allowed ${-n}..${n - 1}`;
    throw new Error(`Tensor.${op}: index ${i} is out of range for dim ${dim} of size ${n} (${allowed})`);
  }
  return i < 0 ? i + n : i;
}

/** Splits `shape` around `dim` into [outer, n, inner] element counts. */
function splitAt(shape: readonly number[], dim: number): { outer: number; n: number; inner: number } {
  return { outer: prod(shape.slice(0, dim)), n: shape[dim], inner: prod(shape.slice(dim + 1)) };
}

/** NumPy broadcast of two shapes; throws naming both shapes. */
function broadcastShapes(op: string, a: readonly number[], b: readonly number[]): number[] {
  const nd = Math.max(a.length, b.length);
  const out = new Array<number>(nd);
  for (let d = 0; d < nd; d++) {
    const x = a[d - (nd - a.length)] ?? 1;
    const y = b[d - (nd - b.length)] ?? 1;
    if (x !== y && x !== 1 && y !== 1) {
      throw new Error(
        `Tensor.${op}: shapes ${fmt(a)} and ${fmt(b)} cannot be broadcast (${x} vs ${y} at dim ${d - nd})`,
      );
    }
    out[d] = x === 1 ? y : x;
  }
  return out;
}

/** Strides for reading a tensor of `shape` as if broadcast to `outShape` (0 along broadcast dims). */
function broadcastStrides(shape: readonly number[], outShape: readonly number[]): number[] {
  const own = stridesOf(shape);
  const lead = outShape.length - shape.length;
  return outShape.map((_, d) => (d < lead || shape[d - lead] === 1 ? 0 : own[d - lead]));
}

/**
 * Calls `row(offsets, r)` once per row of `shape` (a row = the last dim), with the offset of that
 * row's first element in each strided operand. Does nothing for an empty shape.
 */
function forEachRow(
  shape: readonly number[],
  strides: readonly (readonly number[])[],
  row: (offsets: number[], r: number) => void,
): void {
  if (prod(shape) === 0) return;
  const nd = shape.length;
  const rows = nd <= 1 ? 1 : prod(shape.slice(0, nd - 1));
  const idx = new Array<number>(Math.max(nd - 1, 0)).fill(0);
  const offs = strides.map(() => 0);
  for (let r = 0; r < rows; r++) {
    row(offs, r);
    for (let d = nd - 2; d >= 0; d--) {
      idx[d]++;
      for (let s = 0; s < strides.length; s++) offs[s] += strides[s][d];
      if (idx[d] < shape[d]) break;
      for (let s = 0; s < strides.length; s++) offs[s] -= strides[s][d] * shape[d];
      idx[d] = 0;
    }
  }
}

/** out[o0 + j] = a[a0 + j*as] (op) b[b0 + j*bs] for j < n. */
function binaryRow(
  op: BinaryOp,
  out: Float32Array,
  o0: number,
  a: Float32Array,
  a0: number,
  as: number,
  b: Float32Array,
  b0: number,
  bs: number,
  n: number,
): void {
  switch (op) {
    case 'add':
      for (let j = 0; j < n; j++) out[o0 + j] = a[a0 + j * as] + b[b0 + j * bs];
      break;
    case 'sub':
      for (let j = 0; j < n; j++) out[o0 + j] = a[a0 + j * as] - b[b0 + j * bs];
      break;
    case 'mul':
      for (let j = 0; j < n; j++) out[o0 + j] = a[a0 + j * as] * b[b0 + j * bs];
      break;
    case 'div':
      for (let j = 0; j < n; j++) out[o0 + j] = a[a0 + j * as] / b[b0 + j * bs];
      break;
  }
}

/** True when (va at ia) sorts before (vb at ib) in topk order; NaN counts as the largest value. */
function precedes(va: number, ia: number, vb: number, ib: number, largest: boolean): boolean {
  const na = va !== va;
  const nb = vb !== vb;
  if (na || nb) {
    if (na && nb) return ia < ib;
    return largest ? na : nb;
  }
  if (va !== vb) return largest ? va > vb : va < vb;
  return ia < ib;
}

// Per-line reduction kernels: reduce d[base + r*stride] for r < n.
type Kernel = (d: Float32Array, base: number, n: number, stride: number) => number;

function maxKernel(op: string, sign: 1 | -1): Kernel {
  return (d, base, n, stride) => {
    if (n === 0) throw new Error(`Tensor.${op}: cannot reduce an empty dim (size 0)`);
    let m = d[base];
    for (let r = 0; r < n; r++) {
      const v = d[base + r * stride];
      if (v !== v) return NaN;
      if (sign * v > sign * m) m = v;
    }
    return m;
  };
}

function argKernel(op: string, sign: 1 | -1): Kernel {
  return (d, base, n, stride) => {
    if (n === 0) throw new Error(`Tensor.${op}: cannot reduce an empty dim (size 0)`);
    let best = 0;
    let bv = d[base];
    if (bv !== bv) return 0;
    for (let r = 1; r < n; r++) {
      const v = d[base + r * stride];
      if (v !== v) return r;
      if (sign * v > sign * bv) {
        bv = v;
        best = r;
      }
    }
    return best;
  };
}

const sumKernel: Kernel = (d, base, n, stride) => {
  let s = 0;
  for (let r = 0; r < n; r++) s += d[base + r * stride];
  return s;
};

const sqNormKernel: Kernel = (d, base, n, stride) => {
  let s = 0;
  for (let r = 0; r < n; r++) {
    const v = d[base + r * stride];
    s += v * v;
  }
  return Math.sqrt(s);
};

const logSumExpKernel: Kernel = (d, base, n, stride) => logSumExp(d, base, n, stride);

export class Tensor {
  readonly shape: number[];
  readonly data: Float32Array;

  constructor(data: Float32Array, shape: readonly number[]) {
    const size = shape.reduce((a, b) => a * b, 1);
    if (data.length !== size) {
      throw new Error(`Tensor: data has ${data.length} elements but shape [${shape.join(', ')}] needs ${size}`);
    }
    this.data = data;
    this.shape = [...shape];
  }

  static zeros(shape: readonly number[]): Tensor {
    return new Tensor(new Float32Array(shape.reduce((a, b) => a * b, 1)), shape);
  }

  get ndim(): number {
    return this.shape.length;
  }

  get size(): number {
    return this.data.length;
  }

  // ---------------------------------------------------------------------------------------------
  // Construction

  /** A tensor from nested arrays (or a bare number → 0-D); infers the shape, rejects ragged input. */
  static from(nested: NestedArray): Tensor {
    const isArr = (x: unknown): x is ArrayLike<NestedArray> =>
      Array.isArray(x) || (ArrayBuffer.isView(x) && !(x instanceof DataView));
    const shape: number[] = [];
    let probe: unknown = nested;
    while (isArr(probe)) {
      shape.push(probe.length);
      if (probe.length === 0) break;
      probe = probe[0];
    }
    const out = new Float32Array(prod(shape));
    let k = 0;
    const walk = (x: unknown, depth: number, path: number[]): void => {
      const where = path.length ? ` at ${fmt(path)}` : '';
      if (depth === shape.length) {
        if (typeof x !== 'number') {
          const got = isArr(x) ? 'an array' : typeof x;
          throw new Error(
            `Tensor.from: ${isArr(x) ? 'ragged input' : 'bad element'}${where}: expected a number, got ${got}`,
          );
        }
        out[k++] = x;
        return;
      }
      if (!isArr(x)) {
        throw new Error(
          `Tensor.from: ragged input${where}: expected an array of length ${shape[depth]}, got ${typeof x}`,
        );
      }
      if (x.length !== shape[depth]) {
        throw new Error(
          `Tensor.from: ragged input${where}: expected an array of length ${shape[depth]} (like the first one), got length ${x.length}`,
        );
      }
      for (let i = 0; i < x.length; i++) walk(x[i], depth + 1, [...path, i]);
    };
    walk(nested, 0, []);
    return new Tensor(out, shape);
  }

  /** A tensor of `shape` filled with `v`. */
  static full(shape: readonly number[], v: number): Tensor {
    checkShape('full', shape);
    return new Tensor(new Float32Array(prod(shape)).fill(v), shape);
  }

  /** A tensor of `shape` filled with 1. */
  static ones(shape: readonly number[]): Tensor {
    checkShape('ones', shape);
    return new Tensor(new Float32Array(prod(shape)).fill(1), shape);
  }

  /** [0, 1, …, n-1], shape [n]. */
  static arange(n: number): Tensor {
    if (!Number.isInteger(n) || n < 0) throw new Error(`Tensor.arange: n must be a non-negative integer, got ${n}`);
    const out = new Float32Array(n);
    for (let i = 0; i < n; i++) out[i] = i;
    return new Tensor(out, [n]);
  }

  /** Stacks same-shape tensors along a new dim `dim` (allowed -(ndim+1)..ndim). */
  static stack(tensors: readonly Tensor[], dim = 0): Tensor {
    if (tensors.length === 0) throw new Error('Tensor.stack: needs at least one tensor');
    const first = tensors[0].shape;
    for (const t of tensors) {
      if (t.shape.length !== first.length || t.shape.some((s, i) => s !== first[i])) {
        throw new Error(`Tensor.stack: all tensors must have the same shape, got ${fmt(first)} and ${fmt(t.shape)}`);
      }
    }
    const d = normDim('stack', dim, first.length + 1, true);
    const viewShape = [...first.slice(0, d), 1, ...first.slice(d)];
    return Tensor.cat(
      tensors.map((t) => new Tensor(t.data, viewShape)),
      d,
    );
  }

  /** Concatenates tensors along existing dim `dim`; all other dims must match. */
  static cat(tensors: readonly Tensor[], dim: number): Tensor {
    if (tensors.length === 0) throw new Error('Tensor.cat: needs at least one tensor');
    const ref = tensors[0].shape;
    const d = normDim('cat', dim, ref.length);
    let total = 0;
    for (const t of tensors) {
      if (t.shape.length !== ref.length || t.shape.some((s, i) => i !== d && s !== ref[i])) {
        throw new Error(
          `Tensor.cat: shapes ${fmt(ref)} and ${fmt(t.shape)} must match in every dim except dim ${d}`,
        );
      }
      total += t.shape[d];
    }
    const outShape = [...ref];
    outShape[d] = total;
    const { outer, inner } = splitAt(ref, d);
    const out = new Float32Array(prod(outShape));
    let off = 0;
    for (let o = 0; o < outer; o++) {
      for (const t of tensors) {
        const block = t.shape[d] * inner;
        out.set(t.data.subarray(o * block, (o + 1) * block), off);
        off += block;
      }
    }
    return new Tensor(out, outShape);
  }

  // ---------------------------------------------------------------------------------------------
  // Element access

  /** Flat offset of a full multi-index (negatives allowed). */
  private offset(op: string, idx: readonly number[]): number {
    if (idx.length !== this.ndim) {
      throw new Error(`Tensor.${op}: got ${idx.length} indices for a ${this.ndim}-D tensor of shape ${fmt(this.shape)}`);
    }
    let off = 0;
    let stride = 1;
    for (let d = this.ndim - 1; d >= 0; d--) {
      off += normIndex(op, idx[d], this.shape[d], d) * stride;
      stride *= this.shape[d];
    }
    return off;
  }

  /** The element at a full multi-index (negative indices count from the end). */
  get(...idx: number[]): number {
    return this.data[this.offset('get', idx)];
  }

  /** Writes `value` at a full multi-index, in place (the one mutator besides `...InPlace`). */
  set(value: number, ...idx: number[]): void {
    this.data[this.offset('set', idx)] = value;
  }

  /** The single element of a 1-element tensor (any shape). */
  item(): number {
    if (this.size !== 1) throw new Error(`Tensor.item: needs exactly 1 element, shape ${fmt(this.shape)} has ${this.size}`);
    return this.data[0];
  }

  // ---------------------------------------------------------------------------------------------
  // Indexing and shape

  /** Selects index `i` of `dim` and removes that dim: [a, b, c].index(1, i) → [a, c]. */
  index(dim: number, i: number): Tensor {
    const d = normDim('index', dim, this.ndim);
    const picked = this.select(d, [normIndex('index', i, this.shape[d], d)]);
    return new Tensor(picked.data, [...this.shape.slice(0, d), ...this.shape.slice(d + 1)]);
  }

  /** Gathers `indices` (negatives allowed, repeats allowed) along `dim`; that dim becomes indices.length. */
  select(dim: number, indices: readonly number[]): Tensor {
    const d = normDim('select', dim, this.ndim);
    const { outer, n, inner } = splitAt(this.shape, d);
    const idx = indices.map((i) => normIndex('select', i, n, d));
    const outShape = [...this.shape];
    outShape[d] = idx.length;
    const out = new Float32Array(prod(outShape));
    let off = 0;
    for (let o = 0; o < outer; o++) {
      const base = o * n * inner;
      for (const i of idx) {
        out.set(this.data.subarray(base + i * inner, base + (i + 1) * inner), off);
        off += inner;
      }
    }
    return new Tensor(out, outShape);
  }

  /** Python-style `[start:end]` along `dim`: negatives count from the end, out-of-range bounds clamp. */
  slice(dim: number, start: number, end?: number): Tensor {
    const d = normDim('slice', dim, this.ndim);
    const { outer, n, inner } = splitAt(this.shape, d);
    const clamp = (v: number, name: string): number => {
      if (!Number.isInteger(v)) throw new Error(`Tensor.slice: ${name} must be an integer, got ${v}`);
      return v < 0 ? Math.max(0, v + n) : Math.min(v, n);
    };
    const s = clamp(start, 'start');
    const e = Math.max(s, end === undefined ? n : clamp(end, 'end'));
    const outShape = [...this.shape];
    outShape[d] = e - s;
    const out = new Float32Array(prod(outShape));
    const block = (e - s) * inner;
    for (let o = 0; o < outer; o++) {
      const base = o * n * inner;
      out.set(this.data.subarray(base + s * inner, base + e * inner), o * block);
    }
    return new Tensor(out, outShape);
  }

  /** Same data (copied) in a new shape; one entry may be -1 (inferred). */
  reshape(shape: readonly number[]): Tensor {
    const free = shape.filter((s) => s === -1).length;
    if (free > 1 || shape.some((s) => !Number.isInteger(s) || s < -1)) {
      throw new Error(`Tensor.reshape: shape ${fmt(shape)} is invalid (non-negative integers, at most one -1)`);
    }
    const known = prod(shape.filter((s) => s !== -1));
    let target = [...shape];
    if (free === 1) {
      if (known === 0 || this.size % known !== 0) {
        throw new Error(`Tensor.reshape: cannot reshape ${fmt(this.shape)} (${this.size} elements) into ${fmt(shape)}`);
      }
      target = shape.map((s) => (s === -1 ? this.size / known : s));
    } else if (known !== this.size) {
      throw new Error(`Tensor.reshape: cannot reshape ${fmt(this.shape)} (${this.size} elements) into ${fmt(shape)}`);
    }
    return new Tensor(this.data.slice(), target);
  }

  /** Reorders dims: out.shape[i] = this.shape[dims[i]] (dims must be a permutation, negatives allowed). */
  permute(...dims: number[]): Tensor {
    if (dims.length !== this.ndim) {
      throw new Error(`Tensor.permute: got ${dims.length} dims for a ${this.ndim}-D tensor of shape ${fmt(this.shape)}`);
    }
    const ds = dims.map((d) => normDim('permute', d, this.ndim));
    if (new Set(ds).size !== ds.length) throw new Error(`Tensor.permute: dims ${fmt(dims)} repeat a dim`);
    const inStrides = stridesOf(this.shape);
    const outShape = ds.map((d) => this.shape[d]);
    const st = ds.map((d) => inStrides[d]);
    const out = new Float32Array(this.size);
    const nd = outShape.length;
    const inner = nd === 0 ? 1 : outShape[nd - 1];
    const is = nd === 0 ? 0 : st[nd - 1];
    const src = this.data;
    forEachRow(outShape, [st], (offs, r) => {
      const o0 = r * inner;
      const a0 = offs[0];
      for (let j = 0; j < inner; j++) out[o0 + j] = src[a0 + j * is];
    });
    return new Tensor(out, outShape);
  }

  /** Swaps two dims. */
  transpose(d0: number, d1: number): Tensor {
    const a = normDim('transpose', d0, this.ndim);
    const b = normDim('transpose', d1, this.ndim);
    const dims = this.shape.map((_, i) => i);
    dims[a] = b;
    dims[b] = a;
    return this.permute(...dims);
  }

  /** Removes all size-1 dims, or just `dim` (which must have size 1; unlike PyTorch this throws otherwise). */
  squeeze(dim?: number): Tensor {
    if (dim === undefined) return new Tensor(this.data.slice(), this.shape.filter((s) => s !== 1));
    const d = normDim('squeeze', dim, this.ndim);
    if (this.shape[d] !== 1) {
      throw new Error(`Tensor.squeeze: dim ${dim} of shape ${fmt(this.shape)} has size ${this.shape[d]}, only size-1 dims can be squeezed`);
    }
    return new Tensor(this.data.slice(), [...this.shape.slice(0, d), ...this.shape.slice(d + 1)]);
  }

  /** Inserts a size-1 dim at `dim` (allowed -(ndim+1)..ndim). */
  unsqueeze(dim: number): Tensor {
    const d = normDim('unsqueeze', dim, this.ndim + 1, true);
    return new Tensor(this.data.slice(), [...this.shape.slice(0, d), 1, ...this.shape.slice(d)]);
  }

  /** A 1-D copy, shape [size]. */
  flatten(): Tensor {
    return new Tensor(this.data.slice(), [this.size]);
  }

  /** A deep copy. */
  clone(): Tensor {
    return new Tensor(this.data.slice(), this.shape);
  }

  // ---------------------------------------------------------------------------------------------
  // Elementwise

  /** Broadcast `this (op) other` written into `out` (shape `outShape`). */
  private static binaryInto(op: BinaryOp, a: Tensor, b: Tensor, out: Float32Array, outShape: number[]): void {
    if (a.shape.length === b.shape.length && a.shape.every((s, i) => s === b.shape[i])) {
      binaryRow(op, out, 0, a.data, 0, 1, b.data, 0, 1, out.length);
      return;
    }
    const sa = broadcastStrides(a.shape, outShape);
    const sb = broadcastStrides(b.shape, outShape);
    const nd = outShape.length;
    const inner = nd === 0 ? 1 : outShape[nd - 1];
    const ia = nd === 0 ? 0 : sa[nd - 1];
    const ib = nd === 0 ? 0 : sb[nd - 1];
    forEachRow(outShape, [sa, sb], (offs, r) => {
      binaryRow(op, out, r * inner, a.data, offs[0], ia, b.data, offs[1], ib, inner);
    });
  }

  private binary(op: BinaryOp, other: Tensor | number): Tensor {
    const b = typeof other === 'number' ? new Tensor(Float32Array.of(other), []) : other;
    const outShape = broadcastShapes(op, this.shape, b.shape);
    const out = new Float32Array(prod(outShape));
    Tensor.binaryInto(op, this, b, out, outShape);
    return new Tensor(out, outShape);
  }

  private binaryInPlace(op: BinaryOp, other: Tensor | number): this {
    const name = `${op}InPlace`;
    const b = typeof other === 'number' ? new Tensor(Float32Array.of(other), []) : other;
    const outShape = broadcastShapes(name, this.shape, b.shape);
    if (outShape.length !== this.ndim || outShape.some((s, i) => s !== this.shape[i])) {
      throw new Error(`Tensor.${name}: shape ${fmt(b.shape)} cannot be broadcast onto ${fmt(this.shape)} in place`);
    }
    Tensor.binaryInto(op, this, b, this.data, outShape);
    return this;
  }

  /** this + other, NumPy broadcasting. */
  add(other: Tensor | number): Tensor {
    return this.binary('add', other);
  }

  /** this - other, NumPy broadcasting. */
  sub(other: Tensor | number): Tensor {
    return this.binary('sub', other);
  }

  /** this * other, NumPy broadcasting. */
  mul(other: Tensor | number): Tensor {
    return this.binary('mul', other);
  }

  /** this / other, NumPy broadcasting. */
  div(other: Tensor | number): Tensor {
    return this.binary('div', other);
  }

  /** this += other in place (other must broadcast to this.shape); returns this. */
  addInPlace(other: Tensor | number): this {
    return this.binaryInPlace('add', other);
  }

  /** this -= other in place (other must broadcast to this.shape); returns this. */
  subInPlace(other: Tensor | number): this {
    return this.binaryInPlace('sub', other);
  }

  /** this *= other in place (other must broadcast to this.shape); returns this. */
  mulInPlace(other: Tensor | number): this {
    return this.binaryInPlace('mul', other);
  }

  /** this /= other in place (other must broadcast to this.shape); returns this. */
  divInPlace(other: Tensor | number): this {
    return this.binaryInPlace('div', other);
  }

  /** Sets every element to `v` in place; returns this. */
  fillInPlace(v: number): this {
    this.data.fill(v);
    return this;
  }

  /** Applies fn(value, flatIndex) to every element in place; returns this. */
  mapInPlace(fn: (v: number, i: number) => number): this {
    const d = this.data;
    for (let i = 0; i < d.length; i++) d[i] = fn(d[i], i);
    return this;
  }

  /** A new tensor with fn(value, flatIndex) applied to every element. */
  map(fn: (v: number, i: number) => number): Tensor {
    const src = this.data;
    const out = new Float32Array(src.length);
    for (let i = 0; i < src.length; i++) out[i] = fn(src[i], i);
    return new Tensor(out, this.shape);
  }

  /** -x */
  neg(): Tensor {
    return this.map((v) => -v);
  }

  /** e^x */
  exp(): Tensor {
    return this.map(Math.exp);
  }

  /** Natural log (log 0 = -Infinity, log of negatives = NaN). */
  log(): Tensor {
    return this.map(Math.log);
  }

  /** |x| */
  abs(): Tensor {
    return this.map(Math.abs);
  }

  /** √x */
  sqrt(): Tensor {
    return this.map(Math.sqrt);
  }

  /** x^p */
  pow(p: number): Tensor {
    return this.map((v) => Math.pow(v, p));
  }

  // ---------------------------------------------------------------------------------------------
  // Reductions (accumulated in float64)

  /** Applies a line kernel over `dim`, or over all elements when `dim` is omitted. */
  private reduce(op: string, dim: number | undefined, opts: ReduceOptions, kernel: Kernel): Tensor {
    const keep = opts.keepdim ?? false;
    if (dim === undefined) {
      const v = kernel(this.data, 0, this.size, 1);
      return new Tensor(Float32Array.of(v), keep ? this.shape.map(() => 1) : []);
    }
    const d = normDim(op, dim, this.ndim);
    const { outer, n, inner } = splitAt(this.shape, d);
    const out = new Float32Array(outer * inner);
    for (let o = 0; o < outer; o++) {
      for (let i = 0; i < inner; i++) out[o * inner + i] = kernel(this.data, o * n * inner + i, n, inner);
    }
    const shape = [...this.shape];
    if (keep) shape[d] = 1;
    else shape.splice(d, 1);
    return new Tensor(out, shape);
  }

  /** Sum over `dim` (or everything → 0-D). */
  sum(dim?: number, opts: ReduceOptions = {}): Tensor {
    return this.reduce('sum', dim, opts, sumKernel);
  }

  /** Mean over `dim` (or everything → 0-D); the mean of an empty dim is NaN. */
  mean(dim?: number, opts: ReduceOptions = {}): Tensor {
    return this.reduce('mean', dim, opts, (d, base, n, stride) => sumKernel(d, base, n, stride) / n);
  }

  /** Max over `dim` (or everything → 0-D); NaN propagates; an empty dim throws. */
  max(dim?: number, opts: ReduceOptions = {}): Tensor {
    return this.reduce('max', dim, opts, maxKernel('max', 1));
  }

  /** Min over `dim` (or everything → 0-D); NaN propagates; an empty dim throws. */
  min(dim?: number, opts: ReduceOptions = {}): Tensor {
    return this.reduce('min', dim, opts, maxKernel('min', -1));
  }

  /** Index (as a float) of the first max along `dim`, or the flat index over everything; a NaN wins. */
  argmax(dim?: number, opts: ReduceOptions = {}): Tensor {
    return this.reduce('argmax', dim, opts, argKernel('argmax', 1));
  }

  /** Index (as a float) of the first min along `dim`, or the flat index over everything; a NaN wins. */
  argmin(dim?: number, opts: ReduceOptions = {}): Tensor {
    return this.reduce('argmin', dim, opts, argKernel('argmin', -1));
  }

  /** L2 norm over `dim`, or the Frobenius norm of everything. */
  norm(dim?: number, opts: ReduceOptions = {}): Tensor {
    return this.reduce('norm', dim, opts, sqNormKernel);
  }

  /** log Σ exp(x) over `dim`, stable (subtracts the max); all -Infinity gives -Infinity. */
  logSumExp(dim: number, opts: ReduceOptions = {}): Tensor {
    return this.reduce('logSumExp', dim, opts, logSumExpKernel);
  }

  /** Stable softmax / log-softmax along `dim`; all -Infinity lines give 0 / -Infinity. */
  private softmaxImpl(op: string, dim: number, log: boolean): Tensor {
    const d = normDim(op, dim, this.ndim);
    const { outer, n, inner } = splitAt(this.shape, d);
    const out = new Float32Array(this.size);
    for (let o = 0; o < outer; o++) {
      for (let i = 0; i < inner; i++) softmaxLine(this.data, out, o * n * inner + i, n, inner, log);
    }
    return new Tensor(out, this.shape);
  }

  /** Softmax along `dim` (numerically stable; a line of all -Infinity gives all 0, like TransformerLens's nan→0). */
  softmax(dim: number): Tensor {
    return this.softmaxImpl('softmax', dim, false);
  }

  /** Log-softmax along `dim` (numerically stable; a line of all -Infinity stays -Infinity). */
  logSoftmax(dim: number): Tensor {
    return this.softmaxImpl('logSoftmax', dim, true);
  }

  /**
   * The k largest (or smallest) entries along `dim`, sorted (descending when largest, else ascending),
   * ties broken by lower index, NaN treated as the largest value. Indices are returned as floats.
   */
  topk(k: number, dim = -1, largest = true): TopK {
    const d = normDim('topk', dim, this.ndim);
    const { outer, n, inner } = splitAt(this.shape, d);
    if (!Number.isInteger(k) || k < 0 || k > n) {
      throw new Error(`Tensor.topk: k = ${k} is out of range for dim ${d} of size ${n} (allowed 0..${n})`);
    }
    const outShape = [...this.shape];
    outShape[d] = k;
    const values = new Float32Array(prod(outShape));
    const indices = new Float32Array(values.length);
    const src = this.data;
    const bufV = new Float64Array(k);
    const bufI = new Int32Array(k);
    // Large k: a binary heap of the best k seen so far, worst at the root.
    const heapV = new Float64Array(k);
    const heapI = new Int32Array(k);
    const worse = (a: number, b: number): boolean => precedes(heapV[b], heapI[b], heapV[a], heapI[a], largest);
    const swap = (a: number, b: number): void => {
      const v = heapV[a];
      heapV[a] = heapV[b];
      heapV[b] = v;
      const x = heapI[a];
      heapI[a] = heapI[b];
      heapI[b] = x;
    };
    const siftDown = (root: number, size: number): void => {
      for (;;) {
        const l = 2 * root + 1;
        if (l >= size) return;
        const c = l + 1 < size && worse(l + 1, l) ? l + 1 : l;
        if (!worse(c, root)) return;
        swap(c, root);
        root = c;
      }
    };
    for (let o = 0; o < outer; o++) {
      for (let i = 0; i < inner; i++) {
        const base = o * n * inner + i;
        if (k > 16) {
          let size = 0;
          for (let r = 0; r < n; r++) {
            const v = src[base + r * inner];
            if (size < k) {
              heapV[size] = v;
              heapI[size] = r;
              for (let c = size++; c > 0 && worse(c, (c - 1) >> 1); c = (c - 1) >> 1) swap(c, (c - 1) >> 1);
            } else if (precedes(v, r, heapV[0], heapI[0], largest)) {
              heapV[0] = v;
              heapI[0] = r;
              siftDown(0, k);
            }
          }
          // Pop the worst first, filling the output from the back.
          for (let j = k - 1; j >= 0; j--) {
            bufV[j] = heapV[0];
            bufI[j] = heapI[0];
            swap(0, j);
            siftDown(0, j);
          }
        } else {
          // Small k: keep a sorted buffer of the best k seen so far.
          let count = 0;
          for (let r = 0; r < n; r++) {
            const v = src[base + r * inner];
            if (count === k && !precedes(v, r, bufV[k - 1], bufI[k - 1], largest)) continue;
            let j = count < k ? count++ : k - 1;
            while (j > 0 && precedes(v, r, bufV[j - 1], bufI[j - 1], largest)) {
              bufV[j] = bufV[j - 1];
              bufI[j] = bufI[j - 1];
              j--;
            }
            bufV[j] = v;
            bufI[j] = r;
          }
        }
        const ob = o * k * inner + i;
        for (let j = 0; j < k; j++) {
          values[ob + j * inner] = bufV[j];
          indices[ob + j * inner] = bufI[j];
        }
      }
    }
    return { values: new Tensor(values, outShape), indices: new Tensor(indices, outShape) };
  }

  // ---------------------------------------------------------------------------------------------
  // Matrix multiply

  /**
   * Matrix product like torch.matmul: [..., m, k] @ [..., k, n] → [..., m, n] with leading (batch) dims
   * broadcast; a 1-D operand is treated as a row (left) or column (right) vector and that dim dropped.
   * Accumulates in float64, inner loop in i-k-j order.
   */
  matmul(other: Tensor): Tensor {
    if (this.ndim === 0 || other.ndim === 0) {
      throw new Error(`Tensor.matmul: both operands need at least 1 dim, got ${fmt(this.shape)} and ${fmt(other.shape)}`);
    }
    const aShape = this.ndim === 1 ? [1, this.shape[0]] : this.shape;
    const bShape = other.ndim === 1 ? [other.shape[0], 1] : other.shape;
    const m = aShape[aShape.length - 2];
    const k = aShape[aShape.length - 1];
    const k2 = bShape[bShape.length - 2];
    const n = bShape[bShape.length - 1];
    if (k !== k2) {
      throw new Error(
        `Tensor.matmul: shapes ${fmt(this.shape)} and ${fmt(other.shape)} do not match (inner dims ${k} vs ${k2})`,
      );
    }
    const aBatch = aShape.slice(0, -2);
    const bBatch = bShape.slice(0, -2);
    let batch: number[];
    try {
      batch = broadcastShapes('matmul', aBatch, bBatch);
    } catch {
      throw new Error(
        `Tensor.matmul: batch dims of ${fmt(this.shape)} and ${fmt(other.shape)} cannot be broadcast (${fmt(aBatch)} vs ${fmt(bBatch)})`,
      );
    }
    // Batch strides in units of whole matrices (0 along broadcast dims).
    const sa = broadcastStrides(aBatch, batch);
    const sb = broadcastStrides(bBatch, batch);
    const nBatch = prod(batch);
    const A = this.data;
    const B = other.data;
    const out = new Float32Array(nBatch * m * n);
    const acc = new Float64Array(n);
    const idx = new Array<number>(batch.length).fill(0);
    for (let bi = 0; bi < nBatch; bi++) {
      let ma = 0;
      let mb = 0;
      for (let d = 0; d < batch.length; d++) {
        ma += idx[d] * sa[d];
        mb += idx[d] * sb[d];
      }
      const offA = ma * m * k;
      const offB = mb * k * n;
      const offO = bi * m * n;
      for (let i = 0; i < m; i++) {
        acc.fill(0);
        const rowA = offA + i * k;
        for (let p = 0; p < k; p++) {
          const aip = A[rowA + p];
          const rowB = offB + p * n;
          for (let j = 0; j < n; j++) acc[j] += aip * B[rowB + j];
        }
        const rowO = offO + i * n;
        for (let j = 0; j < n; j++) out[rowO + j] = acc[j];
      }
      for (let d = batch.length - 1; d >= 0; d--) {
        if (++idx[d] < batch[d]) break;
        idx[d] = 0;
      }
    }
    const outShape = [...batch];
    if (this.ndim > 1) outShape.push(m);
    if (other.ndim > 1) outShape.push(n);
    return new Tensor(out, outShape);
  }

  // ---------------------------------------------------------------------------------------------
  // Conversion and comparison

  /** Nested JS arrays (a bare number for a 0-D tensor). */
  toArray(): NestedArray {
    const st = stridesOf(this.shape);
    const build = (d: number, off: number): NestedArray =>
      d === this.ndim
        ? this.data[off]
        : Array.from({ length: this.shape[d] }, (_, i) => build(d + 1, off + i * st[d]));
    return build(0, 0);
  }

  /** Short summary, e.g. `Tensor([2, 3])`. */
  toString(): string {
    return `Tensor(${fmt(this.shape)})`;
  }

  private checkSameShape(op: string, other: Tensor): void {
    if (this.ndim !== other.ndim || this.shape.some((s, i) => s !== other.shape[i])) {
      throw new Error(`Tensor.${op}: shapes ${fmt(this.shape)} and ${fmt(other.shape)} differ`);
    }
  }

  /**
   * Largest |this - other| over all elements (0 for empty tensors). NaN vs NaN and ±Infinity vs the same
   * infinity count as equal; any other NaN or infinity mismatch gives Infinity.
   */
  maxAbsDiff(other: Tensor): number {
    this.checkSameShape('maxAbsDiff', other);
    const a = this.data;
    const b = other.data;
    let worst = 0;
    for (let i = 0; i < a.length; i++) {
      const x = a[i];
      const y = b[i];
      if (x === y || (x !== x && y !== y)) continue;
      const diff = Math.abs(x - y);
      if (diff !== diff || diff === Infinity) return Infinity;
      if (diff > worst) worst = diff;
    }
    return worst;
  }

  /** True when |this - other| <= atol + rtol·|other| everywhere (NaN matches NaN, infinities match themselves). */
  allClose(other: Tensor, atol = 1e-5, rtol = 1e-5): boolean {
    this.checkSameShape('allClose', other);
    const a = this.data;
    const b = other.data;
    for (let i = 0; i < a.length; i++) {
      const x = a[i];
      const y = b[i];
      if (x === y || (x !== x && y !== y)) continue;
      if (!Number.isFinite(x) || !Number.isFinite(y)) return false;
      if (!(Math.abs(x - y) <= atol + rtol * Math.abs(y))) return false;
    }
    return true;
  }
}
