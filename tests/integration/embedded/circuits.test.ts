/**
 * The shipped embedded model (models/embedded) has the behaviour its model card claims, measured with
 * the workbench API (HookedTransformer on the exported directory, default weight processing).
 * Every target of the embedded-model issue is asserted here. The weights-based circuit scores the card
 * reports (copying scores, K-composition) are not: from raw W_E they do not single out the induction heads
 * (see the card, "From the weights").
 */
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HookedTransformer } from '../../../hooks/HookedTransformer.ts';
import { detectHead } from '../../../hooks/analysis/headDetector.ts';
import { Tensor } from '../../../hooks/tensor.ts';
import { Gpt2Tokenizer } from '../../../hooks/tokenizer.ts';
import { ablationOf, headScores, ioiMetrics, logitLensAccuracy, repeatedTokenLosses } from '../../../training/circuits.ts';
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

  it('does IOI on held-out names: mean logit diff (IO − S) ≥ 2.0, accuracy ≥ 90 %, and swapping the repeated name flips its sign', async () => {
    const m = await ioiMetrics(model, IOI_HELDOUT_NAMES, { n: 100 });
    expect(m.meanLogitDiff).toBeGreaterThanOrEqual(2.0); // measured 12.33
    expect(m.accuracy).toBeGreaterThanOrEqual(0.9); // measured 1.00
    expect(m.swappedMeanLogitDiff).toBeLessThan(-2.0); // measured −11.96
    expect(m.flipRate).toBeGreaterThanOrEqual(0.8); // measured 1.00
  }, 120_000);

  it('does IOI on training names: logit diff > 4, accuracy ≥ 90 %, most swaps flip', async () => {
    const m = await ioiMetrics(model, IOI_TRAIN_NAMES, { n: 50, seed: 5 });
    expect(m.meanLogitDiff).toBeGreaterThan(4); // measured 12.93
    expect(m.accuracy).toBeGreaterThanOrEqual(0.9); // measured 1.00
    expect(m.flipRate).toBeGreaterThanOrEqual(0.9); // measured 1.00
  }, 120_000);

  it('copies repeated random tokens: second-copy loss ≥ 4 nats below the first (50 sequences, spans 20–40)', async () => {
    const rep = await repeatedTokenLosses(model, await seenPool(DIR), { n: 50, minSpan: 20, maxSpan: 40 });
    expect(rep.first - rep.second).toBeGreaterThanOrEqual(4); // measured 10.07
  }, 120_000);

  it("induction (TransformerLens's scores on [BOS, r, r], span 30): a head in layer ≥ 1 scores ≥ 0.5, a previous-token head below it ≥ 0.5, and zero-ablating the heads above 0.3 raises second-copy loss ≥ 2 nats", async () => {
    const pool = await seenPool(DIR);
    const s = await headScores(model, pool, { span: 30, n: 10 });
    const best = (grid: number[][], layers: (l: number) => boolean) =>
      grid.flatMap((hs, l) => hs.map((v, h) => ({ v, l, h }))).filter(({ l }) => layers(l)).sort((a, b) => b.v - a.v)[0];
    const induction = best(s.induction, (l) => l >= 1);
    expect(induction.v).toBeGreaterThanOrEqual(0.5); // measured 0.81 (L1H3; L1H0–2 0.75–0.79)
    const previous = best(s.previousToken, (l) => l < induction.l);
    expect(previous.v).toBeGreaterThanOrEqual(0.5); // measured 0.96 (L0H2)
    const heads: [number, number][] = [];
    s.induction.forEach((hs, l) => hs.forEach((v, h) => { if (v > 0.3) heads.push([l, h]); }));
    const clean = await repeatedTokenLosses(model, pool, { n: 50, minSpan: 20, maxSpan: 40 });
    const ablated = await repeatedTokenLosses(model, pool, { n: 50, minSpan: 20, maxSpan: 40, interventions: ablationOf(heads) });
    expect(ablated.second - clean.second).toBeGreaterThanOrEqual(2); // measured +10.05 (L1H0–3)
  }, 120_000);

  it("the head detector finds the heads the model card names (L0H2 previous token; L1H0–L1H3 induction)", async () => {
    const pool = await seenPool(DIR);
    const L = 30;
    const r = Array.from({ length: L }, (_, i) => pool[(i * 37 + 11) % pool.length]); // 30 distinct pool tokens
    const seq = [50256, ...r, ...r];
    const H = model.cfg.n_heads;
    const ranked = (t: Tensor) => Array.from(t.data).map((v, i) => [v, Math.floor(i / H), i % H] as const).sort((a, b) => b[0] - a[0]);
    const label = ([, l, h]: readonly [number, number, number]) => `L${l}H${h}`;
    const prev = ranked(await detectHead(model, seq, 'previous_token_head'));
    expect(label(prev[0])).toBe('L0H2');
    const ind = ranked(await detectHead(model, seq, 'induction_head'));
    expect(['L1H0', 'L1H1', 'L1H2', 'L1H3']).toContain(label(ind[0]));
    // TL's 'mul' score divides by all attention, first copy included: a perfect stripe scores ~0.5 here
    expect(ind[0][0]).toBeGreaterThan(0.3);
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
