/**
 * Repeated random-token sequences, the classic induction task: a span of random tokens followed by
 * the same span again, so that the second copy is predictable only by looking back ("[A][B] … [A] → [B]").
 */
import type { Rng } from '../random.ts';

export interface RepeatedTokensOptions {
  /** Span length is uniform in [minSpan, maxSpan]. */
  minSpan: number;
  maxSpan: number;
  /** How many times the span occurs (default 2). */
  repeats?: number;
}

function checkPool(pool: ArrayLike<number>): void {
  if (pool.length === 0) throw new Error('induction: the token pool is empty');
}

/** `n` tokens drawn uniformly (with replacement) from `pool`. */
export function randomTokens(rng: Rng, pool: ArrayLike<number>, n: number): number[] {
  checkPool(pool);
  return Array.from({ length: n }, () => pool[rng.int(0, pool.length)]);
}

/** One span of random tokens from `pool`, repeated: returns the tokens (no BOS) and the span length. */
export function repeatedRandomTokens(rng: Rng, pool: ArrayLike<number>, opts: RepeatedTokensOptions): { tokens: number[]; span: number } {
  const { minSpan, maxSpan, repeats = 2 } = opts;
  if (!(Number.isInteger(minSpan) && Number.isInteger(maxSpan) && minSpan >= 1 && maxSpan >= minSpan)) {
    throw new Error(`induction: need integers 1 ≤ minSpan ≤ maxSpan; got ${minSpan}, ${maxSpan}`);
  }
  const span = rng.int(minSpan, maxSpan + 1);
  const once = randomTokens(rng, pool, span);
  const tokens: number[] = [];
  for (let r = 0; r < repeats; r++) tokens.push(...once);
  return { tokens, span };
}

/**
 * A training row of exactly `length` tokens: `prefix` (e.g. [BOS]) then repeated spans packed
 * back to back (the last one cut at `length`).
 */
export function packedInductionRow(rng: Rng, pool: ArrayLike<number>, length: number, opts: RepeatedTokensOptions, prefix: readonly number[] = []): number[] {
  return packedInductionRowWithMask(rng, pool, length, opts, prefix).tokens;
}

/**
 * As packedInductionRow, plus `repeated[i]`: true where token i is part of a repeat (predictable
 * by induction), false for prefix tokens and first copies (unpredictable random tokens).
 */
export function packedInductionRowWithMask(rng: Rng, pool: ArrayLike<number>, length: number, opts: RepeatedTokensOptions, prefix: readonly number[] = []): { tokens: number[]; repeated: boolean[] } {
  const tokens = [...prefix];
  const repeated: boolean[] = prefix.map(() => false);
  while (tokens.length < length) {
    const { tokens: t, span } = repeatedRandomTokens(rng, pool, opts);
    tokens.push(...t);
    t.forEach((_, i) => repeated.push(i >= span));
  }
  return { tokens: tokens.slice(0, length), repeated: repeated.slice(0, length) };
}
