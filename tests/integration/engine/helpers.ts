/** Shared helpers for the engine integration tests: tiny configs, weight copies, tensor/cache comparison, hook builders. */
import { expect } from 'vitest';
import type { ActivationCache } from '../../../hooks/ActivationCache.ts';
import type { HookedTransformerConfig } from '../../../hooks/config.ts';
import type { CacheKey } from '../../../hooks/hookPoints.ts';
import { gpt2Config, randomWeights } from '../../../hooks/init.ts';
import { Tensor } from '../../../hooks/tensor.ts';
import type { TransformerWeights } from '../../../hooks/weights.ts';

/** A tiny GPT-2: 2 layers, d_model 16, 4 heads of d_head 4, d_mlp 64, d_vocab 60, n_ctx 32. */
export function tinyConfig(overrides: Partial<HookedTransformerConfig> = {}): HookedTransformerConfig {
  return gpt2Config({ model_name: 'tiny', n_layers: 2, d_model: 16, n_heads: 4, d_vocab: 60, n_ctx: 32, ...overrides });
}

/** Random weights with non-trivial LayerNorms and biases, std 0.3 so activations are O(1) and every weight matters. */
export function tinyWeights(cfg: HookedTransformerConfig, seed: number): TransformerWeights {
  return randomWeights(cfg, { seed, randomAffine: true, std: 0.3 });
}

/** A deep copy (processing and some consumers mutate weights in place). */
export function cloneWeights(w: TransformerWeights): TransformerWeights {
  return structuredClone(w);
}

/**
 * Largest |a - b|; shapes must match. Equal values (including the same infinity) count 0;
 * any NaN, or an infinity against anything else, counts Infinity (so it never passes a tolerance).
 */
export function maxDiff(a: Tensor, b: Tensor): number {
  if (a.shape.join(',') !== b.shape.join(',')) {
    throw new Error(`shape mismatch: [${a.shape.join(', ')}] vs [${b.shape.join(', ')}]`);
  }
  let worst = 0;
  for (let i = 0; i < a.data.length; i++) {
    const x = a.data[i];
    const y = b.data[i];
    if (x === y) continue;
    const d = Math.abs(x - y);
    if (!Number.isFinite(d)) return Infinity;
    if (d > worst) worst = d;
  }
  return worst;
}

/** Asserts same shape and max |actual - expected| <= atol (infinities must match exactly, NaN never passes). */
export function expectClose(actual: Tensor, expected: Tensor, atol: number, label = ''): void {
  expect(actual.shape, `${label} shape`).toEqual(expected.shape);
  const d = maxDiff(actual, expected);
  expect(d, `${label} max |diff| = ${d} > ${atol}`).toBeLessThanOrEqual(atol);
}

/** Asserts the two tensors are bitwise-equal element by element (same shape). */
export function expectExactlyEqual(actual: Tensor, expected: Tensor, label = ''): void {
  expect(actual.shape, `${label} shape`).toEqual(expected.shape);
  let bad = -1;
  for (let i = 0; i < actual.data.length; i++) {
    if (!Object.is(actual.data[i], expected.data[i])) {
      bad = i;
      break;
    }
  }
  expect(bad, `${label}: first differing flat index ${bad}`).toBe(-1);
}

/** Every name of `names` is in both; returns "name: diff" for each entry over `atol` (empty = all match). */
export function cacheMismatches(
  cache: ActivationCache,
  ref: ReadonlyMap<CacheKey, Tensor>,
  names: readonly CacheKey[],
  atol: number,
): string[] {
  const bad: string[] = [];
  for (const name of names) {
    const r = ref.get(name);
    if (!r) {
      bad.push(`${name}: not in the reference cache`);
      continue;
    }
    if (!cache.has(name)) {
      bad.push(`${name}: not in the engine cache`);
      continue;
    }
    const e = cache.get(name);
    if (e.shape.join(',') !== r.shape.join(',')) {
      bad.push(`${name}: shape [${e.shape}] vs reference [${r.shape}]`);
      continue;
    }
    const d = maxDiff(e, r);
    if (d > atol) bad.push(`${name}: max |diff| ${d}`);
  }
  return bad;
}

/** A copy of `t` with `fn(value, multi-index)` applied to every element. */
export function mapIndexed(t: Tensor, fn: (v: number, idx: number[]) => number): Tensor {
  const out = new Float32Array(t.data.length);
  const idx = new Array<number>(t.ndim).fill(0);
  for (let i = 0; i < out.length; i++) {
    out[i] = fn(t.data[i], idx);
    for (let a = t.ndim - 1; a >= 0; a--) {
      if (++idx[a] < t.shape[a]) break;
      idx[a] = 0;
    }
  }
  return new Tensor(out, t.shape);
}

/** Deterministic token ids in [0, d_vocab): `batch` rows of `pos`. */
export function tokenBatch(batch: number, pos: number, dVocab: number, seed = 1): number[][] {
  let s = seed * 7919 + 13;
  return Array.from({ length: batch }, () =>
    Array.from({ length: pos }, () => {
      s = (s * 1103515245 + 12345) % 2147483648;
      return s % dVocab;
    }),
  );
}

/** Numbers-only hook function usable by both the engine (act, hookPoint) and the reference (act, name). */
export type PlainHook = (act: Tensor) => Tensor | void;

/** Zero one head of a [batch, head, q, k] pattern (returns a new tensor). */
export const zeroPatternHead = (head: number): PlainHook => (a) => mapIndexed(a, (v, [, h]) => (h === head ? 0 : v));

/** Set the listed heads of a [batch, pos, head, d_*] activation to `value(b, p, h, e)` (returns a new tensor). */
export const setHeads =
  (heads: readonly number[], value: (b: number, p: number, h: number, e: number) => number): PlainHook =>
  (a) =>
    mapIndexed(a, (v, [b, p, h, e]) => (heads.includes(h) ? value(b, p, h, e) : v));

/** Multiply a whole activation by `k` (returns a new tensor). */
export const scaleBy = (k: number): PlainHook => (a) => a.mul(k);
