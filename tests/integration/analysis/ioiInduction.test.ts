/** IOI dataset (GPT-2 tokenizer, single-token names), its ABC corruption, logit difference and head attribution; repeated tokens, induction loss and loss by position against the reference forward. */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generateRepeatedTokens, inductionLoss, lossByPosition } from '../../../hooks/analysis/induction.ts';
import { ioiCorruptedAbc, ioiDataset, ioiHeadAttribution, ioiLogitDiff } from '../../../hooks/analysis/ioi.ts';
import { HookedTransformer } from '../../../hooks/HookedTransformer.ts';
import { lmCrossEntropyLoss } from '../../../hooks/loss.ts';
import { referenceForward } from '../../../hooks/reference.ts';
import { Gpt2Tokenizer } from '../../../hooks/tokenizer.ts';
import { cloneWeights, tinyConfig, tinyWeights } from '../engine/helpers.ts';

const cfg = tinyConfig({ n_layers: 2, d_model: 16, n_heads: 4, d_vocab: 50257 }); // GPT-2's vocabulary, tiny otherwise
const original = tinyWeights(cfg, 66);
let tok: Gpt2Tokenizer;
let model: HookedTransformer; // unprocessed
let folded: HookedTransformer;

beforeAll(async () => {
  tok = await Gpt2Tokenizer.default();
  model = await HookedTransformer.fromWeights(cfg, cloneWeights(original), { threads: 1, tokenizer: tok });
  folded = await HookedTransformer.fromWeights(cfg, cloneWeights(original), { threads: 1, tokenizer: tok, foldLn: true, centerWritingWeights: true, centerUnembed: true, foldValueBiases: true });
});
afterAll(async () => {
  await model?.dispose();
  await folded?.dispose();
});

describe('ioiDataset', () => {
  it('ABBA / BABA prompts of one template share a length; answers are the single tokens of IO and S', () => {
    const ds = ioiDataset(tok, { n: 6, seed: 4, names: ['Mary', 'John', 'Tom', 'James', 'Xylophonia'] });
    expect(ds.names).toEqual(['Mary', 'John', 'Tom', 'James']); // ' Xylophonia' is several tokens
    expect(ds.padded).toBe(false);
    const len = ds.tokens[0].length;
    expect(ds.tokens.every((r) => r.length === len && r[0] === 50256)).toBe(true);
    expect(ds.endPos).toEqual(new Array(6).fill(len - 1));
    ds.prompts.forEach((p, i) => {
      const [a, b] = i % 2 === 0 ? [p.io, p.s] : [p.s, p.io];
      expect(p.order).toBe(i % 2 === 0 ? 'ABBA' : 'BABA');
      expect(p.prompt).toBe(`When ${a} and ${b} went to the ${p.place}, ${p.s} gave a ${p.object} to`);
      expect(ds.ioTokens[i]).toBe(tok.encode(` ${p.io}`)[0]);
      expect(ds.sTokens[i]).toBe(tok.encode(` ${p.s}`)[0]);
      expect(ds.tokens[i]).toEqual(tok.toTokens(p.prompt).tokens[0]);
    });
    expect(() => ioiDataset(tok, { n: 2, names: ['Mary', 'John'] })).toThrow(/at least 3 names/);
    expect(() => ioiDataset(tok, { n: 2, templates: [99] })).toThrow(/template 99 does not exist/);
  });

  it('the ABC corruption keeps template, place, object and length, with three other distinct names', () => {
    const ds = ioiDataset(tok, { n: 8, seed: 2 });
    const abc = ioiCorruptedAbc(tok, ds, { seed: 5 });
    expect(abc.tokens[0].length).toBe(ds.tokens[0].length);
    abc.corruptedPrompts.forEach((text, i) => {
      const p = ds.prompts[i];
      const m = /^When (\w+) and (\w+) went to the (\w+), (\w+) gave a (\w+) to$/.exec(text);
      expect(m, text).not.toBeNull();
      const [, a, b, place, s, object] = m!;
      expect(new Set([a, b, s]).size).toBe(3);
      for (const n of [a, b, s]) expect([p.io, p.s]).not.toContain(n);
      expect([place, object]).toEqual([p.place, p.object]);
    });
    expect(abc.ioTokens).toEqual(ds.ioTokens); // the metric still reads the clean answers
  });

  it('mixed templates are right-padded with an attention mask and per-prompt end positions', () => {
    const ds = ioiDataset(tok, { n: 6, seed: 1, templates: [0, 3] });
    expect(ds.padded).toBe(true);
    ds.prompts.forEach((p, i) => {
      const n = tok.toTokens(p.prompt).tokens[0].length;
      expect(ds.endPos[i]).toBe(n - 1);
      expect(ds.attentionMask[i].reduce((a, b) => a + b, 0)).toBe(n);
    });
  });
});

