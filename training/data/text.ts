/** A text file as GPT-2 tokens, split into a training part and a held-out tail (splitTokens: hooks/datasets/text.ts). */
import { readFile } from 'node:fs/promises';
import { splitTokens, type TokenizedText } from '../../hooks/datasets/text.ts';
import type { Gpt2Tokenizer } from '../../hooks/tokenizer.ts';

export { splitTokens, type TokenizedText };

export async function readTokenizedText(tok: Gpt2Tokenizer, path: string, heldOutFraction = 0.1): Promise<TokenizedText> {
  const text = await readFile(path, 'utf8').catch((e: NodeJS.ErrnoException) => {
    throw new Error(`cannot read training data ${path}: ${e.code === 'ENOENT' ? 'no such file' : e.message}`);
  });
  if (text.length === 0) throw new Error(`training data ${path} is empty`);
  return splitTokens(tok, text, heldOutFraction);
}
