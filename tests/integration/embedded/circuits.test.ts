/**
 * The shipped embedded model (models/embedded) has the behaviour its model card claims, measured with
 * the workbench API (HookedTransformer on the exported directory, default weight processing).
 * Only the targets the model meets are asserted here; the card lists the ones it misses (induction heads).
 */
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HookedTransformer } from '../../../hooks/HookedTransformer.ts';
import { Gpt2Tokenizer } from '../../../hooks/tokenizer.ts';
import { ioiMetrics, logitLensAccuracy, repeatedTokenLosses } from '../../../training/circuits.ts';
import { consecutiveWindows } from '../../../training/data/batches.ts';
import { IOI_HELDOUT_NAMES, IOI_TRAIN_NAMES } from '../../../hooks/datasets/ioi.ts';
import { readTokenizedText } from '../../../training/data/text.ts';
import { seenPool } from '../../../training/evalEmbedded.ts';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const DIR = join(ROOT, 'models', 'embedded');

let model: HookedTransformer;

beforeAll(async () => {
  model = await HookedTransformer.fromPretrained(DIR);
}, 120_000);
afterAll(async () => model?.dispose());

describe('embedded model', () => {
  it('is a GPT-2 with at least 2 layers of 4 heads and the full GPT-2 vocabulary', () => {
    expect(model.cfg.n_layers).toBeGreaterThanOrEqual(2);
    expect(model.cfg.n_heads).toBeGreaterThanOrEqual(4);
    expect(model.cfg.d_vocab).toBe(50257);
  });

  it('does IOI on held-out names: mean logit diff (IO − S) ≥ 2, and swapping the repeated name flips its sign (mean)', async () => {
    const m = await ioiMetrics(model, IOI_HELDOUT_NAMES, { n: 100 });
    expect(m.meanLogitDiff).toBeGreaterThanOrEqual(2);
    expect(m.accuracy).toBeGreaterThanOrEqual(0.8); // measured 0.85; the 0.9 target is not met
    expect(m.swappedMeanLogitDiff).toBeLessThan(-2);
  }, 120_000);

  it('does IOI on training names: logit diff ≥ 8, accuracy and sign flips 100 %', async () => {
    const m = await ioiMetrics(model, IOI_TRAIN_NAMES, { n: 50, seed: 5 });
    expect(m.meanLogitDiff).toBeGreaterThanOrEqual(8);
    expect(m.accuracy).toBe(1);
    expect(m.flipRate).toBe(1);
  }, 120_000);

  it('copies repeated random tokens: second-copy loss ≥ 1 nat below the first (50 sequences, spans 20–40)', async () => {
    const rep = await repeatedTokenLosses(model, await seenPool(DIR), { n: 50, minSpan: 20, maxSpan: 40 });
    expect(rep.first - rep.second).toBeGreaterThanOrEqual(1); // measured 1.49; the 4-nat target is not met
  }, 120_000);

  it('logit lens: top-1 accuracy on held-out Shakespeare is higher at the last layer than after the first', async () => {
    const tok = await Gpt2Tokenizer.default();
    const text = await readTokenizedText(tok, join(ROOT, 'data', 'tinyshakespeare.txt'));
    const acc = await logitLensAccuracy(model, consecutiveWindows(text.heldOut, 8, model.cfg.n_ctx - 1, [50256]));
    expect(acc).toHaveLength(model.cfg.n_layers + 1);
    expect(acc[model.cfg.n_layers]).toBeGreaterThan(acc[1]);
    expect(acc[model.cfg.n_layers]).toBeGreaterThan(0.2);
  }, 120_000);
});
