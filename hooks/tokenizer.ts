/**
 * GPT-2's byte-level BPE tokenizer (via @huggingface/transformers) with TransformerLens's to_tokens / to_str_tokens / ...
 * semantics; other Hugging Face tokenizer.json files (e.g. the addition model's character-level one) load the same way.
 */
//
// Loading: reads tokenizer.json + tokenizer_config.json from a directory and constructs transformers.js's
// GPT2Tokenizer from the JSON objects directly — no hub, no network, no cache dir, and no change to
// transformers' global `env`. `@huggingface/transformers` is imported lazily (dynamic import in fromDir),
// so importing this module costs nothing until a tokenizer is loaded.
//
// One deliberate deviation from transformers.js, applied at load time: its ByteLevel pre-tokenizer uses
// GPT-2's regex with JavaScript's `\s`, which differs from the `\s` of every reference implementation
// (HF tokenizers/Oniguruma, Python `regex` in OpenAI's encoder.py and HF's slow GPT2Tokenizer, Rust tiktoken)
// on two code points: U+0085 (NEL) is whitespace there but not in JS, U+FEFF (BOM) is whitespace in JS only.
// We swap the pattern for one with the Oniguruma whitespace class so those texts tokenize as in HF GPT-2.
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { PreTrainedTokenizer } from '@huggingface/transformers';
import { readJsonFile, type FileAccess } from './loading/modelFiles.ts';

export type PaddingSide = 'left' | 'right';

export interface ToTokensOptions {
  /** Prepend BOS (<|endoftext|>, 50256) to every sequence. TransformerLens's GPT-2 default: true. */
  prependBos?: boolean;
  /** Where pad tokens go when a batch has sequences of different lengths. Default 'right'. */
  paddingSide?: PaddingSide;
  /** Cut every sequence (BOS included) to its first maxLength tokens. Default true, as TransformerLens. */
  truncate?: boolean;
  /** Length to truncate to; default model_max_length (GPT-2's n_ctx, 1024). Needs truncate !== false. */
  maxLength?: number;
}

export interface TokenizedBatch {
  /** [batch, pos] token ids, padded to the longest sequence with padTokenId. */
  tokens: number[][];
  /** [batch, pos] 1 for real tokens (BOS included), 0 at pads. */
  attentionMask: number[][];
}

export interface StrTokensOptions {
  /** Only used for string input (token-id input is taken as is). Default true. */
  prependBos?: boolean;
}

export interface TokenPositionOptions {
  /** 'first' or 'last' occurrence. Default 'first'. */
  mode?: 'first' | 'last';
  /** Only used for string input (token-id input is taken as is). Default true. */
  prependBos?: boolean;
}

/** Oniguruma's Unicode `\s`: U+0009..U+000D, U+0085 and General_Category Z (Zs, Zl, Zp). */
const ONIG_SPACE = '\\t-\\r\\x85\\p{Z}';
/** GPT-2's pre-tokenization regex with Oniguruma's `\s` spelled out (see the note at the top). */
export const GPT2_PRETOKENIZE_PATTERN = new RegExp(
  `'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^${ONIG_SPACE}\\p{L}\\p{N}]+|[${ONIG_SPACE}]+(?![^${ONIG_SPACE}])|[${ONIG_SPACE}]+`,
  'gu',
);
/** The pattern transformers.js 4.3.1 ships for ByteLevel; we only replace it if we find exactly this. */
const TRANSFORMERS_JS_BYTELEVEL_SOURCE = String.raw`'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+`;

const ENDOFTEXT = '<|endoftext|>';

/** <package root>/models/gpt2-tokenizer, resolved from this file (not the cwd). */
export const DEFAULT_GPT2_TOKENIZER_DIR = fileURLToPath(new URL('../models/gpt2-tokenizer/', import.meta.url));

/** The slice of transformers.js's internals we touch: the tokenizers.js Tokenizer's pre-tokenizer. */
interface ByteLevelInternals {
  _tokenizer?: { pre_tokenizer?: { constructor?: { name?: string }; pattern?: unknown; use_regex?: unknown } | null };
}

