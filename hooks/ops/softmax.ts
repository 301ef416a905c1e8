/** Softmax and log-sum-exp of one line of values (contiguous, or strided through a larger array), in float64. */

/**
 * log Σ_r exp(x[base + r·stride]) for r < n, stable (the maximum taken out first); NaN if any
 * value is NaN; ±Infinity when the maximum is (-Infinity for an empty or all -Infinity line).
 */
export function logSumExp(x: ArrayLike<number>, base = 0, n = x.length - base, stride = 1): number {
  let m = -Infinity;
  for (let r = 0; r < n; r++) {
    const v = x[base + r * stride];
    if (v !== v) return NaN;
    if (v > m) m = v;
  }
  if (m === -Infinity || m === Infinity) return m;
  let s = 0;
  for (let r = 0; r < n; r++) s += Math.exp(x[base + r * stride] - m);
  return m + Math.log(s);
}

/**
 * Softmax (or, with `log`, log-softmax) of the line x[base + r·stride], r < n, written to the same
 * places of `out`. A line of all -Infinity gives all 0 (log: all -Infinity), like TransformerLens's
 * nan→0 for fully masked attention rows; a NaN anywhere makes the line NaN.
 */
export function softmaxLine(x: ArrayLike<number>, out: Float32Array | Float64Array, base: number, n: number, stride = 1, log = false): void {
  let m = -Infinity;
  let sawNaN = false;
  for (let r = 0; r < n; r++) {
    const v = x[base + r * stride];
    if (v !== v) sawNaN = true;
    else if (v > m) m = v;
  }
  if (sawNaN) m = NaN;
  if (m === -Infinity) {
    for (let r = 0; r < n; r++) out[base + r * stride] = log ? -Infinity : 0;
    return;
  }
  let s = 0;
  for (let r = 0; r < n; r++) s += Math.exp(x[base + r * stride] - m);
  if (log) {
    const ls = Math.log(s);
    for (let r = 0; r < n; r++) out[base + r * stride] = x[base + r * stride] - m - ls;
  } else {
    for (let r = 0; r < n; r++) out[base + r * stride] = Math.exp(x[base + r * stride] - m) / s;
  }
}

/** softmax(x)[i] of one line x [n] (contiguous): exp(x[i] - logsumexp(x)). */
export function softmaxAt(x: ArrayLike<number>, i: number): number {
  return Math.exp(x[i] - logSumExp(x));
}
