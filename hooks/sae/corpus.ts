/**
 * A text file as a stream of model contexts, for harvesting activations (SAE training, evaluation,
 * feature dashboards): the file is read and tokenized a chunk at a time (never whole), and cut into
 * contexts of `contextSize` tokens, each starting with BOS as SAELens's prepend_bos does. The last
 * `heldOutFraction` of the file (by bytes, from a line start) is held out: `split` picks the part.
 */
import { open, stat } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { Rng } from '../random.ts';
import type { Gpt2Tokenizer } from '../tokenizer.ts';

export type CorpusSplit = 'train' | 'heldOut' | 'all';

/** The repository's corpus: Tiny Shakespeare (data/README.md). */
export const DEFAULT_CORPUS = fileURLToPath(new URL('../../data/tinyshakespeare.txt', import.meta.url));

export interface CorpusOptions {
  /** Tokens per context, BOS included. */
  contextSize: number;
  /** Which part of the file (default 'all'). */
  split?: CorpusSplit;
  /** The held-out tail's share of the file (default 0.1). */
  heldOutFraction?: number;
  /** Start each context with BOS (default true). */
  prependBos?: boolean;
  /** Go round the part again and again (each pass shifted by a random number of tokens, from `seed`); default once. */
  loop?: boolean;
  seed?: number;
  /** Bytes read and tokenized at a time (default 256 KiB). */
  chunkBytes?: number;
}

/** The byte range of `split` in a file of `size` bytes (the cut moved to the next line start by the reader). */
function byteRange(size: number, split: CorpusSplit, heldOutFraction: number): [number, number] {
  if (!(heldOutFraction > 0 && heldOutFraction < 1)) throw new Error(`heldOutFraction must be in (0, 1); got ${heldOutFraction}`);
  const cut = Math.floor(size * (1 - heldOutFraction));
  return split === 'train' ? [0, cut] : split === 'heldOut' ? [cut, size] : [0, size];
}

/**
 * Where a chunk of text can end so that tokenizing the pieces apart gives the tokens of the whole:
 * just before its last newline that follows a non-space character (GPT-2's pre-tokenizer never joins
 * such a character to the whitespace after it, and the whitespace run then starts the next piece
 * whole). -1 when there is none.
 */
export function safeCut(text: string): number {
  for (let i = text.length - 1; i > 0; i--) if (text[i] === '\n' && !/\s/.test(text[i - 1])) return i;
  return -1;
}

/**
 * The tokens of bytes [from, to) of `path`, a chunk at a time, equal to the tokens of that text
 * tokenized whole (see safeCut). A range that does not start the file starts after the first newline
 * at or past `from` (so the train part and the held-out tail never share a line).
 */
export async function* fileTokens(path: string, tokenizer: Gpt2Tokenizer, from: number, to: number, chunkBytes = 256 * 1024): AsyncGenerator<number[]> {
  const fh = await open(path, 'r').catch((e: NodeJS.ErrnoException) => {
    throw new Error(`cannot read the corpus ${path}: ${e.code === 'ENOENT' ? 'no such file' : e.message}`);
  });
  try {
    const decoder = new TextDecoder('utf-8');
    let pos = from;
    let carry = '';
    let skipToLine = from > 0;
    const buf = Buffer.alloc(chunkBytes);
    while (pos < to) {
      const { bytesRead } = await fh.read(buf, 0, Math.min(chunkBytes, to - pos), pos);
      if (bytesRead === 0) break;
      pos += bytesRead;
      let text = carry + decoder.decode(buf.subarray(0, bytesRead), { stream: pos < to });
      if (skipToLine) {
        const nl = text.indexOf('\n');
        if (nl < 0) { carry = ''; continue; }
        text = text.slice(nl + 1);
        skipToLine = false;
      }
      const cut = pos < to ? safeCut(text) : text.length;
      if (cut <= 0) { carry = text; continue; }
      carry = text.slice(cut);
      const ids = tokenizer.encode(text.slice(0, cut));
      if (ids.length > 0) yield ids;
    }
    if (carry.length > 0) {
      const ids = tokenizer.encode(carry);
      if (ids.length > 0) yield ids;
    }
  } finally {
    await fh.close();
  }
}

/**
 * Contexts of `contextSize` tokens (BOS first unless prependBos is false) cut one after another
 * from the chosen part of `path`; a last partial context is dropped. With `loop`, passes repeat
 * forever, each starting a random number of tokens in (so the same text lands at new positions).
 */
export async function* corpusContexts(path: string, tokenizer: Gpt2Tokenizer, opts: CorpusOptions): AsyncGenerator<number[]> {
  const { contextSize } = opts;
  const prependBos = opts.prependBos ?? true;
  if (!Number.isInteger(contextSize) || contextSize < (prependBos ? 2 : 1)) throw new Error(`contextSize must be an integer ≥ ${prependBos ? 2 : 1}; got ${contextSize}`);
  const size = (await stat(path).catch(() => { throw new Error(`cannot read the corpus ${path}: no such file`); })).size;
  const [from, to] = byteRange(size, opts.split ?? 'all', opts.heldOutFraction ?? 0.1);
  const body = prependBos ? contextSize - 1 : contextSize;
  const bos = tokenizer.bosTokenId;
  const rng = new Rng(opts.seed ?? 0);
  let pass = 0;
  do {
    let skip = pass === 0 ? 0 : rng.int(0, body);
    let row: number[] = [];
    let produced = 0;
    for await (const ids of fileTokens(path, tokenizer, from, to, opts.chunkBytes)) {
      let i = Math.min(skip, ids.length);
      skip -= i;
      while (i < ids.length) {
        const take = Math.min(body - row.length, ids.length - i);
        for (let j = 0; j < take; j++) row.push(ids[i + j]);
        i += take;
        if (row.length === body) {
          yield prependBos ? [bos, ...row] : row;
          produced++;
          row = [];
        }
      }
    }
    if (produced === 0) throw new Error(`the corpus ${path} (${opts.split ?? 'all'}) has fewer than ${body} tokens: no context of ${contextSize} tokens`);
    pass++;
  } while (opts.loop);
}

/**
 * Runs `run` on batches of up to `batchSize` contexts of one length (a context of another length starts a new
 * batch), until the contexts end or `done()` says so after a batch. `signal` aborts between batches.
 */
export async function forEachBatch(
  contexts: AsyncIterable<number[]> | Iterable<number[]>,
  batchSize: number,
  run: (batch: number[][]) => Promise<void>,
  opts: { done?: () => boolean; signal?: AbortSignal; what: string },
): Promise<void> {
  let pending: number[][] = [];
  for await (const ctx of contexts) {
    if (opts.signal?.aborted) throw new Error(`${opts.what} cancelled`);
    if (pending.length > 0 && ctx.length !== pending[0].length) {
      await run(pending);
      pending = [];
      if (opts.done?.()) return;
    }
    pending.push(ctx);
    if (pending.length === batchSize) {
      await run(pending);
      pending = [];
      if (opts.done?.()) return;
    }
  }
  if (pending.length > 0) await run(pending);
}
