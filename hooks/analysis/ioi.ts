/**
 * Indirect object identification (Wang et al. 2022) for analysis: a tokenized dataset from the
 * training data's IOI templates (ABBA / BABA, names that are single tokens in the model's tokenizer),
 * its corrupted "ABC" version, the IO − S logit difference and per-head attribution.
 */
import {
  IOI_OBJECTS,
  IOI_PLACES,
  IOI_TEMPLATES,
  IOI_TRAIN_NAMES,
  fillIoiTemplate,
  type IoiOrder,
  type IoiPrompt,
} from '../datasets/ioi.ts';
import type { HookedTransformer } from '../HookedTransformer.ts';
import { Rng } from '../random.ts';
import { Tensor } from '../tensor.ts';
import { directLogitAttribution, type DlaResult } from './directLogitAttribution.ts';
import { logitDiffs } from './metrics.ts';

export type { IoiPrompt, IoiOrder };

/** What the dataset needs from a tokenizer (Gpt2Tokenizer has both). */
export interface IoiTokenizer {
  encode(text: string): number[];
  toTokens(input: string | readonly string[], opts?: { prependBos?: boolean; paddingSide?: 'left' | 'right' }): { tokens: number[][]; attentionMask: number[][] };
}

export interface IoiDatasetOptions {
  /** Number of prompts. */
  n: number;
  seed?: number;
  /** Template indices into the training data's IOI_TEMPLATES (default [0], so every prompt has the same length). */
  templates?: readonly number[];
  /** Candidate names (default the training names); only those that are one token (with a leading space) are used. */
  names?: readonly string[];
  /** 'ABBA', 'BABA' or 'mixed' (default: alternating ABBA, BABA). */
  order?: IoiOrder | 'mixed';
  /** Prepend BOS (default true). */
  prependBos?: boolean;
}

export interface IoiDataset {
  prompts: IoiPrompt[];
  /** [n, pos] right-padded token ids and their attention mask (all ones when every prompt has the same length). */
  tokens: number[][];
  attentionMask: number[][];
  /** True when prompts differ in length (then pass attentionMask to the model). */
  padded: boolean;
  /** Position of each prompt's last token (where the IO is predicted). */
  endPos: number[];
  /** Token ids of ' ' + IO (the answer) and ' ' + S (the repeated subject), per prompt. */
  ioTokens: number[];
  sTokens: number[];
  /** The single-token names the dataset drew from. */
  names: string[];
}

/** The words (with a leading space) of `words` that are single tokens. */
export function singleTokenWords(tokenizer: Pick<IoiTokenizer, 'encode'>, words: readonly string[]): string[] {
  return words.filter((w) => tokenizer.encode(` ${w}`).length === 1);
}

function tokenize(tokenizer: IoiTokenizer, prompts: IoiPrompt[], texts: string[], prependBos: boolean, names: string[]): IoiDataset {
  const { tokens, attentionMask } = tokenizer.toTokens(texts, { prependBos, paddingSide: 'right' });
  const endPos = attentionMask.map((row) => row.reduce((a, b) => a + b, 0) - 1);
  const one = (w: string) => {
    const ids = tokenizer.encode(` ${w}`);
    if (ids.length !== 1) throw new Error(`IOI: ' ${w}' is ${ids.length} tokens; names must be single tokens`);
    return ids[0];
  };
  return {
    prompts,
    tokens,
    attentionMask,
    padded: attentionMask.some((r) => r.some((m) => m === 0)),
    endPos,
    ioTokens: prompts.map((p) => one(p.io)),
    sTokens: prompts.map((p) => one(p.s)),
    names,
  };
}

