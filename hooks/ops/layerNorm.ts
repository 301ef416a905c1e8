/** LayerNorm over the rows of a matrix, in JavaScript (the library's, the server's and the trainer's; the reference has its own). */

/** A LayerNorm's weight and bias [d] (null: LayerNormPre, centring and scaling only). */
export interface Affine {
  w: ArrayLike<number>;
  b: ArrayLike<number>;
}

/** What layerNormRows writes: any of y [rows, d], normalized [rows, d] and rstd [rows]. */
export interface LayerNormOutputs {
  /** normalized · w + b (normalized itself without weights). */
  y?: Float32Array | Float64Array;
  /** (x - mean) · rstd. */
  normalized?: Float32Array | Float64Array;
  /** 1 / sqrt(var + eps) per row. */
  rstd?: Float32Array | Float64Array;
}

/**
 * LayerNorm of each row of x [rows, d]: mean and variance in float64, rstd = 1 / sqrt(var + eps),
 * normalized = (x - mean) · rstd, y = normalized · w + b (normalized · w + b computed from the
 * float64 normalized value). Writes the outputs given.
 */
export function layerNormRows(x: ArrayLike<number>, rows: number, d: number, eps: number, affine: Affine | null, out: LayerNormOutputs): void {
  const { y, normalized, rstd } = out;
  for (let r = 0; r < rows; r++) {
    const o = r * d;
    let mean = 0;
    for (let k = 0; k < d; k++) mean += x[o + k];
    mean /= d;
    let sq = 0;
    for (let k = 0; k < d; k++) {
      const c = x[o + k] - mean;
      sq += c * c;
    }
    const rs = 1 / Math.sqrt(sq / d + eps);
    if (rstd) rstd[r] = rs;
    for (let k = 0; k < d; k++) {
      const n = (x[o + k] - mean) * rs;
      if (normalized) normalized[o + k] = n;
      if (y) y[o + k] = affine ? n * affine.w[k] + affine.b[k] : n;
    }
  }
}

/**
 * The backward pass of layerNormRows with weights: from dy [rows, d], the saved normalized
 * values xn [rows, d] and rstd [rows], accumulates dw and db [d] and returns dx [rows, d].
 */
export function layerNormBackward(
  dy: Float32Array, xn: Float32Array, rstd: Float32Array, rows: number, d: number, w: Float32Array, dw: Float32Array, db: Float32Array,
): Float32Array {
  const dx = new Float32Array(rows * d);
  const dxn = new Float64Array(d);
  for (let r = 0; r < rows; r++) {
    const o = r * d;
    let mean1 = 0;
    let mean2 = 0;
    for (let k = 0; k < d; k++) {
      const g = dy[o + k];
      dw[k] += g * xn[o + k];
      db[k] += g;
      const v = g * w[k];
      dxn[k] = v;
      mean1 += v;
      mean2 += v * xn[o + k];
    }
    mean1 /= d;
    mean2 /= d;
    const rs = rstd[r];
    for (let k = 0; k < d; k++) dx[o + k] = rs * (dxn[k] - mean1 - xn[o + k] * mean2);
  }
  return dx;
}
