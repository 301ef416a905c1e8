/** Data generators (IOI, induction), batching and the grouped vocabulary. */
import { describe, expect, it } from 'vitest';
import { Rng } from '../../../hooks/random.ts';
import { Gpt2Tokenizer } from '../../../hooks/tokenizer.ts';
import { rowsToBatch, rowsToBatchWhere, stepSeed } from '../../../training/data/batches.ts';
import { copiedSpansRowWithMask, packedInductionRowWithMask, repeatedRandomTokens, triggerRowWithMask } from '../../../hooks/datasets/induction.ts';
import { fillIoiTemplate, IOI_HELDOUT_NAMES, IOI_OBJECTS, IOI_PLACES, IOI_TEMPLATES, IOI_TRAIN_NAMES, randomIoiPrompt, swapRepeatedName } from '../../../hooks/datasets/ioi.ts';
import { splitTokens } from '../../../training/data/text.ts';
import { abaTriplesRowWithMask, alternatingPairsRowWithMask, buildEmbeddedData, DEFAULT_MIX, EXTRA_IOI_OBJECTS, EXTRA_IOI_PLACES, generatorTokens, type MixPhase, replaceTokens, textCopiesRowWithMask, varyIoiPrompt, wholeVocabularyPool, wordTokens } from '../../../training/data/embeddedMix.ts';
import { buildSeenVocab, unseenLogitOffset } from '../../../training/model/vocab.ts';
import type { ClassBatch } from '../../../training/model/forwardBackward.ts';

const tok = await Gpt2Tokenizer.default();

describe('IOI data', () => {
  it('uses names that are single GPT-2 tokens with a leading space; training and held-out names are disjoint', () => {
    for (const n of [...IOI_TRAIN_NAMES, ...IOI_HELDOUT_NAMES]) expect(tok.encode(` ${n}`), n).toHaveLength(1);
    for (const w of [...IOI_PLACES, ...IOI_OBJECTS]) expect(tok.encode(` ${w}`), w).toHaveLength(1);
    expect(IOI_TRAIN_NAMES.filter((n) => IOI_HELDOUT_NAMES.includes(n))).toEqual([]);
    expect(new Set(IOI_TRAIN_NAMES).size).toBe(IOI_TRAIN_NAMES.length);
  });

  it('fills ABBA and BABA templates', () => {
    const abba = fillIoiTemplate(0, 'Mary', 'John', 'ABBA', 'store', 'drink');
    expect(abba.prompt).toBe('When Mary and John went to the store, John gave a drink to');
    expect(abba.answer).toBe(' Mary');
    const baba = fillIoiTemplate(0, 'Mary', 'John', 'BABA', 'store', 'drink');
    expect(baba.prompt).toBe('When John and Mary went to the store, John gave a drink to');
    expect(() => fillIoiTemplate(99, 'A', 'B', 'ABBA', 'x', 'y')).toThrow(/template 99/);
    expect(() => fillIoiTemplate(0, 'A', 'A', 'ABBA', 'x', 'y')).toThrow(/two different names/);
  });

  it('random prompts name S twice and IO once; swapping the repeated name flips the answer', () => {
    const rng = new Rng(4);
    for (let i = 0; i < 50; i++) {
      const p = randomIoiPrompt(rng, { names: IOI_HELDOUT_NAMES });
      const words = p.prompt.split(/[ ,.]+/);
      expect(words.filter((w) => w === p.s)).toHaveLength(2);
      expect(words.filter((w) => w === p.io)).toHaveLength(1);
      expect(IOI_HELDOUT_NAMES).toContain(p.io);
      const q = swapRepeatedName(p);
      expect(q.answer).toBe(` ${p.s}`);
      // the first clause (before the repeated name) is unchanged
      const clause = IOI_TEMPLATES[p.template].split('[S]')[0].length;
      expect(q.prompt.slice(0, clause - 10)).toBe(p.prompt.slice(0, clause - 10));
    }
  });
});

