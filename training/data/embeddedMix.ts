/**
 * The data mix of the embedded model: Tiny Shakespeare windows, random-token rows with copies of earlier
 * spans (induction; only the copies are scored), and IOI prompts (scored at the answer) plus single-name sentences. One kind per step,
 * drawn by weight; every batch depends only on (seed, step).
 */
import { Rng } from '../../hooks/random.ts';
import type { Gpt2Tokenizer } from '../../hooks/tokenizer.ts';
import type { ClassBatch } from '../model/forwardBackward.ts';
import { buildSeenVocab, fullVocab, type SeenVocab } from '../model/vocab.ts';
import { randomWindows, rowsToBatch, rowsToBatchWhere, stepSeed } from './batches.ts';
import { copiedSpansRowWithMask, triggerRowWithMask } from '../../hooks/datasets/induction.ts';
import { IOI_HELDOUT_NAMES, IOI_TRAIN_NAMES, IOI_OBJECTS, IOI_PLACES, IOI_TEMPLATES, NAME_SENTENCES, randomIoiPrompt, randomNameSentence, type IoiPrompt } from '../../hooks/datasets/ioi.ts';
import type { TokenizedText } from './text.ts';

export interface MixOptions {
  seed: number;
  /** Tokens per row (= model n_ctx). */
  ctx: number;
  /** Rows per Shakespeare / induction step. */
  batch: number;
  /** Rows per IOI step (short rows, so more of them). */
  ioiBatch: number;
  /** Step kind weights. */
  weights: { text: number; induction: number; ioi: number };
  /** Fraction of IOI-step rows that are single-name sentences instead of IOI prompts. */
  nameSentenceFraction: number;
  /** Fraction of induction tokens drawn from the name list (the rest uniformly from the seen vocabulary). */
  inductionNameFraction: number;
  /** Fraction of Shakespeare positions scored (a random subset; the unembedding dominates the cost). */
  textTargetFraction: number;
  /** Fraction of the scoreable positions of (non-trigger) induction rows that are scored (a random subset, as for text). */
  inductionTargetFraction: number;
  /**
   * Random tokens for induction rows come from the this many most frequent training-text tokens
   * (rare tokens' embeddings stay near their tiny initial values and cannot be copied reliably).
   */
  inductionPoolSize: number;
  /** Lengths of the copied spans in induction rows. */
  inductionMinSpan: number;
  inductionMaxSpan: number;
  /**
   * Fractions of induction rows that are alternating pairs (A B A B …) or A B A triples instead of copied
   * spans: both are predictable from the token two back and reward a previous-token head, the first half
   * of an induction circuit (pilots without such rows stayed on the "bag of context" plateau).
   * Alternating rows form the head fast; triples keep it without rewarding a −3 head.
   */
  inductionAlternatingFraction: number;
  inductionTripleFraction: number;
  /**
   * Fraction of induction rows whose copied spans are 2–3 tokens long ("… A B … A B"): the copy's second
   * token is predictable only from the current token's earlier occurrence (TransformerLens's induction
   * stripe), not from the previous token's (the shifted circuit a model trained on long spans built).
   */
  inductionShortSpanFraction: number;
  /**
   * Fraction of IOI prompts whose two names are replaced by two random words (frequent training-text words
   * such as " king", never a name): the same task on tokens the model cannot have memorised as names, which
   * rewards the generic "copy the name that is not repeated" algorithm that held-out names need.
   */
  ioiWordNameFraction: number;
  /**
   * Fraction of IOI prompts whose object takes another article ("the bag", "an apple" as well as "a drink") and whose
   * place and object may come from a few more words (varyIoiPrompt): surface variety around the same task.
   */
  ioiVariety: number;
  /**
   * When true, induction steps are `triggerBatch` short trigger rows ([BOS] + `triggerCtx` tokens,
   * triggerRowWithMask) instead of the rows above: the classic induction task with no shortcut, in rows
   * short and many enough for the circuit to form early (pilot: a batch of 16 rows never left the
   * "bag of context" plateau, 64 rows of 24 tokens formed the stripe within 1,000 steps).
   */
  inductionTriggerRows: boolean;
  /** Without inductionTriggerRows: the share of induction steps that are trigger-row steps all the same (0: none). */
  inductionTriggerFraction: number;
  triggerBatch: number;
  triggerCtx: number;
  /**
   * When not empty, each trigger-row step draws one of these shapes uniformly (list one twice to weight it) instead of
   * `triggerBatch` rows of [BOS] + `triggerCtx`: longer rows (fewer per step, with more triggers) train the circuit at
   * positions beyond `triggerCtx` (v2, trained on 33-token rows only, had a previous-token head at positions 1–32 and
   * none beyond: its induction stripe worked only where the earlier occurrence was within the first 33 positions).
   */
  triggerShapes: readonly TriggerShape[];
  /**
   * Where the random tokens of induction rows come from. 'frequent': the `inductionPoolSize` most frequent
   * training-text tokens (v1). 'vocab': GPT-2's whole vocabulary (every id but BOS), a share
   * `inductionTextFraction` of the draws taken from the training text's unigram distribution instead of uniformly:
   * the circuit then cannot rely on token-specific features, so it works on any token.
   */
  inductionTokens: 'frequent' | 'vocab';
  inductionTextFraction: number;
  /** Every token of the vocabulary gets its own class and embedding row (no shared row for unseen tokens). */
  fullVocabulary: boolean;
  /**
   * Fraction of induction rows (outside trigger-row steps) that are training text with copies of earlier spans
   * (textCopiesRowWithMask): induction on natural text, where tokens recur within the span.
   */
  inductionTextCopyFraction: number;
}

