/**
 * Independent reference conversions for the loading tests: rounding to F16/BF16 done with double-precision
 * arithmetic on quanta (not bit manipulation), and F16/BF16 decoding through DataView.
 */

/**
 * Round a float32 value to a binary format with `mantBits` fraction bits, minimum normal exponent `minExp`
 * and largest finite value `maxFinite`, to nearest with ties to even.
 */
export function roundToFormat(v: number, mantBits: number, minExp: number, maxFinite: number): number {
  if (Number.isNaN(v) || !Number.isFinite(v) || v === 0) return v;
  const a = Math.abs(v);
  let e = Math.floor(Math.log2(a));
  while (2 ** e > a) e--;
  while (2 ** (e + 1) <= a) e++;
  e = Math.max(e, minExp); // below the normal range the quantum stays that of the subnormals
  const quantum = 2 ** (e - mantBits);
  const x = a / quantum; // exact: dividing by a power of two
  let r = Math.floor(x);
  const frac = x - r;
  if (frac > 0.5 || (frac === 0.5 && r % 2 === 1)) r++;
  let out = r * quantum;
  if (out > maxFinite) out = Infinity;
  return v < 0 ? -out : out;
}

export const refF16 = (v: number) => roundToFormat(v, 10, -14, 65504);
export const refBf16 = (v: number) => roundToFormat(v, 7, -126, (2 - 2 ** -7) * 2 ** 127);

/** Every element rounded with `round`, as float32. */
export function refRound(data: Float32Array, round: (v: number) => number): Float32Array {
  return Float32Array.from(data, round);
}

/** Decode little-endian F16 bytes with a DataView: normal numbers by assembling float32 bits. */
export function decodeF16Ref(bytes: Uint8Array): Float32Array {
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const out = new Float32Array(bytes.byteLength / 2);
  const tmp = new DataView(new ArrayBuffer(4));
  for (let i = 0; i < out.length; i++) {
    const h = dv.getUint16(2 * i, true);
    const s = h >>> 15;
    const e = (h >>> 10) & 31;
    const m = h & 1023;
    if (e === 0) out[i] = (s ? -1 : 1) * (m / 1024) * 2 ** -14;
    else if (e === 31) out[i] = m ? NaN : s ? -Infinity : Infinity;
    else {
      tmp.setUint32(0, ((s << 31) | ((e - 15 + 127) << 23) | (m << 13)) >>> 0);
      out[i] = tmp.getFloat32(0);
    }
  }
  return out;
}

/** Decode little-endian BF16 bytes with a DataView (a BF16 is the high half of a big-endian float32). */
export function decodeBf16Ref(bytes: Uint8Array): Float32Array {
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const out = new Float32Array(bytes.byteLength / 2);
  const tmp = new DataView(new ArrayBuffer(4));
  for (let i = 0; i < out.length; i++) {
    tmp.setUint16(0, dv.getUint16(2 * i, true));
    tmp.setUint16(2, 0);
    out[i] = tmp.getFloat32(0);
  }
  return out;
}

/** Element-wise identity, with NaN equal to NaN and +0 distinct from -0; returns the first mismatch or null. */
export function firstMismatch(a: Float32Array, b: Float32Array): string | null {
  if (a.length !== b.length) return `length ${a.length} vs ${b.length}`;
  for (let i = 0; i < a.length; i++) if (!Object.is(a[i], b[i])) return `index ${i}: ${a[i]} vs ${b[i]}`;
  return null;
}

/** Values covering F16/BF16 edge cases (ties, subnormals, overflow, signed zero, NaN, ±Inf) plus random ones. */
export function edgeAndRandomValues(seed = 1, n = 3000): Float32Array {
  const edges = [
    0, -0, 1, -1, NaN, Infinity, -Infinity,
    1 + 2 ** -11, 1 + 3 * 2 ** -11, -(1 + 2 ** -11), // F16 ties → even
    1 + 2 ** -8, 1 + 3 * 2 ** -8, 1 + 2 ** -8 + 2 ** -20, // BF16 ties → even, just above a tie
    2 ** -24, 2 ** -25, 3 * 2 ** -25, 2 ** -26, 2 ** -14, 2 ** -14 - 2 ** -25, 5.96e-8, 1e-8, 6.1e-5, // F16 subnormals
    65504, 65519, 65520, 65536, -65520, 1e5, // F16 overflow
    3.4028234663852886e38, 3.3895313892515355e38, 1e-45, 1.17549435e-38, 1e-40, // BF16 extremes
    0.1, 1 / 3, Math.PI, -2.5e-3,
  ];
  const out = new Float32Array(edges.length + n);
  out.set(edges);
  let s = seed >>> 0;
  const rand = () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
  for (let i = 0; i < n; i++) {
    const exp = -30 + 50 * rand();
    out[edges.length + i] = (rand() < 0.5 ? -1 : 1) * 2 ** exp * (1 + rand());
  }
  return out;
}