describe('IOI logit difference and attribution', () => {
  it('ioiLogitDiff = logits[b, end, IO] − logits[b, end, S] of the reference forward (1e-4)', async () => {
    const ds = ioiDataset(tok, { n: 4, seed: 9 });
    const r = await ioiLogitDiff(model, ds);
    const ref = referenceForward(cfg, original, ds.tokens).logits;
    ds.endPos.forEach((e, b) => expect(r.perPrompt[b]).toBeCloseTo(ref.get(b, e, ds.ioTokens[b]) - ref.get(b, e, ds.sTokens[b]), 4));
    expect(r.mean).toBeCloseTo(r.perPrompt.reduce((a, b) => a + b, 0) / 4, 6);
  });

  it('per-head attribution + remainder + b_U difference = the logit difference, padded prompts too (1e-4)', async () => {
    const ds = ioiDataset(tok, { n: 4, seed: 3, templates: [0, 3] });
    const dla = await ioiHeadAttribution(folded, ds);
    const { perPrompt } = await ioiLogitDiff(folded, ds);
    for (let b = 0; b < 4; b++) {
      expect(dla.logitDiff.get(b)).toBeCloseTo(perPrompt[b], 4);
      expect(dla.heads.index(0, b).sum().item() + dla.headRemainder.get(b) + dla.unembedBias.get(b)).toBeCloseTo(perPrompt[b], 4);
    }
  });
});

describe('induction', () => {
  it('generateRepeatedTokens: BOS, a span, the same span; deterministic per seed; never BOS inside', () => {
    const t = generateRepeatedTokens(cfg, { seqLen: 5, batch: 3, seed: 7 });
    expect(t.length).toBe(3);
    for (const row of t) {
      expect(row.length).toBe(11);
      expect(row[0]).toBe(cfg.bos_token_id);
      expect(row.slice(1, 6)).toEqual(row.slice(6));
      expect(row.slice(1).every((x) => Number.isInteger(x) && x >= 0 && x < cfg.d_vocab && x !== cfg.bos_token_id)).toBe(true);
    }
    expect(generateRepeatedTokens(cfg, { seqLen: 5, batch: 3, seed: 7 })).toEqual(t);
    expect(generateRepeatedTokens(cfg, { seqLen: 5, batch: 3, seed: 8 })).not.toEqual(t);
    expect(generateRepeatedTokens(cfg, { seqLen: 3, prependBos: false, pool: [4, 5] })[0].every((x) => x === 4 || x === 5)).toBe(true);
    expect(() => generateRepeatedTokens(cfg, { seqLen: 16 })).toThrow(/33 tokens exceed the model's context n_ctx = 32/);
  });

  it('lossByPosition and inductionLoss equal the reference forward’s per-token losses (1e-4)', async () => {
    const tokens = generateRepeatedTokens(cfg, { seqLen: 6, batch: 2, seed: 1 });
    const perToken = lmCrossEntropyLoss(referenceForward(cfg, original, tokens).logits, tokens, null, true); // [2, 12]
    const byPos = await lossByPosition(model, tokens);
    expect(byPos.shape).toEqual([12]);
    for (let p = 0; p < 12; p++) expect(byPos.get(p)).toBeCloseTo((perToken.get(0, p) + perToken.get(1, p)) / 2, 4);
    const { loss } = await inductionLoss(model, { tokens, subseqLen: 6 });
    let s = 0;
    for (let b = 0; b < 2; b++) for (let p = 7; p < 12; p++) s += perToken.get(b, p);
    expect(loss).toBeCloseTo(s / 10, 4);
  });
});
