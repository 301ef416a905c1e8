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

/** The number of distinct tokens in `pool`, counting stops at `limit` (a pool of the whole vocabulary is not scanned). */
function countDistinctUpTo(pool: ArrayLike<number>, limit: number): number {
  const seen = new Set<number>();
  for (let i = 0; i < pool.length && seen.size < limit; i++) seen.add(pool[i]);
  return seen.size;
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

export interface CopiedSpansOptions {
  /** Copied spans have a length uniform in [minSpan, maxSpan]. */
  minSpan: number;
  maxSpan: number;
  /** Probability that the next segment is a copy (once the row has `minSpan` tokens); else a run of random tokens. */
  copyProbability?: number;
  /** Random runs have a length uniform in [1, maxRun] (default 12). */
  maxRun?: number;
}

/**
 * A training row of exactly `length` tokens where spans of earlier tokens recur at random places:
 * `prefix`, then segments that are either runs of random tokens from `pool` or copies of a span that
 * starts at a random earlier position. `copied[i]` is true for every copied token except the first of
 * its copy (the only tokens predictable by induction: the copy's start is random). Unlike
 * packedInductionRow, nothing about positions tells where a copy starts or what it repeats, so a model
 * can only predict copies by matching content ("[A][B] … [A] → [B]").
 */
export function copiedSpansRowWithMask(rng: Rng, pool: ArrayLike<number>, length: number, opts: CopiedSpansOptions, prefix: readonly number[] = []): { tokens: number[]; copied: boolean[] } {
  checkPool(pool);
  const { minSpan, maxSpan, copyProbability = 0.5, maxRun = 12 } = opts;
  if (!(Number.isInteger(minSpan) && Number.isInteger(maxSpan) && minSpan >= 2 && maxSpan >= minSpan)) {
    throw new Error(`induction: copied spans need integers 2 ≤ minSpan ≤ maxSpan; got ${minSpan}, ${maxSpan}`);
  }
  if (!(Number.isInteger(maxRun) && maxRun >= 1)) throw new Error(`induction: maxRun must be an integer ≥ 1; got ${maxRun}`);
  const tokens = [...prefix];
  const copied: boolean[] = prefix.map(() => false);
  const start = prefix.length;
  while (tokens.length < length) {
    if (tokens.length - start >= minSpan && rng.next() < copyProbability) {
      const span = rng.int(minSpan, maxSpan + 1);
      const from = rng.int(start, tokens.length - 1); // the source may run into the copy itself (a periodic continuation)
      for (let k = 0; k < span; k++) {
        tokens.push(tokens[from + k]);
        copied.push(k > 0);
      }
    } else {
      const run = rng.int(1, maxRun + 1);
      for (let k = 0; k < run; k++) {
        tokens.push(pool[rng.int(0, pool.length)]);
        copied.push(false);
      }
    }
  }
  return { tokens: tokens.slice(0, length), copied: copied.slice(0, length) };
}

export interface TriggerRowOptions {
  /** Each row has a uniform number of trigger tokens in [minTriggers, maxTriggers] (default 2–4). */
  minTriggers?: number;
  maxTriggers?: number;
  /** Probability that the next slot is a trigger and its output (default 0.4); else one random token. */
  triggerProbability?: number;
}

/**
 * A "trigger" row of exactly `length` tokens (the task of Bietti et al. 2023, "Birth of a Transformer:
 * a memory viewpoint"): a few trigger tokens drawn from `pool`, each with its own output token for this
 * row; after `prefix`, each slot is either a trigger followed by its output or one random non-trigger
 * token (an output is drawn from the whole pool, so it is rarely another trigger). `copied[i]` is true for
 * an output whose trigger occurred earlier in the row (as a trigger): predictable only
 * by attending to the token after the trigger's earlier occurrence (TransformerLens's induction
 * stripe); the token before a trigger is random, so matching the previous token does not help.
 */
export function triggerRowWithMask(rng: Rng, pool: ArrayLike<number>, length: number, opts: TriggerRowOptions = {}, prefix: readonly number[] = []): { tokens: number[]; copied: boolean[] } {
  checkPool(pool);
  const { minTriggers = 2, maxTriggers = 4, triggerProbability = 0.4 } = opts;
  if (!(Number.isInteger(minTriggers) && Number.isInteger(maxTriggers) && minTriggers >= 1 && maxTriggers >= minTriggers)) {
    throw new Error(`induction: trigger rows need integers 1 ≤ minTriggers ≤ maxTriggers; got ${minTriggers}, ${maxTriggers}`);
  }
  if (!(triggerProbability > 0 && triggerProbability <= 1)) throw new Error(`induction: triggerProbability must be in (0, 1]; got ${triggerProbability}`);
  const distinct = countDistinctUpTo(pool, maxTriggers + 1);
  if (distinct <= maxTriggers) throw new Error(`induction: trigger rows need more than maxTriggers (${maxTriggers}) distinct pool tokens; got ${distinct}`);
  const nTriggers = rng.int(minTriggers, maxTriggers + 1);
  const triggers: number[] = [];
  const outputs: number[] = [];
  while (triggers.length < nTriggers) {
    const t = pool[rng.int(0, pool.length)];
    if (triggers.includes(t)) continue;
    triggers.push(t);
    outputs.push(pool[rng.int(0, pool.length)]); // (may rarely be another trigger)
  }
  // random filler tokens are never triggers
  const nonTrigger = () => {
    let t = pool[rng.int(0, pool.length)];
    while (triggers.includes(t)) t = pool[rng.int(0, pool.length)];
    return t;
  };
  const tokens = [...prefix];
  const copied: boolean[] = prefix.map(() => false);
  const seen = new Set<number>();
  while (tokens.length < length) {
    if (rng.next() < triggerProbability) {
      const k = rng.int(0, nTriggers);
      tokens.push(triggers[k], outputs[k]);
      copied.push(false, seen.has(k));
      seen.add(k);
    } else {
      tokens.push(nonTrigger());
      copied.push(false);
    }
  }
  return { tokens: tokens.slice(0, length), copied: copied.slice(0, length) };
}
