/**
 * The shipped embedded model (models/embedded) has the behaviour its model card claims, measured through the public
 * API (HookedTransformer.fromPretrained on the directory, default weight processing) — every "done when" figure of
 * issue 19: induction on random tokens drawn uniformly from GPT-2's whole vocabulary (ids 0–50255) and on repeated
 * natural sentences, TransformerLens's 8 IOI prompts, IOI on held-out names, the logit lens improving with depth.
 */
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HookedTransformer } from '../../../hooks/HookedTransformer.ts';
import { detectHead } from '../../../hooks/analysis/headDetector.ts';
import { IOI_HELDOUT_NAMES, IOI_TRAIN_NAMES } from '../../../hooks/datasets/ioi.ts';
import { Gpt2Tokenizer } from '../../../hooks/tokenizer.ts';
import {
  ablationOf, bestHead, ioiMetrics, logitLensAccuracy, repeatedRows, repeatedRowStats, repeatedSentenceRows, TL_IOI_PROMPTS, tlIoiLogitDiffs,
  wholeVocabulary, type RepeatedRowStats,
} from '../../../training/circuits.ts';
import { consecutiveWindows } from '../../../training/data/batches.ts';
import { readTokenizedText } from '../../../training/data/text.ts';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const DIR = join(ROOT, 'models', 'embedded');

let model: HookedTransformer;
/** 50 rows [BOS, s, s], s of 20–40 tokens drawn uniformly from ids 0–50255, and their statistics. */
let vocab: { rows: number[][]; spans: number[] };
let clean: RepeatedRowStats;

beforeAll(async () => {
  model = await HookedTransformer.fromPretrained(DIR);
  vocab = repeatedRows(model.cfg.bos_token_id, wholeVocabulary(model.cfg), { n: 50, minSpan: 20, maxSpan: 40, seed: 0 });
  clean = await repeatedRowStats(model, vocab.rows, vocab.spans);
}, 120_000);
afterAll(async () => model?.dispose());

/** Heads of layer ≥ 1 whose second-copy stripe attention is at least `min` on the whole-vocabulary rows. */
const inductionHeads = (min: number) => clean.secondCopyStripe.flatMap((hs, l) => hs.flatMap((v, h) => (l >= 1 && v >= min ? [[l, h] as [number, number]] : [])));

