/** A text file as GPT-2 tokens, split into a training part and a held-out tail. */
import { readFile } from 'node:fs/promises';
import type { Gpt2Tokenizer } from '../../hooks/tokenizer.ts';

export interface TokenizedText {
  train: Int32Array;
  heldOut: Int32Array;
}

/** Tokenizes `text` and holds out its last `heldOutFraction` of tokens (default 10 %). */
export function splitTokens(tok: Gpt2Tokenizer, text: string, heldOutFraction = 0.1): TokenizedText {
  if (!(heldOutFraction > 0 && heldOutFraction < 1)) throw new Error(`heldOutFraction must be in (0, 1); got ${heldOutFraction}`);
  const ids = Int32Array.from(tok.encode(text));
  const cut = Math.floor(ids.length * (1 - heldOutFraction));
  return { train: ids.subarray(0, cut), heldOut: ids.subarray(cut) };
}

export async function readTokenizedText(tok: Gpt2Tokenizer, path: string, heldOutFraction = 0.1): Promise<TokenizedText> {
  const text = await readFile(path, 'utf8').catch((e: NodeJS.ErrnoException) => {
    throw new Error(`cannot read training data ${path}: ${e.code === 'ENOENT' ? 'no such file' : e.message}`);
  });
  if (text.length === 0) throw new Error(`training data ${path} is empty`);
  return splitTokens(tok, text, heldOutFraction);
}
