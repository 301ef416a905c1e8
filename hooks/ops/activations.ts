/** TransformerLens's MLP activation functions and their derivatives, for one value in float64. */
import type { ActFn } from '../config.ts';

const SQRT_2_OVER_PI = Math.sqrt(2 / Math.PI);
const TWO_OVER_SQRT_PI = 2 / Math.sqrt(Math.PI);

/**
 * The error function, accurate to ~1e-15 in float64. Uses the everywhere-positive series
 * erf(x) = 2/√π · e^{-x²} · Σ_n (2x²)^n x / (1·3·…·(2n+1)) (no cancellation), and ±1 for |x| ≥ 6
 * where erfc(6) ≈ 2e-17 is below float64 resolution.
 */
export function erf(x: number): number {
  if (Number.isNaN(x)) return NaN;
  const a = Math.abs(x);
  if (a >= 6) return Math.sign(x);
  const x2 = a * a;
  let term = a;
  let sum = a;
  for (let n = 1; n < 200; n++) {
    term *= (2 * x2) / (2 * n + 1);
    sum += term;
    if (term < sum * 1e-17) break;
  }
  const r = TWO_OVER_SQRT_PI * Math.exp(-x2) * sum;
  return x < 0 ? -r : r;
}

/** gelu_new (GPT-2's tanh approximation). */
export function geluNew(x: number): number {
  return 0.5 * x * (1 + Math.tanh(SQRT_2_OVER_PI * (x + 0.044715 * x * x * x)));
}

/** d gelu_new / dx. */
export function geluNewDerivative(x: number): number {
  const t = Math.tanh(SQRT_2_OVER_PI * (x + 0.044715 * x * x * x));
  const dt = (1 - t * t) * SQRT_2_OVER_PI * (1 + 3 * 0.044715 * x * x);
  return 0.5 * (1 + t) + 0.5 * x * dt;
}

function unknown(actFn: never): never {
  throw new Error(`unknown act_fn '${String(actFn)}'; allowed: gelu_new, gelu, gelu_fast, relu`);
}

/** The activation function `actFn` (gelu_new, exact-erf gelu, gelu_fast, relu). */
export function activationFn(actFn: ActFn): (x: number) => number {
  switch (actFn) {
    case 'gelu_new': return geluNew;
    case 'gelu': return (x) => 0.5 * x * (1 + erf(x / Math.SQRT2));
    case 'gelu_fast': return (x) => 0.5 * x * (1 + Math.tanh(x * 0.7978845608 * (1 + 0.044715 * x * x)));
    case 'relu': return (x) => (x > 0 ? x : 0);
    default: return unknown(actFn);
  }
}

/** The derivative of activationFn(actFn) (relu: 0 at x = 0). */
export function activationDerivative(actFn: ActFn): (x: number) => number {
  switch (actFn) {
    case 'gelu_new': return geluNewDerivative;
    case 'gelu': return (x) => 0.5 * (1 + erf(x / Math.SQRT2)) + (x * Math.exp(-0.5 * x * x)) / Math.sqrt(2 * Math.PI);
    case 'gelu_fast': return (x) => {
      const t = Math.tanh(x * 0.7978845608 * (1 + 0.044715 * x * x));
      return 0.5 * (1 + t) + 0.5 * x * (1 - t * t) * 0.7978845608 * (1 + 3 * 0.044715 * x * x);
    };
    case 'relu': return (x) => (x > 0 ? 1 : 0);
    default: return unknown(actFn);
  }
}
