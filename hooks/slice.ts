/** TransformerLens's `Slice` for positions, batch rows and neurons: an index, a list of indices, or a Python-style range. */
import { Tensor } from './tensor.ts';

/** A Python-style range `start:stop:step` (negatives count from the end, missing bounds mean the ends). */
export interface SliceRange {
  start?: number;
  stop?: number;
  step?: number;
}

/**
 * TL's `Slice` input: `null`/`undefined` keeps everything; a number picks one index and REMOVES the
 * dim (TL's int mode, e.g. `posSlice: -1` for the last position); a number[] picks those indices
 * (keeps the dim); a `{start, stop, step}` range keeps the dim.
 */
export type SliceInput = number | readonly number[] | SliceRange | null | undefined;

/** The indices a slice selects from a dim of size `n` (in order, negatives resolved). */
export function sliceIndices(slice: SliceInput, n: number, what = 'slice'): number[] {
  if (slice === null || slice === undefined) return Array.from({ length: n }, (_, i) => i);
  const norm = (i: number): number => {
    if (!Number.isInteger(i) || i < -n || i >= n) {
      throw new Error(`${what}: index ${i} is out of range for a dim of size ${n} (allowed ${-n}..${n - 1})`);
    }
    return i < 0 ? i + n : i;
  };
  if (typeof slice === 'number') return [norm(slice)];
  if (Array.isArray(slice)) return (slice as readonly number[]).map(norm);
  const r = slice as SliceRange;
  const step = r.step ?? 1;
  if (!Number.isInteger(step) || step === 0) throw new Error(`${what}: step must be a non-zero integer; got ${r.step}`);
  const clampBound = (v: number | undefined, dflt: number): number => {
    if (v === undefined) return dflt;
    if (!Number.isInteger(v)) throw new Error(`${what}: range bounds must be integers; got ${v}`);
    if (v < 0) v += n;
    return step > 0 ? Math.min(Math.max(v, 0), n) : Math.min(Math.max(v, -1), n - 1);
  };
  const start = clampBound(r.start, step > 0 ? 0 : n - 1);
  const stop = clampBound(r.stop, step > 0 ? n : -1);
  const out: number[] = [];
  if (step > 0) for (let i = start; i < stop; i += step) out.push(i);
  else for (let i = start; i > stop; i += step) out.push(i);
  return out;
}

/** True when the slice removes its dim (a bare number, TL's int mode). */
export function sliceDropsDim(slice: SliceInput): boolean {
  return typeof slice === 'number';
}

/** Applies a slice along `dim` (negatives allowed), as TL's `Slice.apply`. */
export function applySlice(t: Tensor, slice: SliceInput, dim: number, what = 'slice'): Tensor {
  if (slice === null || slice === undefined) return t;
  const d = dim < 0 ? dim + t.ndim : dim;
  if (d < 0 || d >= t.ndim) throw new Error(`${what}: dim ${dim} does not exist in a tensor of shape [${t.shape.join(', ')}]`);
  const idx = sliceIndices(slice, t.shape[d], what);
  return typeof slice === 'number' ? t.index(d, idx[0]) : t.select(d, idx);
}