/** A trigger-row step's shape: `batch` rows of [BOS] + `ctx` tokens, each with minTriggers–maxTriggers triggers. */
export interface TriggerShape {
  ctx: number;
  batch: number;
  minTriggers: number;
  maxTriggers: number;
}

export const DEFAULT_MIX: Omit<MixOptions, 'seed' | 'ctx'> = {
  batch: 16,
  ioiBatch: 128,
  weights: { text: 0.2, induction: 0.4, ioi: 0.4 },
  nameSentenceFraction: 0.2,
  inductionNameFraction: 0.1,
  textTargetFraction: 0.5,
  inductionTargetFraction: 1,
  inductionPoolSize: 3000,
  inductionMinSpan: 6,
  inductionMaxSpan: 40,
  inductionAlternatingFraction: 0.25,
  inductionTripleFraction: 0,
  inductionShortSpanFraction: 0,
  ioiWordNameFraction: 0,
  ioiVariety: 0,
  inductionTriggerRows: false,
  inductionTriggerFraction: 0,
  triggerBatch: 64,
  triggerCtx: 32,
  triggerShapes: [],
  inductionTokens: 'frequent',
  inductionTextFraction: 0,
  fullVocabulary: false,
  inductionTextCopyFraction: 0,
};

/** What a training phase may change in the mix. */
export type MixPhase = Partial<Pick<MixOptions, 'weights' | 'inductionAlternatingFraction' | 'inductionTripleFraction' | 'inductionShortSpanFraction' | 'ioiWordNameFraction' | 'ioiVariety' | 'inductionTriggerRows' | 'inductionTriggerFraction' | 'inductionTextCopyFraction' | 'triggerBatch' | 'triggerShapes'>>;

export interface EmbeddedData {
  vocab: SeenVocab;
  /** The batch of `step`, drawn by the options overridden by `phase` (e.g. a training phase's weights). */
  batchAt: (step: number, phase?: MixPhase) => ClassBatch;
  /**
   * The random-token pool of the induction rows (draws are uniform over its entries, which may repeat): the most
   * frequent training tokens (BOS excluded, ascending ids) or, with inductionTokens 'vocab', every id but BOS
   * (repeated) followed by the training text.
   */
  pool: Int32Array;
  bos: number;
}