describe('induction data', () => {
  it('repeats a span exactly, span length in range, tokens from the pool', () => {
    const rng = new Rng(1);
    const pool = [5, 9, 11, 40];
    for (let i = 0; i < 20; i++) {
      const { tokens, span } = repeatedRandomTokens(rng, pool, { minSpan: 3, maxSpan: 6 });
      expect(span).toBeGreaterThanOrEqual(3);
      expect(span).toBeLessThanOrEqual(6);
      expect(tokens.slice(span)).toEqual(tokens.slice(0, span));
      expect(tokens.every((t) => pool.includes(t))).toBe(true);
    }
  });

  it('packs spans with a mask marking the repeats', () => {
    const rng = new Rng(2);
    const { tokens, repeated } = packedInductionRowWithMask(rng, Array.from({ length: 1000 }, (_, i) => i), 50, { minSpan: 4, maxSpan: 8 }, [50256]);
    expect(tokens).toHaveLength(50);
    expect(tokens[0]).toBe(50256);
    expect(repeated[0]).toBe(false);
    // every repeated token equals the token one span earlier
    let checked = 0;
    for (let i = 1; i < 50; i++) {
      if (!repeated[i]) continue;
      let span = 0;
      while (repeated[i - span]) span++; // back to the first copy's end
      // with distinct pool draws this finds the matching earlier token
      expect(tokens.slice(1, i)).toContain(tokens[i]);
      checked++;
    }
    expect(checked).toBeGreaterThan(10);
    expect(() => repeatedRandomTokens(rng, [], { minSpan: 1, maxSpan: 2 })).toThrow(/empty/);
  });

  it('alternating-pair rows: every scored token equals the token two back', () => {
    const rng = new Rng(4);
    const { tokens, copied } = alternatingPairsRowWithMask(rng, Array.from({ length: 5000 }, (_, i) => i), 100, [50256]);
    expect(tokens).toHaveLength(100);
    expect(tokens[0]).toBe(50256);
    let n = 0;
    for (let i = 0; i < 100; i++) if (copied[i]) { expect(tokens[i]).toBe(tokens[i - 2]); n++; }
    // runs of 4–16 tokens, all but the first two of each scored
    expect(n).toBeGreaterThan(50);
    expect(n).toBeLessThan(92);
  });

  it('A B A triple rows: every scored token equals the token two back, and no other offset predicts it', () => {
    const rng = new Rng(4);
    const { tokens, copied } = abaTriplesRowWithMask(rng, Array.from({ length: 5000 }, (_, i) => i), 100, [50256]);
    expect(tokens).toHaveLength(100);
    expect(tokens[0]).toBe(50256);
    let n = 0;
    let threeBack = 0;
    for (let i = 0; i < 100; i++) {
      if (!copied[i]) continue;
      expect(tokens[i]).toBe(tokens[i - 2]);
      if (i >= 4 && tokens[i] === tokens[i - 4]) threeBack++; // −3 from the predicting position
      n++;
    }
    // one scored token per triple after the BOS: 99 / 3 = 33
    expect(n).toBe(33);
    expect(threeBack).toBe(0);
  });

  it('copies earlier spans at random places: every scored token is predictable by induction ([A][B] … [A] → [B])', () => {
    const rng = new Rng(3);
    const pool = Array.from({ length: 5000 }, (_, i) => i);
    let scored = 0;
    const copyStarts = new Set<number>();
    for (let r = 0; r < 20; r++) {
      const { tokens, copied } = copiedSpansRowWithMask(rng, pool, 128, { minSpan: 6, maxSpan: 20 }, [50256]);
      expect(tokens).toHaveLength(128);
      expect(copied).toHaveLength(128);
      expect(tokens[0]).toBe(50256);
      expect(copied[0]).toBe(false);
      expect(tokens.slice(1).every((t) => t >= 0 && t < 5000)).toBe(true);
      for (let i = 1; i < 128; i++) {
        if (!copied[i]) continue;
        scored++;
        // the bigram (tokens[i-1], tokens[i]) occurred earlier in the row
        let seen = false;
        for (let j = 0; j + 1 < i; j++) if (tokens[j] === tokens[i - 1] && tokens[j + 1] === tokens[i]) seen = true;
        expect(seen).toBe(true);
        if (!copied[i - 1]) copyStarts.add(i);
      }
    }
    expect(scored).toBeGreaterThan(20 * 30);
    // copies start at many different positions (nothing positional tells where a copy begins)
    expect(copyStarts.size).toBeGreaterThan(40);
    expect(() => copiedSpansRowWithMask(rng, pool, 10, { minSpan: 1, maxSpan: 4 })).toThrow(/minSpan/);
    expect(() => copiedSpansRowWithMask(rng, [], 10, { minSpan: 2, maxSpan: 4 })).toThrow(/empty/);
  });

  it('trigger rows: every scored token is its trigger\'s output, seen after an earlier occurrence of that trigger, and the token before the trigger never helps', () => {
    const rng = new Rng(4);
    const pool = Array.from({ length: 300 }, (_, i) => i);
    let scored = 0;
    let bigramRepeats = 0;
    for (let r = 0; r < 50; r++) {
      const { tokens, copied } = triggerRowWithMask(rng, pool, 33, {}, [50256]);
      expect(tokens).toHaveLength(33);
      expect(copied).toHaveLength(33);
      expect(tokens[0]).toBe(50256);
      // each trigger (a token followed by a scored token) is always followed by the same token: rebuild the map
      const outputOf = new Map<number, number>();
      for (let i = 1; i < 33; i++) {
        if (!copied[i]) continue;
        scored++;
        const trigger = tokens[i - 1];
        expect(copied[i - 1]).toBe(false);
        // TransformerLens's stripe: an earlier occurrence of the trigger, followed by this very token
        let stripe = false;
        for (let j = 1; j < i - 1; j++) if (tokens[j] === trigger && tokens[j + 1] === tokens[i]) stripe = true;
        expect(stripe).toBe(true);
        if (outputOf.has(trigger)) expect(outputOf.get(trigger)).toBe(tokens[i]);
        outputOf.set(trigger, tokens[i]);
        // the shifted circuit would need the bigram (token before the trigger, trigger) earlier
        for (let j = 2; j < i - 1; j++) if (tokens[j - 1] === tokens[i - 2] && tokens[j] === trigger) bigramRepeats++;
      }
      expect(outputOf.size).toBeLessThanOrEqual(4);
    }
    // 2–4 triggers in 40 % of slots: about 4 scored outputs per 32-token row
    expect(scored).toBeGreaterThan(50 * 3);
    // (the bigram repeats only when the token before is another trigger's output: "T1 O1 T2 … T1 O1 T2", 13 % here)
    expect(bigramRepeats / scored).toBeLessThan(0.2);
    expect(() => triggerRowWithMask(rng, pool, 10, { minTriggers: 0 })).toThrow(/minTriggers/);
    expect(() => triggerRowWithMask(rng, pool, 10, { triggerProbability: 0 })).toThrow(/triggerProbability/);
    expect(() => triggerRowWithMask(rng, [1, 2, 3], 10, { maxTriggers: 4 })).toThrow(/distinct pool tokens/);
  });
});