/** An IOI dataset of `n` prompts ("When Mary and John went to the store, John gave a drink to" → " Mary"). */
export function ioiDataset(tokenizer: IoiTokenizer, opts: IoiDatasetOptions): IoiDataset {
  if (!Number.isInteger(opts.n) || opts.n < 1) throw new Error(`ioiDataset: n must be a positive integer; got ${opts.n}`);
  const templates = opts.templates ?? [0];
  for (const t of templates) {
    if (!Number.isInteger(t) || t < 0 || t >= IOI_TEMPLATES.length) throw new Error(`ioiDataset: template ${t} does not exist; allowed 0…${IOI_TEMPLATES.length - 1}`);
  }
  const names = singleTokenWords(tokenizer, opts.names ?? IOI_TRAIN_NAMES);
  if (names.length < 3) throw new Error(`ioiDataset: need at least 3 names that are single tokens; got ${names.length} (${names.join(', ')})`);
  const places = singleTokenWords(tokenizer, IOI_PLACES);
  const objects = singleTokenWords(tokenizer, IOI_OBJECTS);
  if (places.length === 0 || objects.length === 0) throw new Error('ioiDataset: no single-token places or objects in this tokenizer');
  const rng = new Rng(opts.seed ?? 0);
  const pick = <T>(xs: readonly T[]): T => xs[rng.int(0, xs.length)];
  const prompts: IoiPrompt[] = [];
  for (let i = 0; i < opts.n; i++) {
    const io = pick(names);
    let s = pick(names);
    while (s === io) s = pick(names);
    const order: IoiOrder = opts.order && opts.order !== 'mixed' ? opts.order : i % 2 === 0 ? 'ABBA' : 'BABA';
    prompts.push(fillIoiTemplate(pick(templates), io, s, order, pick(places), pick(objects)));
  }
  return tokenize(tokenizer, prompts, prompts.map((p) => p.prompt), opts.prependBos ?? true, names);
}

/**
 * The corrupted "ABC" dataset: each prompt with its three name slots filled by three other distinct
 * names (same template, place and object, so the same length), removing the IOI signal. `prompts`,
 * `ioTokens` and `sTokens` stay the clean ones, so a metric reads the same answer tokens.
 */
export function ioiCorruptedAbc(tokenizer: IoiTokenizer, clean: IoiDataset, opts: { seed?: number; prependBos?: boolean } = {}): IoiDataset & { corruptedPrompts: string[] } {
  const rng = new Rng(opts.seed ?? 1);
  const names = clean.names;
  const texts = clean.prompts.map((p) => {
    const chosen: string[] = [];
    while (chosen.length < 3) {
      const c = names[rng.int(0, names.length)];
      if (!chosen.includes(c) && c !== p.io && c !== p.s) chosen.push(c);
      else if (names.length < 5 && !chosen.includes(c)) chosen.push(c); // tiny name lists: allow reuse of the clean names
    }
    return IOI_TEMPLATES[p.template].replace('[A]', chosen[0]).replace('[B]', chosen[1]).replace('[S]', chosen[2]).replace('[PLACE]', p.place).replace('[OBJECT]', p.object);
  });
  const ds = tokenize(tokenizer, clean.prompts, texts, opts.prependBos ?? true, names);
  if (ds.tokens[0].length !== clean.tokens[0].length || ds.endPos.some((e, i) => e !== clean.endPos[i])) {
    throw new Error('ioiCorruptedAbc: the corrupted prompts do not have the clean prompts\' lengths');
  }
  return { ...ds, corruptedPrompts: texts };
}

/** The logit difference IO − S at each prompt's end position, from logits [n, pos, d_vocab]. */
export function ioiLogitDiffs(logits: Tensor, ds: IoiDataset): number[] {
  return logitDiffs(logits, { correct: ds.ioTokens, incorrect: ds.sTokens, positions: ds.endPos });
}

/** Runs the dataset (attention mask when padded) and returns the per-prompt and mean IO − S logit difference. */
export async function ioiLogitDiff(model: HookedTransformer, ds: IoiDataset, tokens: number[][] = ds.tokens): Promise<{ perPrompt: number[]; mean: number }> {
  const logits = await model.forward(tokens, ds.padded ? { attentionMask: ds.attentionMask } : {});
  const perPrompt = ioiLogitDiffs(logits, ds);
  return { perPrompt, mean: perPrompt.reduce((a, b) => a + b, 0) / perPrompt.length };
}

/** Direct logit attribution of the IO − S logit difference to every head, layer and neuron. */
export async function ioiHeadAttribution(model: HookedTransformer, ds: IoiDataset): Promise<DlaResult> {
  return directLogitAttribution(model, ds.tokens, {
    correct: ds.ioTokens,
    incorrect: ds.sTokens,
    positions: ds.endPos,
    ...(ds.padded ? { attentionMask: ds.attentionMask } : {}),
  });
}
