/**
 * A checkpoint's training_vocab.json (written by the trainer) gives random-token analyses the tokens
 * the model was trained on: fromPretrained reads it, and repeated random tokens are drawn from it.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HookedTransformer } from '../../../hooks/HookedTransformer.ts';
import { generateRepeatedTokens } from '../../../hooks/analysis/induction.ts';

const DIR = join(fileURLToPath(new URL('../../../', import.meta.url)), 'models', 'embedded');
const pool: number[] = JSON.parse(readFileSync(join(DIR, 'training_vocab.json'), 'utf8')).induction_pool;
let model: HookedTransformer;

beforeAll(async () => {
  model = await HookedTransformer.fromPretrained(DIR, { threads: 1 });
}, 120_000);
afterAll(async () => model?.dispose());

describe('random token pool', () => {
  it("is read from the checkpoint's training_vocab.json", () => {
    expect(model.randomTokenPool).toEqual(pool);
    expect(pool.length).toBe(512); // the 512 most frequent training-text tokens (training/embedded.ts)
  });

  it('repeated random tokens come from the pool (BOS, then a span and its copy)', () => {
    const tokens = generateRepeatedTokens(model.cfg, { seqLen: 20, batch: 3, seed: 4, pool: model.randomTokenPool! });
    const inPool = new Set(pool);
    for (const row of tokens) {
      expect(row[0]).toBe(model.cfg.bos_token_id);
      expect(row.slice(1).every((t) => inPool.has(t))).toBe(true);
      expect(row.slice(1, 21)).toEqual(row.slice(21, 41));
    }
  });

  it('a model from memory has no pool unless given one (the whole vocabulary is used)', async () => {
    const other = await HookedTransformer.fromWeights(model.cfg, structuredClone(model.rawWeights), { threads: 1 });
    expect(other.randomTokenPool).toBeNull();
    await other.dispose();
  });
});

describe('HookedTransformer.fromPretrained() with no name', () => {
  it('loads the embedded model: same config, tokenizer, token pool and logits as fromPretrained(models/embedded)', async () => {
    const bare = await HookedTransformer.fromPretrained(undefined, { threads: 1 });
    try {
      expect(bare.cfg).toEqual(model.cfg);
      expect(bare.cfg.model_name).toBe('embedded');
      expect(bare.randomTokenPool).toEqual(pool);
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
