/**
 * The example inputs the dashboard starts from, per model, so its defaults work on any vocabulary: GPT-2's IOI
 * sentence and names where the tokenizer has them (GPT-2, the embedded model), else the model card's example
 * (the Hugging Face `widget` text in README.md's front matter, e.g. the addition model's `01234+56789=`), with the
 * model's own top two next tokens as target and contrast, and the prompt's tokens as the circuits view's sources.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { HookedTransformer } from '../../hooks/HookedTransformer.ts';

export interface ModelDefaults {
  /** The prompt the views run on until the user types one; null without a tokenizer or an example. */
  prompt: string | null;
  /** Target and contrast tokens (logit lens targets, logit-difference metrics). */
  target: string | null;
  contrast: string | null;
  /** Source tokens for "what does this head copy". */
  tokens: string[];
  /**
   * Whether a space is in the vocabulary (GPT-2: words inside a sentence start with one, " Mary"; the addition model's
   * characters have none): the dashboard offers a token's leading-space variant only when it is.
   */
  leadingSpace: boolean;
}

export const GPT2_DEFAULTS: ModelDefaults = {
  prompt: 'When Mary and John went to the store, John gave a drink to',
  target: ' Mary',
  contrast: ' John',
  tokens: [' Mary', ' John', ' the', ' cat', ' Paris', ' 1'],
  leadingSpace: true,
};

/** The first `widget` text of a model card's YAML front matter (Hugging Face's example input), or null. */
export function modelCardExample(readme: string): string | null {
  const front = /^---\r?\n([\s\S]*?)\r?\n---/.exec(readme);
  if (!front) return null;
  const m = /^widget:\s*\r?\n\s*-\s*text:\s*(?:"((?:[^"\\]|\\.)*)"|'([^']*)'|(\S.*?))\s*$/m.exec(front[1]);
  if (!m) return null;
  return m[1] !== undefined ? (JSON.parse(`"${m[1]}"`) as string) : (m[2] ?? m[3]);
}

function encodes(model: HookedTransformer, text: string, single: boolean): boolean {
  try {
    const ids = model.tokenizer!.encode(text);
    return single ? ids.length === 1 : ids.length > 0;
  } catch {
    return false;
  }
}

/** The defaults for `model`, loaded from `dir` (a local checkpoint; null for a hub model). */
export async function modelDefaults(model: HookedTransformer, dir: string | null): Promise<ModelDefaults> {
  if (!model.tokenizer) return { prompt: null, target: null, contrast: null, tokens: [], leadingSpace: false };
  const gpt2Like = encodes(model, GPT2_DEFAULTS.prompt!, false) && [GPT2_DEFAULTS.target!, GPT2_DEFAULTS.contrast!, ...GPT2_DEFAULTS.tokens].every((t) => encodes(model, t, true));
  if (gpt2Like) return GPT2_DEFAULTS;
  const readme = dir && existsSync(join(dir, 'README.md')) ? readFileSync(join(dir, 'README.md'), 'utf8') : '';
  const example = modelCardExample(readme);
  const leadingSpace = encodes(model, ' ', false);
  if (example === null || !encodes(model, example, false)) return { prompt: null, target: null, contrast: null, tokens: [], leadingSpace };
  const logits = await model.forward(example); // [1, pos, d_vocab]
  const [, pos, V] = logits.shape;
  const last = logits.data.subarray((pos - 1) * V, pos * V);
  const order = Array.from(last.keys()).sort((a, b) => last[b] - last[a]);
  const str = (id: number) => model.tokenizer!.decode([id]);
  const tokens = [...new Set(model.tokenizer.encode(example))].slice(0, 6).map(str);
  return { prompt: example, target: str(order[0]), contrast: str(order[1]), tokens, leadingSpace };
}
