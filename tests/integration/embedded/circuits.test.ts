/**
 * The shipped embedded model (models/embedded) has the circuits its model card claims, measured with
 * the workbench API (HookedTransformer on the exported directory, default weight processing).
 */
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HookedTransformer } from '../../../hooks/HookedTransformer.ts';
import { Gpt2Tokenizer } from '../../../hooks/tokenizer.ts';
import { ablationOf, headScores, ioiMetrics, logitLensAccuracy, repeatedTokenLosses, type HeadScores, type RepeatLosses } from '../../../training/circuits.ts';
import { consecutiveWindows } from '../../../training/data/batches.ts';
import { IOI_HELDOUT_NAMES } from '../../../training/data/ioi.ts';
import { readTokenizedText } from '../../../training/data/text.ts';
import { seenPool } from '../../../training/evalEmbedded.ts';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const DIR = join(ROOT, 'models', 'embedded');

let model: HookedTransformer;
let pool: number[];
let rep: RepeatLosses;
let scores: HeadScores;

beforeAll(async () => {
  model = await HookedTransformer.fromPretrained(DIR);
  pool = await seenPool(DIR);
  rep = await repeatedTokenLosses(model, pool, { n: 50, minSpan: 20, maxSpan: 40 });
  scores = await headScores(model, pool);
}, 120_000);
afterAll(async () => model?.dispose());

describe('embedded model', () => {
  it('is a GPT-2 with at least 2 layers of 4 heads', () => {
    expect(model.cfg.n_layers).toBeGreaterThanOrEqual(2);
    expect(model.cfg.n_heads).toBeGreaterThanOrEqual(4);
    expect(model.cfg.d_vocab).toBe(50257);
  });

  it('predicts the second copy of repeated random tokens: loss ≥ 4 nats below the first copy (50 sequences, spans 20–40)', () => {
    expect(rep.first - rep.second).toBeGreaterThanOrEqual(4);
  });

  it('has an induction head (score ≥ 0.5) in a layer ≥ 1 and a previous-token head (score ≥ 0.5) in an earlier layer', () => {
    let found = false;
    for (let l = 1; l < model.cfg.n_layers; l++) {
      if (!scores.induction[l].some((s) => s >= 0.5)) continue;
      for (let e = 0; e < l; e++) if (scores.previousToken[e].some((s) => s >= 0.5)) found = true;
    }
    expect(found, JSON.stringify(scores)).toBe(true);
  });

  it('zero-ablating the induction heads (score > 0.3) raises the second-copy loss by ≥ 2 nats', async () => {
    const heads: [number, number][] = [];
    scores.induction.forEach((hs, l) => hs.forEach((s, h) => { if (s > 0.3) heads.push([l, h]); }));
    expect(heads.length).toBeGreaterThan(0);
    const ablated = await repeatedTokenLosses(model, pool, { n: 50, minSpan: 20, maxSpan: 40, interventions: ablationOf(heads) });
    expect(ablated.second - rep.second).toBeGreaterThanOrEqual(2);
  }, 120_000);

  it('does IOI on held-out names: mean logit diff ≥ 2, accuracy ≥ 90 %, and swapping the repeated name flips the sign', async () => {
    const m = await ioiMetrics(model, IOI_HELDOUT_NAMES, { n: 100 });
    expect(m.meanLogitDiff).toBeGreaterThanOrEqual(2);
    expect(m.accuracy).toBeGreaterThanOrEqual(0.9);
    expect(m.swappedMeanLogitDiff).toBeLessThan(0);
    expect(m.flipRate).toBeGreaterThanOrEqual(0.9);
  }, 120_000);

  it('logit lens: top-1 accuracy on held-out Shakespeare is higher at the last layer than after the first', async () => {
    const tok = await Gpt2Tokenizer.default();
    const text = await readTokenizedText(tok, join(ROOT, 'data', 'tinyshakespeare.txt'));
    const acc = await logitLensAccuracy(model, consecutiveWindows(text.heldOut, 8, model.cfg.n_ctx - 1, [50256]));
    expect(acc).toHaveLength(model.cfg.n_layers + 1);
    expect(acc[model.cfg.n_layers]).toBeGreaterThan(acc[1]);
    // the last entry is the model's own prediction: better than chance by far
    expect(acc[model.cfg.n_layers]).toBeGreaterThan(0.1);
  }, 120_000);
});