/** The `n` most frequent tokens of `stream` (ties broken by smaller id), excluding `exclude`, in ascending id order. */
export function mostFrequentTokens(stream: Int32Array, n: number, exclude: readonly number[] = []): Int32Array {
  const counts = new Map<number, number>();
  for (const t of stream) counts.set(t, (counts.get(t) ?? 0) + 1);
  for (const t of exclude) counts.delete(t);
  const top = [...counts].sort((a, b) => b[1] - a[1] || a[0] - b[0]).slice(0, n).map(([t]) => t);
  return Int32Array.from(top.sort((a, b) => a - b));
}

const BOS = 50256;
/** Copied spans of short-span induction rows: "A B" or "A B C" repeated, so the copy's first scored token needs the induction stripe. */
const SHORT_SPANS = { minSpan: 2, maxSpan: 3 };

/**
 * A row of `prefix` then runs of alternating pairs (A B A B …, 4–16 tokens, a fresh A and B from `pool`
 * per run); `copied[i]` marks tokens predictable from the token two back (all but a run's first two).
 * Every odd offset back predicts them too, so attention spread over recent tokens is already rewarded
 * and sharpens into a previous-token head quickly; but a −3 head is rewarded as well (see abaTriplesRowWithMask).
 */
export function alternatingPairsRowWithMask(rng: Rng, pool: ArrayLike<number>, length: number, prefix: readonly number[] = []): { tokens: number[]; copied: boolean[] } {
  const tokens = [...prefix];
  const copied: boolean[] = prefix.map(() => false);
  while (tokens.length < length) {
    const a = pool[rng.int(0, pool.length)];
    const b = pool[rng.int(0, pool.length)];
    const run = rng.int(4, 17);
    for (let i = 0; i < run; i++) {
      tokens.push(i % 2 === 0 ? a : b);
      copied.push(i >= 2);
    }
  }
  return { tokens: tokens.slice(0, length), copied: copied.slice(0, length) };
}

/**
 * A row of `prefix` then A B A triples (a fresh A and B from `pool` per triple); `copied[i]` marks each
 * triple's last A, predictable only from the token two back. Only a head that reads the previous token
 * helps, so the rows reward a previous-token head without rewarding any other fixed offset: longer
 * alternating runs (A B A B …) are also predictable from three back, and a model trained on them built a
 * "shifted" copying circuit from a −1 and a −3 head instead of TransformerLens's induction stripe.
 */
export function abaTriplesRowWithMask(rng: Rng, pool: ArrayLike<number>, length: number, prefix: readonly number[] = []): { tokens: number[]; copied: boolean[] } {
  const tokens = [...prefix];
  const copied: boolean[] = prefix.map(() => false);
  while (tokens.length < length) {
    const a = pool[rng.int(0, pool.length)];
    const b = pool[rng.int(0, pool.length)];
    tokens.push(a, b, a);
    copied.push(false, false, true);
  }
  return { tokens: tokens.slice(0, length), copied: copied.slice(0, length) };
}

/**
 * A row of `prefix` then training text in which spans recur: segments are either runs of consecutive tokens of
 * `stream` (4–24, from a random place) or, once the row has `minSpan` tokens, with probability ½ a copy of an
 * earlier span of the row (`minSpan`–`maxSpan` tokens from a random earlier position). `copied[i]` marks a copy's
 * tokens after its first: induction on natural text, where the copied tokens are ordinary words that recur.
 */
export function textCopiesRowWithMask(rng: Rng, stream: Int32Array, length: number, span: { minSpan: number; maxSpan: number }, prefix: readonly number[] = []): { tokens: number[]; copied: boolean[] } {
  const tokens = [...prefix];
  const copied: boolean[] = prefix.map(() => false);
  const start = prefix.length;
  while (tokens.length < length) {
    if (tokens.length - start >= span.minSpan && rng.next() < 0.5) {
      const n = rng.int(span.minSpan, span.maxSpan + 1);
      const from = rng.int(start, tokens.length - 1);
      for (let k = 0; k < n; k++) {
        tokens.push(tokens[from + k]);
        copied.push(k > 0);
      }
    } else {
      const n = rng.int(4, 25);
      const at = rng.int(0, stream.length - n);
      for (let k = 0; k < n; k++) {
        tokens.push(stream[at + k]);
        copied.push(false);
      }
    }
  }
  return { tokens: tokens.slice(0, length), copied: copied.slice(0, length) };
}