describe('embedded model', () => {
  it('is a GPT-2 of ≥ 2 layers × 4 heads with GPT-2\'s whole vocabulary, every token its own embedding, ≤ 32 MB, no training_vocab.json', () => {
    expect(model.cfg.n_layers).toBeGreaterThanOrEqual(2);
    expect(model.cfg.n_heads).toBeGreaterThanOrEqual(4);
    expect(model.cfg.d_vocab).toBe(50257);
    const files = readdirSync(DIR);
    expect(files).not.toContain('training_vocab.json');
    expect(files.reduce((a, f) => a + statSync(join(DIR, f)).size, 0)).toBeLessThanOrEqual(32_000_000);
  });

  it('repeated random tokens from the whole vocabulary (50 rows, spans 20–40): the second copy is ≥ 4 nats below the first', () => {
    expect(clean.first - clean.second).toBeGreaterThanOrEqual(4);
  });

  it("TransformerLens's head detector on the same rows: the best layer ≥ 1 induction head scores ≥ 0.3 (≥ 0.6 on the second copy alone), a previous-token head ≥ 0.5", async () => {
    const induction = await detectHead(model, vocab.rows, 'induction_head'); // [n_layers, n_heads], averaged over the rows
    const previous = await detectHead(model, vocab.rows, 'previous_token_head');
    const grid = (t: typeof induction) => Array.from({ length: model.cfg.n_layers }, (_v, l) => Array.from({ length: model.cfg.n_heads }, (_w, h) => t.get(l, h)));
    const best = bestHead(grid(induction), 1);
    expect(best.value).toBeGreaterThanOrEqual(0.3);
    expect(bestHead(clean.secondCopyStripe, 1).value).toBeGreaterThanOrEqual(0.6);
    expect(bestHead(grid(previous)).value).toBeGreaterThanOrEqual(0.5);
  }, 120_000);

  it('zero-ablating the induction heads (second-copy stripe ≥ 0.3) raises the second-copy loss by ≥ 2 nats', async () => {
    const heads = inductionHeads(0.3);
    expect(heads.length).toBeGreaterThan(0);
    const ablated = await repeatedRowStats(model, vocab.rows, vocab.spans, ablationOf(heads));
    expect(ablated.second - clean.second).toBeGreaterThanOrEqual(2);
  }, 120_000);

  it('five held-out Shakespeare sentences, each repeated: the second copy is ≥ 2 nats below the first, and the induction heads put ≥ 0.4 of their attention on the stripe', async () => {
    const { rows, spans } = repeatedSentenceRows(model);
    expect(spans.every((n) => n >= 15 && n <= 30)).toBe(true);
    const s = await repeatedRowStats(model, rows, spans);
    expect(s.first - s.second).toBeGreaterThanOrEqual(2);
    const heads = inductionHeads(0.3);
    const mean = heads.reduce((a, [l, h]) => a + s.secondCopyStripe[l][h], 0) / heads.length;
    expect(mean).toBeGreaterThanOrEqual(0.4);
  }, 120_000);

  it("TransformerLens's 8 IOI prompts (verbatim): all correct, mean logit difference ≥ 3", async () => {
    expect(TL_IOI_PROMPTS.map((p) => p.prompt)).toEqual([
      'When John and Mary went to the shops, John gave the bag to',
      'When John and Mary went to the shops, Mary gave the bag to',
      'When Tom and James went to the park, James gave the ball to',
      'When Tom and James went to the park, Tom gave the ball to',
      'When Dan and Sid went to the shops, Sid gave an apple to',
      'When Dan and Sid went to the shops, Dan gave an apple to',
      'After Martin and Amy went to the park, Amy gave a drink to',
      'After Martin and Amy went to the park, Martin gave a drink to',
    ]);
    const diffs = await tlIoiLogitDiffs(model);
    expect(diffs.every((d) => d > 0)).toBe(true);
    expect(diffs.reduce((a, b) => a + b, 0) / diffs.length).toBeGreaterThanOrEqual(3);
  }, 120_000);

  it('IOI on held-out names (100 prompts): accuracy ≥ 90 %, mean logit difference ≥ 2, swapping the repeated name flips the sign', async () => {
    const m = await ioiMetrics(model, IOI_HELDOUT_NAMES, { n: 100 });
    expect(m.accuracy).toBeGreaterThanOrEqual(0.9);
    expect(m.meanLogitDiff).toBeGreaterThanOrEqual(2);
    expect(m.flipRate).toBeGreaterThanOrEqual(0.8);
  }, 120_000);

  it('IOI on training names: accuracy ≥ 90 %', async () => {
    const m = await ioiMetrics(model, IOI_TRAIN_NAMES, { n: 50, seed: 5 });
    expect(m.accuracy).toBeGreaterThanOrEqual(0.9);
  }, 120_000);

  it('logit lens: top-1 accuracy on held-out Shakespeare improves with depth', async () => {
    const tok = await Gpt2Tokenizer.default();
    const text = await readTokenizedText(tok, join(ROOT, 'data', 'tinyshakespeare.txt'));
    const acc = await logitLensAccuracy(model, consecutiveWindows(text.heldOut, 8, model.cfg.n_ctx - 1, [50256]));
    expect(acc).toHaveLength(model.cfg.n_layers + 1);
    expect(acc[model.cfg.n_layers]).toBeGreaterThan(acc[1]);
    expect(acc[model.cfg.n_layers]).toBeGreaterThan(0.2);
  }, 120_000);
});
