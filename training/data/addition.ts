/**
 * The addition task (the seed's exercise EX2): the prompt `A+B=` with A and B decimal integers in [0, 99999]
 * zero-padded to 5 digits (`00123+04567=`, as minGPT's adder pads its operands: every problem has one layout), the answer the 6 digits of A + B zero-padded and least-significant digit first
 * (00123+04567= → `096400`), then the end-of-text token. A character-level vocabulary: the digits, `+`, `=` and
 * `<|endoftext|>`, which is also BOS (so a row is [BOS] A + B = c₀ … c₅ [EOS]). Problems are generated on the
 * fly from a seed; only the answer positions (6 digits and the end of text) are scored.
 */
import { Rng } from '../../hooks/random.ts';

/** Token ids: '0'–'9' → 0–9, '+' → 10, '=' → 11, '<|endoftext|>' → 12 (BOS, EOS and padding). */
export const ADDITION_CHARS = ['0', '1', '2', '3', '4', '5', '6', '7', '8', '9', '+', '='] as const;
export const ADDITION_EOT = '<|endoftext|>';
export const ADDITION_PLUS = 10;
export const ADDITION_EQUALS = 11;
export const ADDITION_EOT_ID = 12;
export const ADDITION_VOCAB = ADDITION_CHARS.length + 1;
/** Operands are in [0, MAX_OPERAND], written with OPERAND_DIGITS digits; the sum has at most ANSWER_DIGITS digits. */
export const MAX_OPERAND = 99_999;
export const OPERAND_DIGITS = 5;
export const ANSWER_DIGITS = 6;
/** Every row: BOS, 5 + 1 + 5 + 1 prompt characters, 6 answer digits, EOS. */
export const MAX_ROW = 1 + 5 + 1 + 5 + 1 + ANSWER_DIGITS + 1;

export interface AdditionProblem {
  a: number;
  b: number;
}

/** The prompt text `A+B=`, operands zero-padded to 5 digits (123 + 4567 → `00123+04567=`). */
export function additionPrompt(p: AdditionProblem): string {
  const pad = (x: number) => String(x).padStart(OPERAND_DIGITS, '0');
  return `${pad(p.a)}+${pad(p.b)}=`;
}

/** The answer text: the 6 digits of a + b, zero-padded, least significant first (00123+04567 → "096400"). */
export function additionAnswer(p: AdditionProblem): string {
  return String(p.a + p.b).padStart(ANSWER_DIGITS, '0').split('').reverse().join('');
}

/** Token ids of a string of digits, '+' and '=' (no BOS). */
export function encodeAddition(text: string): number[] {
  return Array.from(text, (ch) => {
    const id = (ADDITION_CHARS as readonly string[]).indexOf(ch);
    if (id < 0) throw new Error(`addition: character ${JSON.stringify(ch)} is not in the vocabulary (digits, '+', '=')`);
    return id;
  });
}

/** The training row of a problem: [BOS] prompt answer [EOS]. */
export function additionRow(p: AdditionProblem): number[] {
  return [ADDITION_EOT_ID, ...encodeAddition(additionPrompt(p) + additionAnswer(p)), ADDITION_EOT_ID];
}

/** A problem: both operands uniform in [0, 99999] (training and held-out problems alike). */
export function randomAdditionProblem(rng: Rng): AdditionProblem {
  return { a: rng.int(0, MAX_OPERAND + 1), b: rng.int(0, MAX_OPERAND + 1) };
}

export const problemKey = (p: AdditionProblem) => p.a * (MAX_OPERAND + 1) + p.b;

/** The held-out problems: `n` distinct problems with both operands uniform, from `seed` (training never draws them). */
export function heldOutAdditionProblems(n: number, seed: number): AdditionProblem[] {
  const rng = new Rng(seed);
  const keys = new Set<number>();
  const out: AdditionProblem[] = [];
  while (out.length < n) {
    const p = randomAdditionProblem(rng);
    if (keys.has(problemKey(p))) continue;
    keys.add(problemKey(p));
    out.push(p);
  }
  return out;
}

/**
 * The character-level tokenizer as Hugging Face files (tokenizer.json, tokenizer_config.json,
 * special_tokens_map.json): a BPE model over single characters with no merges (each character one token, as
 * Hugging Face's `tokenizers` and transformers.js read it), `<|endoftext|>` as a special added token that is BOS,
 * EOS and padding, and a Fuse decoder (tokens joined without spaces).
 */
export function additionTokenizerFiles(nCtx: number): Record<string, string> {
  const vocab: Record<string, number> = {};
  ADDITION_CHARS.forEach((ch, i) => { vocab[ch] = i; });
  vocab[ADDITION_EOT] = ADDITION_EOT_ID;
  const special = { id: ADDITION_EOT_ID, content: ADDITION_EOT, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true };
  const tokenizer = {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: [special],
    normalizer: null,
    pre_tokenizer: null,
    post_processor: null,
    decoder: { type: 'Fuse' },
    model: {
      type: 'BPE', dropout: null, unk_token: null, continuing_subword_prefix: null, end_of_word_suffix: null,
      fuse_unk: false, byte_fallback: false, ignore_merges: false, vocab, merges: [],
    },
  };
  const { id, ...decoderEntry } = special;
  const config = {
    add_bos_token: false,
    added_tokens_decoder: { [String(id)]: decoderEntry },
    bos_token: ADDITION_EOT,
    eos_token: ADDITION_EOT,
    pad_token: ADDITION_EOT,
    clean_up_tokenization_spaces: false,
    model_max_length: nCtx,
    tokenizer_class: 'PreTrainedTokenizerFast',
  };
  const map = { bos_token: ADDITION_EOT, eos_token: ADDITION_EOT, pad_token: ADDITION_EOT };
  const json = (x: unknown) => JSON.stringify(x, null, 2) + '\n';
  return { 'tokenizer.json': json(tokenizer), 'tokenizer_config.json': json(config), 'special_tokens_map.json': json(map) };
}
