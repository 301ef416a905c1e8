/**
 * Datasets of dataset experiments: each yields items, the unit an analysis runs on. Generators are deterministic
 * (item i depends on the seed and i only where noted), so a dataset is the same on every machine.
 */
import { IOI_HELDOUT_NAMES, IOI_TRAIN_NAMES, swapRepeatedName } from '../datasets/ioi.ts';
import { ioiDataset, type IoiTokenizer } from '../analysis/ioi.ts';

/** A text or its token ids (ids are used as given: no BOS is added to them). */
export type ItemPrompt = string | number[];
/** A token: a string that is exactly one token (" Mary"), or a token id. */
export type ItemToken = string | number;

/**
 * One item of a dataset. Which fields an analysis reads: `prompt` (every analysis; the clean prompt of patching),
 * `corrupted` (patching), `correct` / `incorrect` (the tokens of a logit-difference metric, a probability metric's
 * token, the logit lens's tracked tokens, unless the analysis names them), `io` / `s` (IOI metrics), `repeated`
 * (repeated random tokens, drawn from the model's token pool where the item runs).
 */
export interface DatasetItem {
  prompt?: ItemPrompt;
  corrupted?: ItemPrompt;
  correct?: ItemToken;
  incorrect?: ItemToken;
  /** The indirect object and the subject of an IOI prompt, without the leading space. */
  io?: string;
  s?: string;
  /** BOS + a span of `seqLen` random tokens + the same span (TransformerLens's generate_repeated_tokens), from `seed`. */
  repeated?: { seqLen: number; seed: number };
  /** A label of the item's own, kept in the per-item results. */
  id?: string | number;
}

/** A 32-bit seed for item `index` of a dataset seeded with `seed` (a splitmix32-style mix, so nearby seeds do not share items). */
export function itemSeed(seed: number, index: number): number {
  let x = (Math.imul(seed >>> 0, 0x9e3779b1) + Math.imul(index >>> 0, 0x85ebca6b) + 0x6d2b79f5) >>> 0;
  x = Math.imul(x ^ (x >>> 16), 0x21f0aaad) >>> 0;
  x = Math.imul(x ^ (x >>> 15), 0x735a2d97) >>> 0;
  return (x ^ (x >>> 15)) >>> 0;
}

export interface IoiItemsOptions {
  n: number;
  seed?: number;
  /** ABBA, BABA, or both (alternating, as the server's /api/ioi). */
  order?: 'ABBA' | 'BABA' | 'both';
  /** Template indices (default [0], so every prompt has the same length, as /api/ioi). */
  templates?: readonly number[];
  /** The training names (default) or the held-out ones. */
  names?: 'train' | 'heldout';
}

/**
 * IOI prompts (the toolkit's ioiDataset: same prompts for the same n, seed and order as /api/ioi), each with its
 * corrupted prompt (the other name repeated, so the answer flips; same token length) and its answer tokens.
 */
export function ioiItems(tokenizer: IoiTokenizer, o: IoiItemsOptions): DatasetItem[] {
  const ds = ioiDataset(tokenizer, {
    n: o.n, seed: o.seed ?? 0, order: o.order === undefined || o.order === 'both' ? 'mixed' : o.order,
    templates: o.templates, names: o.names === 'heldout' ? IOI_HELDOUT_NAMES : IOI_TRAIN_NAMES,
  });
  return ds.prompts.map((p) => ({
    prompt: p.prompt, corrupted: swapRepeatedName(p).prompt, correct: ` ${p.io}`, incorrect: ` ${p.s}`, io: p.io, s: p.s,
  }));
}

/** `n` repeated random-token sequences; item i is drawn from seed itemSeed(seed, i), so any item can be made on its own. */
export function repeatedItems(o: { n: number; seqLen: number; seed?: number }): DatasetItem[] {
  if (!Number.isInteger(o.n) || o.n < 1) throw new Error(`repeated: n must be a positive integer; got ${o.n}`);
  return Array.from({ length: o.n }, (_, i) => ({ repeated: { seqLen: o.seqLen, seed: itemSeed(o.seed ?? 0, i) } }));
}

export interface TextWindowOptions {
  /** Tokens per window (BOS not counted). */
  length: number;
  /** Tokens between window starts (default `length`: windows side by side). */
  stride?: number;
  /** Prepend BOS to every window (default true, as TransformerLens's tokenize_and_concatenate). */
  prependBos?: boolean;
  /** At most this many windows (default all). */
  limit?: number;
}

/** Windows of a text's tokens: window k is tokens [k·stride, k·stride + length) of the whole text, as token ids. */
export function textWindowItems(tokenizer: Pick<IoiTokenizer, 'encode'> & { bosTokenId: number }, text: string, o: TextWindowOptions): DatasetItem[] {
  const { length } = o;
  const stride = o.stride ?? length;
  if (!Number.isInteger(length) || length < 1) throw new Error(`text windows: length must be a positive integer; got ${length}`);
  if (!Number.isInteger(stride) || stride < 1) throw new Error(`text windows: stride must be a positive integer; got ${stride}`);
  const tokens = tokenizer.encode(text);
  const items: DatasetItem[] = [];
  const bos = o.prependBos ?? true ? [tokenizer.bosTokenId] : [];
  for (let start = 0; start + length <= tokens.length && items.length < (o.limit ?? Infinity); start += stride) {
    items.push({ prompt: [...bos, ...tokens.slice(start, start + length)] });
  }
  if (items.length === 0) throw new Error(`text windows: the text has ${tokens.length} tokens, fewer than one window of ${length}`);
  return items;
}
