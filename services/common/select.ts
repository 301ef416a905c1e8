/** Index selection on a hook's tensor, per named dim (an index, a list of indices, or a start/end slice), and nesting of the result. */
import type { Tensor } from '../../hooks/tensor.ts';
import { UserError } from '../context.ts';

/** An index (negative counts from the end; the dim is dropped), a list of indices, or a slice [start, end). */
export type DimSelector = number | number[] | { start?: number; end?: number };

export interface Selection {
  /** The chosen indices of every dim of the tensor, in order. */
  perDim: number[][];
  /** Whether each dim stays in the result (false for a single-index selector). */
  kept: boolean[];
  /** Shape of the result (kept dims only). */
  shape: number[];
  count: number;
}

function checkIndex(where: string, i: number, size: number): number {
  const j = i < 0 ? i + size : i;
  if (!Number.isInteger(i) || j < 0 || j >= size) {
    throw new UserError(`${where}: index ${i} is out of range for a dim of size ${size} (allowed ${-size}..${size - 1})`);
  }
  return j;
}

export const range = (n: number): number[] => Array.from({ length: n }, (_, i) => i);

/** Resolves `select` (keyed by dim name) against dims/shape; unknown dim names and out-of-range indices are UserErrors. */
export function resolveSelection(
  what: string,
  dims: readonly string[],
  shape: readonly number[],
  select: Record<string, DimSelector> = {},
): Selection {
  for (const key of Object.keys(select)) {
    if (!dims.includes(key)) throw new UserError(`select.${key}: ${what} has no dim '${key}'; its dims are ${dims.join(', ')}`);
  }
  const perDim: number[][] = [];
  const kept: boolean[] = [];
  dims.forEach((d, i) => {
    const size = shape[i];
    const s = select[d];
    const where = `select.${d}`;
    if (s === undefined) {
      perDim.push(range(size));
      kept.push(true);
    } else if (typeof s === 'number') {
      perDim.push([checkIndex(where, s, size)]);
      kept.push(false);
    } else if (Array.isArray(s)) {
      perDim.push(s.map((x, k) => checkIndex(`${where}[${k}]`, x, size)));
      kept.push(true);
    } else {
      const norm = (v: number) => Math.min(size, Math.max(0, v < 0 ? v + size : v));
      const start = norm(s.start ?? 0);
      const end = norm(s.end ?? size);
      if (end <= start) throw new UserError(`${where}: slice {start: ${s.start ?? 0}, end: ${s.end ?? size}} selects nothing from a dim of size ${size}`);
      perDim.push(range(end - start).map((k) => start + k));
      kept.push(true);
    }
  });
  const shapeOut = perDim.filter((_, i) => kept[i]).map((p) => p.length);
  const count = perDim.reduce((a, p) => a * p.length, 1);
  return { perDim, kept, shape: shapeOut, count };
}

/** The selected values of `t` in row-major order of the selection. */
export function gather(t: Tensor, perDim: readonly (readonly number[])[]): Float32Array {
  const strides = new Array<number>(t.ndim);
  let s = 1;
  for (let d = t.ndim - 1; d >= 0; d--) {
    strides[d] = s;
    s *= t.shape[d];
  }
  const count = perDim.reduce((a, p) => a * p.length, 1);
  const out = new Float32Array(count);
  let k = 0;
  const walk = (d: number, offset: number): void => {
    if (d === t.ndim) {
      out[k++] = t.data[offset];
      return;
    }
    for (const i of perDim[d]) walk(d + 1, offset + i * strides[d]);
  };
  if (count > 0) walk(0, 0);
  return out;
}

/** A flat row-major array as nested arrays of `shape` (a scalar for shape []). */
export type Nested = number | Nested[];
export function nest(flat: Float32Array, shape: readonly number[]): Nested {
  let k = 0;
  const build = (d: number): Nested => {
    if (d === shape.length) return flat[k++];
    const out: Nested[] = new Array(shape[d]);
    for (let i = 0; i < shape[d]; i++) out[i] = build(d + 1);
    return out;
  };
  return build(0);
}