function installOnigWhitespacePattern(tok: PreTrainedTokenizer): void {
  const pre = (tok as unknown as ByteLevelInternals)._tokenizer?.pre_tokenizer;
  const pattern = pre?.pattern;
  if (!(pattern instanceof RegExp) || pattern.source !== TRANSFORMERS_JS_BYTELEVEL_SOURCE || pre?.use_regex !== true) {
    throw new Error(
      'Gpt2Tokenizer: @huggingface/transformers ByteLevel pre-tokenizer is not the expected one ' +
        `(pattern ${pattern instanceof RegExp ? pattern.source : String(pattern)}); ` +
        'the whitespace fix in hooks/tokenizer.ts was written for transformers 4.3.1 — re-check it before upgrading.',
    );
  }
  (pre as { pattern: RegExp }).pattern = GPT2_PRETOKENIZE_PATTERN;
}

/** A tokenizer file's JSON; a missing, unreadable or corrupt file is named in the error (its contents never are). */
async function readJson(path: string, access: FileAccess): Promise<unknown> {
  try {
    return await readJsonFile(path, access);
  } catch (err) {
    throw new Error(`Gpt2Tokenizer: ${(err as Error).message}`);
  }
}

export class Gpt2Tokenizer {
  readonly vocabSize: number;
  readonly bosTokenId: number;
  readonly eosTokenId: number;
  /** GPT-2 has no pad token; like TransformerLens we pad with EOS (<|endoftext|>). */
  readonly padTokenId: number;
  /** GPT-2's n_ctx (1024): default truncation length of toTokens. */
  readonly modelMaxLength: number;
  private readonly tok: PreTrainedTokenizer;
  /** GPT-2's byte-level BPE (every text encodes); false for other tokenizers, whose encodings are checked. */
  private readonly byteLevel: boolean;

  private constructor(tok: PreTrainedTokenizer, byteLevel: boolean) {
    this.tok = tok;
    this.byteLevel = byteLevel;
    this.vocabSize = tok.get_vocab().size;
    const id = (name: string, value: number | undefined) => {
      if (typeof value !== 'number') throw new Error(`Gpt2Tokenizer: tokenizer has no ${name} (expected ${ENDOFTEXT})`);
      return value;
    };
    this.bosTokenId = id('bos_token', tok.bos_token_id);
    this.eosTokenId = id('eos_token', tok.eos_token_id);
    this.padTokenId = id('pad_token', tok.pad_token_id ?? tok.eos_token_id);
    const maxLen = tok.model_max_length;
    this.modelMaxLength = typeof maxLen === 'number' && Number.isFinite(maxLen) ? maxLen : 1024;
  }

  /**
   * Loads tokenizer.json + tokenizer_config.json from `dir` (no network). With `allowedRoots`, both must resolve inside
   * one of them (see loading/modelFiles.ts). GPT-2's byte-level BPE gets the whitespace fix above; any other
   * tokenizer.json transformers.js reads (e.g. the addition model's character-level one) is loaded as it is, with the
   * same TransformerLens semantics (BOS prepended, …). A file that is not a usable tokenizer is named in the error.
   */
  static async fromDir(dir: string, access: FileAccess = {}): Promise<Gpt2Tokenizer> {
    const files = ['tokenizer.json', 'tokenizer_config.json'].map((f) => join(dir, f));
    const [tokenizerJson, tokenizerConfig] = await Promise.all(files.map((f) => readJson(f, access)));
    const { GPT2Tokenizer, PreTrainedTokenizer } = await import('@huggingface/transformers');
    const byteLevel = (tokenizerJson as { pre_tokenizer?: { type?: unknown } | null } | null)?.pre_tokenizer?.type === 'ByteLevel';
    let tok: PreTrainedTokenizer;
    try {
      tok = byteLevel ? new GPT2Tokenizer(tokenizerJson as object, tokenizerConfig as object) : new PreTrainedTokenizer(tokenizerJson as object, tokenizerConfig as object);
    } catch (err) {
      throw new Error(`Gpt2Tokenizer: ${files[0]} with ${files[1]} is not a usable tokenizer (${(err as Error).message})`);
    }
    if (byteLevel) installOnigWhitespacePattern(tok);
    try {
      return new Gpt2Tokenizer(tok, byteLevel);
    } catch (err) {
      throw new Error(`${(err as Error).message} (in ${files[0]})`);
    }
  }

  /** GPT-2's tokenizer from models/gpt2-tokenizer in this package. */
  static async default(): Promise<Gpt2Tokenizer> {
    return Gpt2Tokenizer.fromDir(DEFAULT_GPT2_TOKENIZER_DIR).catch((err: Error) => {
      throw new Error(`${err.message}; run \`npx tsx scripts/build-gpt2-tokenizer.ts\` to (re)create models/gpt2-tokenizer`);
    });
  }

