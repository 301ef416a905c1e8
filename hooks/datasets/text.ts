/**
 * A text file as GPT-2 tokens: tokenized a piece at a time (the same tokens as the whole text, in bounded memory), and
 * split into a training part and a held-out tail (the last 10 % of the tokens by default: what the trainer holds out
 * of Tiny Shakespeare, and the corpus of the neurons' top examples).
 */
import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import type { Gpt2Tokenizer } from '../tokenizer.ts';

/** The repository's corpus: Tiny Shakespeare (data/README.md). */
export const TINY_SHAKESPEARE = fileURLToPath(new URL('../../data/tinyshakespeare.txt', import.meta.url));

export interface TokenizedText {
  train: Int32Array;
  heldOut: Int32Array;
}

/**
 * The tokens of `text`, tokenized in pieces of about `pieceChars` characters, each cut just before a newline that follows
 * a non-space character: GPT-2's pre-tokenizer never joins such a character to the whitespace after it, so the pieces'
 * tokens are the whole text's.
 */
export function encodeInPieces(tok: Gpt2Tokenizer, text: string, pieceChars = 64 * 1024): Int32Array {
  const parts: number[][] = [];
  let length = 0;
  let start = 0;
  while (start < text.length) {
    let end = Math.min(text.length, start + pieceChars);
    if (end < text.length) {
      let cut = -1;
      for (let i = end; i > start + 1; i--) {
        if (text[i] === '\n' && !/\s/.test(text[i - 1])) {
          cut = i;
          break;
        }
      }
      if (cut < 0) {
        // No safe cut in this piece: look forwards for the next one (or take the rest).
        cut = text.length;
        for (let i = end; i < text.length; i++) {
          if (text[i] === '\n' && !/\s/.test(text[i - 1])) {
            cut = i;
            break;
          }
        }
      }
      end = cut;
    }
    const ids = tok.encode(text.slice(start, end));
    parts.push(ids);
    length += ids.length;
    start = end;
  }
  const out = new Int32Array(length);
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

/** Tokenizes `text` and holds out its last `heldOutFraction` of tokens (default 10 %). */
export function splitTokens(tok: Gpt2Tokenizer, text: string, heldOutFraction = 0.1): TokenizedText {
  if (!(heldOutFraction > 0 && heldOutFraction < 1)) throw new Error(`heldOutFraction must be in (0, 1); got ${heldOutFraction}`);
  const ids = encodeInPieces(tok, text);
  const cut = Math.floor(ids.length * (1 - heldOutFraction));
  return { train: ids.subarray(0, cut), heldOut: ids.subarray(cut) };
}

/** The held-out tail of a text file's tokens (splitTokens's `heldOut`). */
export async function readHeldOutTokens(tok: Gpt2Tokenizer, path: string, heldOutFraction = 0.1): Promise<Int32Array> {
  const text = await readFile(path, 'utf8').catch((e: NodeJS.ErrnoException) => {
    throw new Error(`cannot read the corpus ${path}: ${e.code === 'ENOENT' ? 'no such file' : e.message}`);
  });
  if (text.length === 0) throw new Error(`the corpus ${path} is empty`);
  return splitTokens(tok, text, heldOutFraction).heldOut;
}

/**
 * Contexts of `contextSize` tokens cut one after another from `tokens`, each starting with `bos` (then contextSize − 1
 * tokens of the text); a last partial context is dropped. [contexts, contextSize]
 */
export function contextsOf(tokens: Int32Array, contextSize: number, bos: number): Int32Array[] {
  if (!Number.isInteger(contextSize) || contextSize < 2) throw new Error(`contextSize must be an integer ≥ 2; got ${contextSize}`);
  const body = contextSize - 1;
  const out: Int32Array[] = [];
  for (let start = 0; start + body <= tokens.length; start += body) {
    const row = new Int32Array(contextSize);
    row[0] = bos;
    row.set(tokens.subarray(start, start + body), 1);
    out.push(row);
  }
  return out;
}
