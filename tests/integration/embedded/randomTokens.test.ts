/**
 * Random-token analyses draw from GPT-2's whole vocabulary, as TransformerLens's generate_repeated_tokens does (issue 19
 * retired the embedded model's token pool): every id in [0, d_vocab) but BOS, uniformly. And fromPretrained() with no
 * name loads the embedded model.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HookedTransformer } from '../../../hooks/HookedTransformer.ts';
import { generateRepeatedTokens, inductionLoss } from '../../../hooks/analysis/induction.ts';

const DIR = join(fileURLToPath(new URL('../../../', import.meta.url)), 'models', 'embedded');
let model: HookedTransformer;

beforeAll(async () => {
  model = await HookedTransformer.fromPretrained(DIR, { threads: 1 });
}, 120_000);
afterAll(async () => model?.dispose());

describe('random tokens', () => {
  it('the embedded model ships no token pool (no training_vocab.json)', () => {
    expect(existsSync(join(DIR, 'training_vocab.json'))).toBe(false);
    expect('randomTokenPool' in model).toBe(false);
  });

  it('repeated random tokens come from the whole vocabulary, never BOS: BOS, then a span and its copy', () => {
    const seqLen = 50;
    const tokens = generateRepeatedTokens(model.cfg, { seqLen, batch: 200, seed: 4 });
    const drawn = tokens.flatMap((row) => row.slice(1, seqLen + 1)); // 10,000 draws
    for (const row of tokens) {
      expect(row[0]).toBe(model.cfg.bos_token_id);
      expect(row.slice(1, seqLen + 1)).toEqual(row.slice(seqLen + 1));
    }
    expect(drawn.every((t) => Number.isInteger(t) && t >= 0 && t < model.cfg.d_vocab && t !== model.cfg.bos_token_id)).toBe(true);
    // Uniform over 50,256 ids: 10,000 draws span the vocabulary (expected ~9,100 distinct; each fifth of the ids ~2,000 draws).
    expect(new Set(drawn).size).toBeGreaterThan(8_800);
    const fifths = [0, 0, 0, 0, 0];
    for (const t of drawn) fifths[Math.floor((5 * t) / model.cfg.d_vocab)]++;
    for (const n of fifths) expect(Math.abs(n - 2_000)).toBeLessThan(200); // ±4.5 binomial std
  });

  it("inductionLoss draws them too, and the embedded model copies them (TransformerLens's evals.induction_loss)", async () => {
    const { loss, tokens } = await inductionLoss(model, { batchSize: 4, subseqLen: 30, seed: 1 });
    const again = generateRepeatedTokens(model.cfg, { seqLen: 30, batch: 4, seed: 1 });
    expect(tokens).toEqual(again);
    expect(loss).toBeLessThan(4); // first-copy loss on such tokens is ~13.5 nats (model card)
  });
});

describe('HookedTransformer.fromPretrained() with no name', () => {
  it('loads the embedded model: same config, tokenizer and logits as fromPretrained(models/embedded)', async () => {
    const bare = await HookedTransformer.fromPretrained(undefined, { threads: 1 });
    try {
      expect(bare.cfg).toEqual(model.cfg);
      expect(bare.cfg.model_name).toBe('embedded');
      const prompt = 'When Mary and John went to the store, John gave a drink to';
      expect(bare.toTokens(prompt)).toEqual(model.toTokens(prompt));
      const [a, b] = [await bare.forward(prompt), await model.forward(prompt)];
      expect(Array.from(a.data)).toEqual(Array.from(b.data));
    } finally {
      await bare.dispose();
    }
    const raw = await HookedTransformer.fromPretrainedNoProcessing();
    try {
      expect(raw.processing).toEqual({ foldLn: false, centerWritingWeights: false, centerUnembed: false, foldValueBiases: false });
      expect(raw.cfg.n_layers).toBe(model.cfg.n_layers);
    } finally {
      await raw.dispose();
    }
  });
});