  /** Token ids of `text`, no BOS. The literal text "<|endoftext|>" becomes the special token 50256, as in HF. */
  encode(text: string): number[] {
    if (typeof text !== 'string') throw new Error(`encode: expected a string, got ${describe(text)}`);
    const ids = this.tok.encode(text, { add_special_tokens: false });
    // GPT-2's byte-level BPE encodes every text; a vocabulary without byte fallback (the addition model's
    // characters) drops what it does not know, which would silently change the prompt
    if (!this.byteLevel) {
      const back = ids.length === 0 ? '' : this.tok.decode(ids, { skip_special_tokens: false, clean_up_tokenization_spaces: false });
      if (back !== text) {
        let i = 0;
        while (i < text.length && text[i] === back[i]) i++;
        throw new Error(`encode: ${JSON.stringify(text[i] ?? '')} at index ${i} of ${describe(text)} is not in this tokenizer's vocabulary (${this.vocabSize} tokens: ${this.vocabularyListing()})`);
      }
    }
    return ids;
  }

  /** The text of `ids` (special tokens kept, no clean-up of spaces — TransformerLens's decode). */
  decode(ids: readonly number[]): string {
    this.checkIds(ids, 'decode');
    if (ids.length === 0) return ''; // transformers.js throws on []; HF Python returns ''
    return this.tok.decode([...ids], { skip_special_tokens: false, clean_up_tokenization_spaces: false });
  }

  /** TransformerLens's to_tokens: ids [batch, pos] plus attention mask [batch, pos]. A string is a batch of 1. */
  toTokens(input: string | readonly string[], options: ToTokensOptions = {}): TokenizedBatch {
    const { prependBos = true, paddingSide = 'right', truncate = true } = options;
    if (paddingSide !== 'left' && paddingSide !== 'right') {
      throw new Error(`toTokens: paddingSide must be 'left' or 'right', got ${describe(paddingSide)}`);
    }
    if (options.maxLength !== undefined && !truncate) {
      throw new Error('toTokens: maxLength only applies when truncating; drop maxLength or set truncate: true');
    }
    const maxLength = options.maxLength ?? this.modelMaxLength;
    if (!Number.isInteger(maxLength) || maxLength < 1) {
      throw new Error(`toTokens: maxLength must be a positive integer, got ${describe(maxLength)}`);
    }
    const texts = typeof input === 'string' ? [input] : input;
    if (!Array.isArray(texts) || texts.length === 0) {
      throw new Error(`toTokens: input must be a string or a non-empty array of strings, got ${describe(input)}`);
    }
    const seqs = texts.map((text, i) => {
      if (typeof text !== 'string') throw new Error(`toTokens: input[${i}] must be a string, got ${describe(text)}`);
      const ids = this.encode(text);
      const full = prependBos ? [this.bosTokenId, ...ids] : ids;
      return truncate && full.length > maxLength ? full.slice(0, maxLength) : full;
    });
    const pos = Math.max(...seqs.map((s) => s.length));
    const tokens: number[][] = [];
    const attentionMask: number[][] = [];
    for (const seq of seqs) {
      const pads = new Array<number>(pos - seq.length).fill(this.padTokenId);
      const zeros = new Array<number>(pos - seq.length).fill(0);
      const ones = new Array<number>(seq.length).fill(1);
      tokens.push(paddingSide === 'right' ? [...seq, ...pads] : [...pads, ...seq]);
      attentionMask.push(paddingSide === 'right' ? [...ones, ...zeros] : [...zeros, ...ones]);
    }
    return { tokens, attentionMask };
  }

  /**
   * TransformerLens's to_str_tokens: each token decoded on its own (a character split across tokens shows
   * as U+FFFD pieces). A string is tokenized first (BOS per prependBos); token ids are used as given.
   */
  toStrTokens(input: string | readonly number[], options: StrTokensOptions = {}): string[] {
    const { prependBos = true } = options;
    let ids: readonly number[];
    if (typeof input === 'string') ids = this.toTokens(input, { prependBos }).tokens[0];
    else if (Array.isArray(input)) ids = input;
    else throw new Error(`toStrTokens: input must be a string or an array of token ids, got ${describe(input)}`);
    this.checkIds(ids, 'toStrTokens');
    return ids.map((id) => this.decode([id]));
  }