/**
 * The induction rows' random tokens for inductionTokens 'vocab': every id of [0, d_vocab) but `bos`, repeated so
 * that a uniform draw from the result comes from the text `stream` (its unigram distribution) with probability
 * `textFraction` and uniformly from the vocabulary otherwise (the ids first, then the text).
 */
export function wholeVocabularyPool(d_vocab: number, bos: number, stream: Int32Array, textFraction: number): Int32Array {
  if (!(textFraction >= 0 && textFraction < 1)) throw new Error(`wholeVocabularyPool: textFraction must be in [0, 1); got ${textFraction}`);
  const ids = Int32Array.from({ length: d_vocab - 1 }, (_, i) => (i < bos ? i : i + 1));
  if (textFraction === 0) return ids;
  const repeats = Math.max(1, Math.round(((1 - textFraction) / textFraction) * (stream.length / ids.length)));
  const out = new Int32Array(repeats * ids.length + stream.length);
  for (let r = 0; r < repeats; r++) out.set(ids, r * ids.length);
  out.set(stream, repeats * ids.length);
  return out;
}

/** Places and objects beyond the library's IOI lists (each a single GPT-2 token with its leading space). */
export const EXTRA_IOI_PLACES: readonly string[] = ['shops', 'zoo', 'cinema', 'shop'];
export const EXTRA_IOI_OBJECTS: readonly string[] = ['ball', 'cake', 'toy', 'hat', 'pen'];

/**
 * The prompt of `p` with other surface words: the place drawn from IOI_PLACES + EXTRA_IOI_PLACES, the object from
 * IOI_OBJECTS + EXTRA_IOI_OBJECTS, and its article "a" (or "an" before a vowel) or "the". Names and structure stay.
 */
export function varyIoiPrompt(rng: Rng, p: IoiPrompt): string {
  const place = [...IOI_PLACES, ...EXTRA_IOI_PLACES][rng.int(0, IOI_PLACES.length + EXTRA_IOI_PLACES.length)];
  const object = [...IOI_OBJECTS, ...EXTRA_IOI_OBJECTS][rng.int(0, IOI_OBJECTS.length + EXTRA_IOI_OBJECTS.length)];
  const article = rng.next() < 0.5 ? 'the' : /^[aeiou]/.test(object) ? 'an' : 'a';
  return p.prompt.replace(` ${p.place}`, ` ${place}`).replace(new RegExp(`\\ba ${p.object}\\b`), `${article} ${object}`).replace(new RegExp(`\\b${p.object}\\b`), object);
}

/** The tokens of `pool` that decode to a space and a lowercase word of 3+ letters, except `exclude` (e.g. the generators' tokens). */
export function wordTokens(tok: Gpt2Tokenizer, pool: ArrayLike<number>, exclude: readonly number[]): number[] {
  const skip = new Set(exclude);
  return Array.from(pool).filter((t) => !skip.has(t) && /^ [a-z]{3,}$/.test(tok.decode([t])));
}

/** `row` with every token that is a key of `replacement` replaced by its value. */
export function replaceTokens(row: readonly number[], replacement: ReadonlyMap<number, number>): number[] {
  return row.map((t) => replacement.get(t) ?? t);
}

