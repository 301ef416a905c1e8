/** Turns token rows into class batches for the trainer, and samples windows of a token stream. */
import type { Rng } from '../../hooks/random.ts';
import type { ClassBatch } from '../model/forwardBackward.ts';
import type { SeenVocab } from '../model/vocab.ts';

/**
 * Rows of token ids (each predicts its own next tokens) → a class batch: inputs = row[0 … n-2],
 * targets = row[1 … n-1]; shorter rows are padded with `padToken` and their padding has no target.
 * `targetFrom[i]` (optional) drops the targets of row i before that input position.
 */
export function rowsToBatch(rows: readonly (readonly number[])[], vocab: SeenVocab, padToken: number, targetFrom?: readonly number[]): ClassBatch {
  if (rows.length === 0) throw new Error('rowsToBatch: no rows');
  const T = Math.max(...rows.map((r) => r.length)) - 1;
  if (T < 1) throw new Error('rowsToBatch: every row needs at least 2 tokens');
  const B = rows.length;
  const inputs = new Int32Array(B * T).fill(vocab.classOf[padToken]);
  const targets = new Int32Array(B * T).fill(-1);
  rows.forEach((row, b) => {
    for (let p = 0; p < row.length - 1; p++) {
      inputs[b * T + p] = vocab.classOf[row[p]];
      if (targetFrom === undefined || p >= targetFrom[b]) targets[b * T + p] = vocab.classOf[row[p + 1]];
    }
  });
  return { batch: B, pos: T, inputs, targets };
}

/**
 * Like rowsToBatch, with `scored(row, p)` deciding whether the token row[p + 1] (predicted at input
 * position p) is scored.
 */
export function rowsToBatchWhere(rows: readonly (readonly number[])[], vocab: SeenVocab, padToken: number, scored: (row: number, p: number) => boolean): ClassBatch {
  const b = rowsToBatch(rows, vocab, padToken);
  for (let r = 0; r < b.batch; r++) for (let p = 0; p < b.pos; p++) if (b.targets[r * b.pos + p] >= 0 && !scored(r, p)) b.targets[r * b.pos + p] = -1;
  return b;
}

/** `rows` windows of `length` consecutive tokens from `stream`, each preceded by `prefix` (e.g. [BOS]). */
export function randomWindows(rng: Rng, stream: Int32Array, rows: number, length: number, prefix: readonly number[] = []): number[][] {
  if (stream.length < length + 1) throw new Error(`randomWindows: the text has ${stream.length} tokens; need more than ${length}`);
  return Array.from({ length: rows }, () => {
    const start = rng.int(0, stream.length - length + 1);
    return [...prefix, ...stream.subarray(start, start + length)];
  });
}

/** Non-overlapping windows from the start of `stream` (for a fixed evaluation set). */
export function consecutiveWindows(stream: Int32Array, rows: number, length: number, prefix: readonly number[] = []): number[][] {
  const out: number[][] = [];
  for (let i = 0; i < rows && (i + 1) * length <= stream.length; i++) out.push([...prefix, ...stream.subarray(i * length, (i + 1) * length)]);
  if (out.length === 0) throw new Error(`consecutiveWindows: the text has ${stream.length} tokens; need at least ${length}`);
  return out;
}

/** A deterministic RNG seed for (seed, step, stream), so batch `step` is the same on resume. */
export function stepSeed(seed: number, step: number, stream = 0): number {
  let h = (seed ^ 0x9e3779b9) >>> 0;
  h = Math.imul(h ^ (step + 0x7f4a7c15), 0x85ebca6b) >>> 0;
  h = Math.imul(h ^ (h >>> 13) ^ (stream * 0x27d4eb2f), 0xc2b2ae35) >>> 0;
  return (h ^ (h >>> 16)) >>> 0;
}