  /** TransformerLens's to_string: ids [pos] -> text; ids [batch, pos] -> one text per row. No argument: a description. */
  toString(): string;
  toString(ids: readonly number[]): string;
  toString(ids: readonly (readonly number[])[]): string[];
  toString(ids?: readonly number[] | readonly (readonly number[])[]): string | string[] {
    if (ids === undefined) return `Gpt2Tokenizer(vocabSize=${this.vocabSize})`;
    if (!Array.isArray(ids)) throw new Error(`toString: expected token ids [pos] or [batch, pos], got ${describe(ids)}`);
    if (ids.length > 0 && Array.isArray(ids[0])) {
      return (ids as readonly (readonly number[])[]).map((row, i) => {
        if (!Array.isArray(row)) throw new Error(`toString: row ${i} is ${describe(row)}, expected an array of token ids`);
        return this.decode(row);
      });
    }
    return this.decode(ids as readonly number[]);
  }

  /** TransformerLens's to_single_token: the id of a string that is exactly one token (no BOS). */
  toSingleToken(str: string): number {
    if (typeof str !== 'string') throw new Error(`toSingleToken: expected a string, got ${describe(str)}`);
    const ids = this.encode(str);
    if (ids.length !== 1) {
      const pieces = ids.map((id) => JSON.stringify(this.decode([id]))).join(', ');
      throw new Error(`toSingleToken: ${JSON.stringify(str)} is ${ids.length} tokens [${pieces}] (ids [${ids.join(', ')}]), not a single token`);
    }
    return ids[0];
  }

  /**
   * TransformerLens's get_token_position: index of the first/last occurrence of `single` in `input`.
   * A string input is tokenized with BOS per prependBos, so positions count the BOS.
   */
  getTokenPosition(single: string | number, input: string | readonly number[], options: TokenPositionOptions = {}): number {
    const { mode = 'first', prependBos = true } = options;
    if (mode !== 'first' && mode !== 'last') throw new Error(`getTokenPosition: mode must be 'first' or 'last', got ${describe(mode)}`);
    let tokens: readonly number[];
    if (typeof input === 'string') tokens = this.toTokens(input, { prependBos }).tokens[0];
    else if (Array.isArray(input)) tokens = input;
    else throw new Error(`getTokenPosition: input must be a string or an array of token ids, got ${describe(input)}`);
    this.checkIds(tokens, 'getTokenPosition');
    let id: number;
    if (typeof single === 'string') id = this.toSingleToken(single);
    else {
      this.checkIds([single], 'getTokenPosition');
      id = single;
    }
    const index = mode === 'first' ? tokens.indexOf(id) : tokens.lastIndexOf(id);
    if (index < 0) {
      const listing = tokens.map((t, i) => `${i}:${JSON.stringify(this.decode([t]))}`).join(' ');
      throw new Error(`getTokenPosition: token ${id} (${JSON.stringify(this.decode([id]))}) does not occur in the prompt; its tokens are ${listing}`);
    }
    return index;
  }

  /** The vocabulary's tokens in id order, for error messages (the first 40). */
  private vocabularyListing(): string {
    const byId = [...this.tok.get_vocab()].sort((a, b) => a[1] - b[1]).map(([t]) => JSON.stringify(t));
    return byId.length > 40 ? `${byId.slice(0, 40).join(' ')} …` : byId.join(' ');
  }

  private checkIds(ids: readonly unknown[], where: string): asserts ids is readonly number[] {
    if (!Array.isArray(ids)) throw new Error(`${where}: expected an array of token ids, got ${describe(ids)}`);
    for (let i = 0; i < ids.length; i++) {
      const id = ids[i];
      if (typeof id !== 'number' || !Number.isInteger(id) || id < 0 || id >= this.vocabSize) {
        throw new Error(`${where}: token id at index ${i} is ${describe(id)}; ids must be integers in [0, ${this.vocabSize})`);
      }
    }
  }
}

function describe(x: unknown): string {
  if (typeof x === 'string') return JSON.stringify(x.length > 60 ? x.slice(0, 60) + '…' : x);
  if (Array.isArray(x)) return `an array of length ${x.length}`;
  return x === null ? 'null' : typeof x === 'object' ? 'an object' : `${typeof x} ${String(x)}`;
}