/** Every token the generators can emit (templates, names, places, objects, sentences). */
export function generatorTokens(tok: Gpt2Tokenizer): number[] {
  const ids = new Set<number>();
  const add = (s: string) => tok.encode(s).forEach((t) => ids.add(t));
  for (const t of [...IOI_TEMPLATES, ...NAME_SENTENCES]) for (const part of t.split(/\[[A-Z]+\]/)) add(part);
  for (const t of IOI_TEMPLATES) add(t.replace(/\[[A-Z]+\]/g, 'x'));
  for (const n of [...IOI_TRAIN_NAMES, ...IOI_HELDOUT_NAMES]) add(` ${n}`);
  for (const w of [...IOI_PLACES, ...IOI_OBJECTS]) add(` ${w}`);
  // exact tokenisations of generated text (punctuation next to names etc.)
  const rng = new Rng(0);
  for (let i = 0; i < 3000; i++) {
    const p = randomIoiPrompt(rng, { names: [...IOI_TRAIN_NAMES, ...IOI_HELDOUT_NAMES] });
    add(p.prompt + p.answer + '.');
    add(randomNameSentence(rng, [...IOI_TRAIN_NAMES, ...IOI_HELDOUT_NAMES]));
  }
  return [...ids];
}

export function buildEmbeddedData(tok: Gpt2Tokenizer, text: TokenizedText, opts: MixOptions): EmbeddedData {
  const generated = generatorTokens(tok);
  const vocab = opts.fullVocabulary ? fullVocab(50257) : buildSeenVocab([...text.train, ...generated, BOS], 50257);
  const frequent = mostFrequentTokens(text.train, opts.inductionPoolSize, [BOS]);
  const pool = opts.inductionTokens === 'vocab' ? wholeVocabularyPool(50257, BOS, text.train, opts.inductionTextFraction) : frequent;
  const nameIds = [...IOI_TRAIN_NAMES, ...IOI_HELDOUT_NAMES].map((n) => tok.encode(` ${n}`)[0]);
  const allNames = [...IOI_TRAIN_NAMES, ...IOI_HELDOUT_NAMES];
  const encodeCache = new Map<string, number[]>();
  const enc = (s: string) => {
    let e = encodeCache.get(s);
    if (!e) {
      e = tok.encode(s);
      if (encodeCache.size < 200_000) encodeCache.set(s, e);
    }
    return e;
  };
  // pool for induction: every frequent token once, plus copies of the names so that they make up
  // `inductionNameFraction` of the draws (names then get copying practice, held-out names included)
  const copies = Math.max(0, Math.round((opts.inductionNameFraction * pool.length) / ((1 - opts.inductionNameFraction) * nameIds.length)));
  const inductionPool = new Int32Array(pool.length + copies * nameIds.length);
  inductionPool.set(pool);
  for (let c = 0; c < copies; c++) inductionPool.set(nameIds, pool.length + c * nameIds.length);
  const wordNames = wordTokens(tok, frequent, generated); // no names, template words, places or objects
  const batchAt = (step: number, phase: MixPhase = {}): ClassBatch => {
    const { weights, inductionAlternatingFraction: alt, inductionTripleFraction: triples, inductionShortSpanFraction: short, ioiWordNameFraction, ioiVariety, inductionTriggerFraction, inductionTextCopyFraction: textCopies, triggerBatch, triggerShapes } = { ...opts, ...phase };
    let { inductionTriggerRows } = { ...opts, ...phase };
    const { text: wt, induction: wi, ioi: wo } = weights;
    const rng = new Rng(stepSeed(opts.seed, step));
    const u = rng.next() * (wt + wi + wo);
    if (u < wt) {
      const rows = randomWindows(rng, text.train, opts.batch, opts.ctx, [BOS]);
      const keep = rows.map((r) => r.map(() => rng.next() < opts.textTargetFraction));
      return rowsToBatchWhere(rows, vocab, BOS, (r, p) => keep[r][p]);
    }
    // (no draw unless some but not all induction steps are trigger steps, so other phases keep their batches)
    if (u >= wt && u < wt + wi && !inductionTriggerRows && inductionTriggerFraction > 0) inductionTriggerRows = rng.next() < inductionTriggerFraction;
    if (u < wt + wi && inductionTriggerRows) {
      // (no draw without shapes, so recipes without them keep their batches)
      const shape = triggerShapes.length > 0 ? triggerShapes[rng.int(0, triggerShapes.length)] : { ctx: opts.triggerCtx, batch: triggerBatch, minTriggers: 2, maxTriggers: 4 };
      const made = Array.from({ length: shape.batch }, () => triggerRowWithMask(rng, inductionPool, shape.ctx + 1, shape, [BOS]));
      return rowsToBatchWhere(made.map((m) => m.tokens), vocab, BOS, (r, p) => made[r].copied[p + 1]);
    }
    if (u < wt + wi) {
      // random tokens with copies of earlier spans at random places; only copied tokens (after a copy's
      // first) are scored. Back-to-back repeats of one span at fixed places (packedInductionRow) let pilot
      // models learn positional shortcuts instead of induction heads (see the model card).
      const made = Array.from({ length: opts.batch }, () => {
        const kind = rng.next();
        if (kind < alt) return alternatingPairsRowWithMask(rng, inductionPool, opts.ctx + 1, [BOS]);
        if (kind < alt + triples) return abaTriplesRowWithMask(rng, inductionPool, opts.ctx + 1, [BOS]);
        if (kind < alt + triples + short) return copiedSpansRowWithMask(rng, inductionPool, opts.ctx + 1, SHORT_SPANS, [BOS]);
        if (kind < alt + triples + short + textCopies) return textCopiesRowWithMask(rng, text.train, opts.ctx + 1, { minSpan: opts.inductionMinSpan, maxSpan: opts.inductionMaxSpan }, [BOS]);
        return copiedSpansRowWithMask(rng, inductionPool, opts.ctx + 1, { minSpan: opts.inductionMinSpan, maxSpan: opts.inductionMaxSpan }, [BOS]);
      });
      // (no draws when every position is scored, so batches of runs without subsampling are unchanged)
      const keep = opts.inductionTargetFraction < 1 ? made.map((m) => m.tokens.map(() => rng.next() < opts.inductionTargetFraction)) : null;
      return rowsToBatchWhere(made.map((m) => m.tokens), vocab, BOS, (r, p) => made[r].copied[p + 1] && (keep === null || keep[r][p]));
    }
    // IOI prompts are scored only at the answer (the rest is template text or unpredictable names);
    // single-name sentences are scored everywhere
    const rows: number[][] = [];
    const scoreFrom: number[] = [];
    const scoreTo: number[] = [];
    for (let b = 0; b < opts.ioiBatch; b++) {
      if (rng.next() < opts.nameSentenceFraction) {
        const row = [BOS, ...enc(randomNameSentence(rng, allNames))];
        rows.push(row);
        scoreFrom.push(0);
        scoreTo.push(row.length - 2);
      } else {
        const p = randomIoiPrompt(rng, { names: IOI_TRAIN_NAMES });
        // (no draw when the fraction is 0, so phases without variety keep their batches)
        const prompt = ioiVariety > 0 && rng.next() < ioiVariety ? varyIoiPrompt(rng, p) : p.prompt;
        const row = [BOS, ...enc(prompt), ...enc(p.answer)];
        // (no draw when the fraction is 0, so phases without word names keep their batches)
        if (ioiWordNameFraction > 0 && rng.next() < ioiWordNameFraction) {
          const io = wordNames[rng.int(0, wordNames.length)];
          let s = wordNames[rng.int(0, wordNames.length)];
          while (s === io) s = wordNames[rng.int(0, wordNames.length)];
          rows.push(replaceTokens(row, new Map([[enc(` ${p.io}`)[0], io], [enc(` ${p.s}`)[0], s]])));
        } else rows.push(row);
        scoreFrom.push(row.length - 2);
        scoreTo.push(row.length - 2);
      }
    }
    return rowsToBatchWhere(rows, vocab, BOS, (r, p) => p >= scoreFrom[r] && p <= scoreTo[r]);
  };
  return { vocab, batchAt, pool, bos: BOS };
}
