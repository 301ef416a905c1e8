/**
 * Repeated random-token sequences, the classic induction task: a span of random tokens followed by
 * the same span again, so that the second copy is predictable only by looking back ("[A][B] … [A] → [B]").
 */
import type { Rng } from '../../hooks/random.ts';

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
  const row = [...prefix];
  while (row.length < length) row.push(...repeatedRandomTokens(rng, pool, opts).tokens);
  return row.slice(0, length);
}
