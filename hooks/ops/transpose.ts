/** Matrix transposes: into another array in cache-friendly tiles, and in place with a bounded scratch buffer. */

type Floats = Float32Array | Float64Array;

/** src [rows, cols] row-major → dst [cols, rows], in cache-friendly tiles (src and dst must not overlap). */
export function transposeInto<T extends Floats>(src: Floats, rows: number, cols: number, dst: T): T {
  const T = 32;
  for (let r0 = 0; r0 < rows; r0 += T) {
    const r1 = Math.min(rows, r0 + T);
    for (let c0 = 0; c0 < cols; c0 += T) {
      const c1 = Math.min(cols, c0 + T);
      for (let c = c0; c < c1; c++) {
        const o = c * rows;
        for (let r = r0; r < r1; r++) dst[o + r] = src[r * cols + c];
      }
    }
  }
  return dst;
}

/** src [rows, cols] → a new [cols, rows] array of the same type. */
export function transposed<T extends Floats>(src: T, rows: number, cols: number): T {
  return transposeInto(src, rows, cols, new (src.constructor as new (n: number) => T)(src.length));
}

/** Each of `batch` consecutive [rows, cols] matrices of src → [cols, rows], in a new array. */
export function batchTransposed<T extends Floats>(src: T, batch: number, rows: number, cols: number): T {
  const out = new (src.constructor as new (n: number) => T)(src.length);
  const n = rows * cols;
  for (let i = 0; i < batch; i++) transposeInto(src.subarray(i * n, (i + 1) * n), rows, cols, out.subarray(i * n, (i + 1) * n));
  return out;
}

/** Largest scratch buffer (floats) transposeInPlace uses by default: 16 MiB. */
export const SCRATCH_FLOATS = 2 ** 22;

/**
 * a [rows, cols] row-major → [cols, rows], in a's own memory, with at most `maxScratch` floats
 * of scratch (GPT-2's W_U is 154 MB), taken from `buffer` when it is large enough (reused across
 * calls, so that transposing many matrices leaves no garbage). The rows are cut into slabs of h
 * rows (h divides rows, h·cols fits the scratch); each slab [h, cols] is transposed to [cols, h]
 * through the scratch, which makes a [rows/h, cols] matrix of h-float segments; transposing that
 * at segment granularity, in place by following the permutation's cycles, gives [cols, rows/h]
 * of segments = [cols, rows].
 */
export function transposeInPlace(
  a: Float32Array,
  rows: number,
  cols: number,
  maxScratch = SCRATCH_FLOATS,
  buffer?: Float32Array,
): Float32Array {
  if (a.length !== rows * cols) throw new Error(`internal: transposeInPlace of ${a.length} floats as [${rows}, ${cols}]`);
  let h = 1;
  for (let d = rows; d >= 1; d--) {
    if (rows % d === 0 && d * cols <= maxScratch) {
      h = d;
      break;
    }
  }
  const slab = h * cols;
  const scratch = buffer && buffer.length >= slab ? buffer.subarray(0, slab) : new Float32Array(slab);
  for (let s0 = 0; s0 < a.length; s0 += slab) {
    const view = a.subarray(s0, s0 + slab);
    scratch.set(view);
    transposeInto(scratch, h, cols, view);
  }
  // Segments of h floats: (i, j) of [m = rows / h, n = cols] at i·n + j goes to j·m + i.
  const m = rows / h;
  const n = cols;
  if (m === 1 || n === 1) return a;
  const count = m * n;
  const done = new Uint8Array(count);
  const held = new Float32Array(h);
  for (let start = 0; start < count; start++) {
    if (done[start]) continue;
    // Walk the cycle backwards: fill each position from the one whose segment lands there.
    held.set(a.subarray(start * h, start * h + h));
    let to = start;
    for (;;) {
      done[to] = 1;
      const from = (to % m) * n + Math.floor(to / m); // the segment that goes to `to`
      if (from === start) {
        a.set(held, to * h);
        break;
      }
      a.copyWithin(to * h, from * h, from * h + h);
      to = from;
    }
  }
  return a;
}
