/** float32 ⇄ IEEE binary16 (F16) and bfloat16 (BF16) bit conversions, rounding to nearest, ties to even. */

let f16Table: Float32Array | null = null;

/** float32 value of one F16 bit pattern (0..65535). */
export function f16BitsToF32(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >> 10) & 0x1f;
  const mant = h & 0x3ff;
  if (exp === 0) return sign * mant * 2 ** -24; // zero or subnormal
  if (exp === 0x1f) return mant === 0 ? sign * Infinity : NaN;
  return sign * (1 + mant / 1024) * 2 ** (exp - 15);
}

/** All 65536 F16 values as float32, built once: decoding then is a table lookup. */
function f16DecodeTable(): Float32Array {
  if (f16Table === null) {
    f16Table = new Float32Array(65536);
    for (let h = 0; h < 65536; h++) f16Table[h] = f16BitsToF32(h);
  }
  return f16Table;
}

/** F16 bit pattern of the float32 whose raw bits are `x` (a uint32), rounding to nearest even. */
export function f32BitsToF16Bits(x: number): number {
  const sign = (x >>> 16) & 0x8000;
  const exp = (x >>> 23) & 0xff;
  const mant = x & 0x7fffff;
  if (exp === 0xff) return mant === 0 ? sign | 0x7c00 : sign | 0x7e00 | (mant >>> 13); // Inf / quiet NaN
  const e = exp - 127 + 15; // re-biased exponent
  if (e >= 0x1f) return sign | 0x7c00; // too large even before rounding: Inf
  if (e <= 0) {
    // Subnormal F16 (or zero): value = m · 2^(exp-150); one F16 subnormal unit is 2^-24.
    if (e < -10) return sign; // below half the smallest subnormal: ±0
    const m = mant | 0x800000;
    const shift = 14 - e; // 14..24
    let h = m >>> shift;
    const rem = m & ((1 << shift) - 1);
    const half = 1 << (shift - 1);
    if (rem > half || (rem === half && (h & 1) === 1)) h++; // may carry into the smallest normal: correct
    return sign | h;
  }
  let h = (e << 10) | (mant >>> 13);
  const rem = mant & 0x1fff;
  if (rem > 0x1000 || (rem === 0x1000 && (h & 1) === 1)) h++; // a carry may reach 0x7c00 = Inf: correct
  return sign | h;
}

/** BF16 bit pattern of the float32 whose raw bits are `x` (a uint32), rounding to nearest even. */
export function f32BitsToBf16Bits(x: number): number {
  if ((x & 0x7f800000) === 0x7f800000 && (x & 0x7fffff) !== 0) return ((x >>> 16) | 0x0040) & 0xffff; // keep NaN a NaN
  const lsb = (x >>> 16) & 1;
  return ((x + 0x7fff + lsb) >>> 16) & 0xffff;
}

/** Encode float32 values as F16 bits into `out` (same length). */
export function encodeF16(src: Float32Array, out: Uint16Array): void {
  const bits = new Uint32Array(src.buffer, src.byteOffset, src.length);
  for (let i = 0; i < bits.length; i++) out[i] = f32BitsToF16Bits(bits[i]);
}

/** Encode float32 values as BF16 bits into `out` (same length). */
export function encodeBf16(src: Float32Array, out: Uint16Array): void {
  const bits = new Uint32Array(src.buffer, src.byteOffset, src.length);
  for (let i = 0; i < bits.length; i++) out[i] = f32BitsToBf16Bits(bits[i]);
}

/** Decode F16 bits into float32 `out[outOffset ..]`. */
export function decodeF16(src: Uint16Array, out: Float32Array, outOffset = 0): void {
  const table = f16DecodeTable();
  for (let i = 0; i < src.length; i++) out[outOffset + i] = table[src[i]];
}

/** Decode BF16 bits into float32 `out[outOffset ..]` (a BF16 is the top half of a float32). */
export function decodeBf16(src: Uint16Array, out: Float32Array, outOffset = 0): void {
  const bits = new Uint32Array(out.buffer, out.byteOffset + outOffset * 4, src.length);
  for (let i = 0; i < src.length; i++) bits[i] = src[i] << 16;
}

/** float32 values rounded through F16 and back (what a F16 checkpoint stores). */
export function roundToF16(src: Float32Array): Float32Array {
  const bits = new Uint16Array(src.length);
  encodeF16(src, bits);
  const out = new Float32Array(src.length);
  decodeF16(bits, out);
  return out;
}

/** float32 values rounded through BF16 and back (what a BF16 checkpoint stores). */
export function roundToBf16(src: Float32Array): Float32Array {
  const bits = new Uint16Array(src.length);
  encodeBf16(src, bits);
  const out = new Float32Array(src.length);
  decodeBf16(bits, out);
  return out;
}