describe('batches and vocabulary', () => {
  const vocab = buildSeenVocab([3, 7, 7, 9, 50256], 50257);
  it('maps seen tokens to classes and the rest to the shared class', () => {
    expect(Array.from(vocab.seen)).toEqual([3, 7, 9, 50256]);
    expect(vocab.classOf[7]).toBe(1);
    expect(vocab.classOf[8]).toBe(4);
    expect(vocab.nUnseen).toBe(50257 - 4);
    expect(unseenLogitOffset(vocab)).toBeCloseTo(Math.log(50253), 12);
    expect(() => buildSeenVocab([60000], 50257)).toThrow(/not an integer in/);
  });

  it('pads rows and masks targets', () => {
    const b = rowsToBatch([[50256, 3, 7, 9], [50256, 9]], vocab, 50256);
    expect(b.pos).toBe(3);
    expect(Array.from(b.inputs)).toEqual([3, 0, 1, 3, 3, 3]); // padding input = class of the pad token
    expect(Array.from(b.targets)).toEqual([0, 1, 2, 2, -1, -1]);
    const w = rowsToBatchWhere([[50256, 3, 7, 9]], vocab, 50256, (_r, p) => p === 1);
    expect(Array.from(w.targets)).toEqual([-1, 1, -1]);
    const unseen = rowsToBatch([[50256, 123, 3]], vocab, 50256);
    expect(Array.from(unseen.targets)).toEqual([4, 0]);
  });

  it('holds out the last 10 % of the tokens; step seeds differ by step and seed', () => {
    const text = 'To be, or not to be, that is the question. '.repeat(20);
    const { train, heldOut } = splitTokens(tok, text);
    const all = tok.encode(text);
    expect(train.length + heldOut.length).toBe(all.length);
    expect(heldOut.length).toBe(all.length - Math.floor(all.length * 0.9));
    expect(Array.from(heldOut)).toEqual(all.slice(train.length));
    expect(stepSeed(1, 2)).not.toBe(stepSeed(1, 3));
    expect(stepSeed(1, 2)).not.toBe(stepSeed(2, 2));
    expect(stepSeed(1, 2)).toBe(stepSeed(1, 2));
  });
});

/** Calls `fn(x, y, p)` for every scored position p of every row of a batch (x: input classes, y: target classes, -1 unscored). */
function forEachScored(b: ClassBatch, fn: (x: number[], y: number[], p: number) => void): void {
  for (let r = 0; r < b.batch; r++) {
    const x = Array.from(b.inputs.subarray(r * b.pos, (r + 1) * b.pos));
    const y = Array.from(b.targets.subarray(r * b.pos, (r + 1) * b.pos));
    for (let p = 1; p < b.pos; p++) if (y[p] >= 0) fn(x, y, p);
  }
}

/** TransformerLens's induction stripe predicts y[p]: an earlier j with x[j] = x[p] and x[j + 1] = y[p]. */
function onStripe(x: readonly number[], y: readonly number[], p: number): boolean {
  for (let j = 0; j < p; j++) if (x[j] === x[p] && x[j + 1] === y[p]) return true;
  return false;
}

describe('embedded mix helpers', () => {
  it('the whole-vocabulary pool: every id but BOS, and the text stream making up the requested share of uniform draws', () => {
    const stream = Int32Array.from({ length: 3000 }, (_v, i) => i % 7);
    const uniform = wholeVocabularyPool(100, 99, stream, 0);
    expect(Array.from(uniform)).toEqual(Array.from({ length: 99 }, (_v, i) => i));
    const half = wholeVocabularyPool(100, 99, stream, 0.5);
    const fromText = half.length - Math.round(3000 / 99) * 99;
    expect(fromText).toBe(3000);
    expect(Array.from(half.subarray(half.length - 3000))).toEqual(Array.from(stream));
    expect(Math.abs(3000 / half.length - 0.5)).toBeLessThan(0.01);
    expect(half.includes(99)).toBe(false);
    expect(() => wholeVocabularyPool(100, 99, stream, 1)).toThrow(/textFraction/);
  });

  it('IOI variety: another place, object and article around the same names and structure', () => {
    const rng = new Rng(12);
    for (let i = 0; i < 40; i++) {
      const p = randomIoiPrompt(rng, { names: IOI_TRAIN_NAMES, template: 0 });
      const v = varyIoiPrompt(rng, p);
      const m = /^When (\w+) and (\w+) went to the (\w+), (\w+) gave (a|an|the) (\w+) to$/.exec(v);
      expect(m, v).not.toBeNull();
      expect([m![1], m![2], m![4]]).toEqual(p.prompt.match(/^When (\w+) and (\w+) went to the \w+, (\w+)/)!.slice(1));
      expect([...IOI_PLACES, ...EXTRA_IOI_PLACES]).toContain(m![3]);
      expect([...IOI_OBJECTS, ...EXTRA_IOI_OBJECTS]).toContain(m![6]);
      if (m![5] !== 'the') expect(m![5]).toBe(/^[aeiou]/.test(m![6]) ? 'an' : 'a');
    }
    for (const w of [...EXTRA_IOI_PLACES, ...EXTRA_IOI_OBJECTS]) expect(tok.encode(` ${w}`), w).toHaveLength(1);
  });

  it('text rows with copied spans: runs of consecutive text, copies of earlier spans scored after their first token', () => {
    const stream = Int32Array.from({ length: 5000 }, (_v, i) => 1000 + i); // every token distinct: runs are recognisable
    const rng = new Rng(8);
    for (let n = 0; n < 30; n++) {
      const { tokens, copied } = textCopiesRowWithMask(rng, stream, 129, { minSpan: 6, maxSpan: 20 }, [50256]);
      expect(tokens).toHaveLength(129);
      expect(tokens[0]).toBe(50256);
      expect(copied[0]).toBe(false);
      for (let i = 1; i < tokens.length; i++) {
        // a scored token continues a copy: its predecessor occurred earlier, followed by this very token
        if (copied[i]) {
          const earlier = tokens.slice(1, i - 1).map((t, j) => (t === tokens[i - 1] ? tokens[j + 2] : null)).filter((t) => t !== null);
          expect(earlier).toContain(tokens[i]);
        }
      }
    }
  });

  it('picks the most frequent tokens (ties by id), excluding BOS, in id order', async () => {
    const { mostFrequentTokens } = await import('../../../training/data/embeddedMix.ts');
    const stream = Int32Array.from([5, 5, 5, 9, 9, 50256, 50256, 50256, 50256, 2, 7, 7]);
    expect(Array.from(mostFrequentTokens(stream, 3, [50256]))).toEqual([5, 7, 9]);
    expect(Array.from(mostFrequentTokens(stream, 4, [50256]))).toEqual([2, 5, 7, 9]);
  });

  it('sinusoidal position codes: sin/cos pairs with distance-only dot products', async () => {
    const { sinusoids } = await import('../../../training/model/params.ts');
    const s = sinusoids(10, 8, 0.5);
    expect(s[0]).toBe(0); // sin(0)
    expect(s[1]).toBeCloseTo(0.5, 7); // cos(0)
    expect(s[3 * 8 + 0]).toBeCloseTo(0.5 * Math.sin(3), 6);
    expect(s[3 * 8 + 2]).toBeCloseTo(0.5 * Math.sin(3 * Math.pow(10000, -2 / 8)), 6);
    const dot = (i: number, j: number) => { let d = 0; for (let k = 0; k < 8; k++) d += s[i * 8 + k] * s[j * 8 + k]; return d; };
    expect(dot(2, 5)).toBeCloseTo(dot(4, 7), 5);
  });

  it('IOI prompts with word names: the two names become two random words (IO once, S twice, answer = IO); no name remains', () => {
    const words = 'the king spoke to the queen about the castle and the horse while the soldier slept in the garden';
    const text = splitTokens(tok, Array.from({ length: 40 }, () => words).join('. '));
    const data = buildEmbeddedData(tok, text, { ...DEFAULT_MIX, seed: 1, ctx: 32, inductionPoolSize: 40, ioiBatch: 24, nameSentenceFraction: 0, weights: { text: 0, induction: 0, ioi: 1 } });
    const wordIds = new Set(wordTokens(tok, text.train, generatorTokens(tok)));
    expect([...wordIds].map((t) => tok.decode([t])).sort()).toEqual([' about', ' castle', ' horse', ' king', ' queen', ' slept', ' soldier', ' spoke', ' while']); // not ' garden' (a place), ' the', ' and', ' to' (template words), ' in' (short)
    const nameClasses = new Set([...IOI_TRAIN_NAMES, ...IOI_HELDOUT_NAMES].map((n) => data.vocab.classOf[tok.encode(` ${n}`)[0]]));
    const b = data.batchAt(0, { ioiWordNameFraction: 1 });
    for (let r = 0; r < b.batch; r++) {
      const inputs = Array.from(b.inputs.subarray(r * b.pos, (r + 1) * b.pos));
      const targets = Array.from(b.targets.subarray(r * b.pos, (r + 1) * b.pos));
      const scored = targets.flatMap((t, p) => (t >= 0 ? [p] : []));
      expect(scored).toHaveLength(1);
      const prompt = inputs.slice(0, scored[0] + 1);
      expect(prompt.some((c) => nameClasses.has(c))).toBe(false);
      const count = (c: number) => prompt.filter((x) => x === c).length;
      const answer = targets[scored[0]];
      expect(count(answer)).toBe(1); // IO once
      expect(wordIds.has(data.vocab.seen[answer])).toBe(true);
      // exactly one word appears twice (S); template words (" and", " the", …) are never used as names
      const twice = [...new Set(prompt)].filter((c) => count(c) === 2 && wordIds.has(data.vocab.seen[c]));
      expect(twice).toHaveLength(1);
    }
    // without the option the same step has names
    const plain = data.batchAt(0);
    expect(Array.from(plain.inputs).some((c) => nameClasses.has(c))).toBe(true);
    expect(replaceTokens([1, 2, 3, 2], new Map([[2, 9]]))).toEqual([1, 9, 3, 9]);
  });

  it('short-span induction rows ("… A B … A B"): every scored token follows an earlier occurrence of its input token, and most cannot be found from the token before that', () => {
    const words = 'the king spoke to the queen about the castle and the horse while the soldier slept in the garden';
    const text = splitTokens(tok, Array.from({ length: 40 }, () => words).join('. '));
    const data = buildEmbeddedData(tok, text, { ...DEFAULT_MIX, seed: 2, ctx: 128, inductionAlternatingFraction: 0, weights: { text: 0, induction: 1, ioi: 0 } });
    /** Scored tokens of steps 0–3, and how many only TransformerLens's stripe predicts. */
    const count = (phase: MixPhase) => {
      let scored = 0;
      let stripeOnly = 0;
      for (let step = 0; step < 4; step++) {
        forEachScored(data.batchAt(step, phase), (x, y, p) => {
          scored++;
          expect(onStripe(x, y, p)).toBe(true);
          // the shifted circuit needs the bigram (x[p-1], x[p]) earlier, followed by the target
          let shifted = false;
          for (let j = 1; j < p; j++) if (x[j - 1] === x[p - 1] && x[j] === x[p] && x[j + 1] === y[p]) shifted = true;
          if (!shifted) stripeOnly++;
        });
      }
      return { scored, stripeOnly };
    };
    const short = count({ inductionShortSpanFraction: 1 });
    expect(short.scored).toBeGreaterThan(4 * 16 * 10);
    // spans of 2–3 tokens: each copy's first scored token needs the stripe (chance repeats of the small pool aside)
    expect(short.stripeOnly / short.scored).toBeGreaterThan(0.5);
    // the default long spans (6–40): only a copy's first scored token does
    const long = count({});
    expect(long.stripeOnly / long.scored).toBeLessThan(0.2);
  });

  it('trigger-row phase: induction steps become triggerBatch rows of [BOS] + triggerCtx tokens, scored only at outputs of repeated triggers', () => {
    const words = 'the king spoke to the queen about the castle and the horse while the soldier slept in the garden';
    const text = splitTokens(tok, Array.from({ length: 40 }, () => words).join('. '));
    const data = buildEmbeddedData(tok, text, { ...DEFAULT_MIX, seed: 3, ctx: 128, weights: { text: 0, induction: 1, ioi: 0 } });
    const b = data.batchAt(5, { inductionTriggerRows: true });
    expect(b.batch).toBe(DEFAULT_MIX.triggerBatch);
    expect(b.pos).toBe(DEFAULT_MIX.triggerCtx);
    let scored = 0;
    forEachScored(b, (x, y, p) => {
      scored++;
      expect(onStripe(x, y, p)).toBe(true);
    });
    expect(scored).toBeGreaterThan(DEFAULT_MIX.triggerBatch * 2);
    // without the phase option the same step is the usual 16 rows of 128
    const usual = data.batchAt(5);
    expect([usual.batch, usual.pos]).toEqual([DEFAULT_MIX.batch, 128]);
    // a share of trigger steps: both kinds occur, about half each
    const kinds = Array.from({ length: 40 }, (_v, step) => data.batchAt(step, { inductionTriggerFraction: 0.5 }).batch);
    const triggers = kinds.filter((k) => k === DEFAULT_MIX.triggerBatch).length;
    expect(triggers + kinds.filter((k) => k === DEFAULT_MIX.batch).length).toBe(40);
    expect(triggers).toBeGreaterThan(10);
    expect(triggers).toBeLessThan(30);
    // a subset of the scoreable positions of whole rows is scored (half here)
    const half = buildEmbeddedData(tok, text, { ...DEFAULT_MIX, seed: 3, ctx: 128, inductionTargetFraction: 0.5, weights: { text: 0, induction: 1, ioi: 0 } });
    const countScored = (b: ClassBatch) => Array.from(b.targets).filter((t) => t >= 0).length;
    let all = 0;
    let some = 0;
    for (let step = 0; step < 6; step++) { all += countScored(data.batchAt(step)); some += countScored(half.batchAt(step)); }
    expect(some / all).toBeGreaterThan(0.35);
    expect(some / all).toBeLessThan(0.65);
  });

  it('trigger shapes: each trigger-row step has one of the listed shapes, drawn by step; scored tokens stay on the stripe at every position', () => {
    const words = 'the king spoke to the queen about the castle and the horse while the soldier slept in the garden';
    const text = splitTokens(tok, Array.from({ length: 40 }, () => words).join('. '));
    const opts = { ...DEFAULT_MIX, seed: 3, ctx: 128, inductionTokens: 'vocab' as const, fullVocabulary: true, weights: { text: 0, induction: 1, ioi: 0 } };
    const shapes = [{ ctx: 32, batch: 64, minTriggers: 2, maxTriggers: 4 }, { ctx: 128, batch: 16, minTriggers: 8, maxTriggers: 16 }];
    const data = buildEmbeddedData(tok, text, { ...opts, triggerShapes: shapes });
    const plain = buildEmbeddedData(tok, text, opts);
    const seen = new Map<number, number>();
    let lateScored = 0;
    for (let step = 0; step < 30; step++) {
      const b = data.batchAt(step, { inductionTriggerRows: true });
      expect(shapes.map((s) => [s.batch, s.ctx])).toContainEqual([b.batch, b.pos]);
      seen.set(b.pos, (seen.get(b.pos) ?? 0) + 1);
      forEachScored(b, (x, y, p) => {
        expect(onStripe(x, y, p)).toBe(true);
        if (p >= 33) lateScored++;
      });
      // the same step is drawn the same way again
      expect(Array.from(data.batchAt(step, { inductionTriggerRows: true }).targets)).toEqual(Array.from(b.targets));
    }
    // both shapes occur; the long rows score outputs beyond position 32 (where 33-token rows never train)
    expect(seen.get(32)).toBeGreaterThan(5);
    expect(seen.get(128)).toBeGreaterThan(5);
    expect(lateScored).toBeGreaterThan(100);
    // a phase can override the shapes; without shapes trigger steps stay triggerBatch rows of triggerCtx
    const b = plain.batchAt(4, { inductionTriggerRows: true });
    expect([b.batch, b.pos]).toEqual([DEFAULT_MIX.triggerBatch, DEFAULT_MIX.triggerCtx]);
    expect(plain.batchAt(4, { inductionTriggerRows: true, triggerShapes: [shapes[1]] }).pos).toBe(128);
  });
});
