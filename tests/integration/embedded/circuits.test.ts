/**
 * The shipped embedded model (models/embedded) has the behaviour its model card claims, measured with
 * the workbench API (HookedTransformer on the exported directory, default weight processing).
 * Only the targets the model meets are asserted here; the card lists the ones it misses (TransformerLens's
 * induction-stripe score: the copying heads attend one token further, see the card).
 */
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HookedTransformer } from '../../../hooks/HookedTransformer.ts';
import { detectHead } from '../../../hooks/analysis/headDetector.ts';
import { copyingScores } from '../../../hooks/circuits/index.ts';
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
    expect(m.meanLogitDiff).toBeGreaterThanOrEqual(2.0); // measured 5.53
    expect(m.accuracy).toBeGreaterThanOrEqual(0.9); // measured 0.91
    expect(m.swappedMeanLogitDiff).toBeLessThan(-2.0); // measured −5.58
    expect(m.flipRate).toBeGreaterThanOrEqual(0.8); // measured 0.84
  }, 120_000);

  it('does IOI on training names: logit diff > 4, accuracy ≥ 90 %, most swaps flip', async () => {
    const m = await ioiMetrics(model, IOI_TRAIN_NAMES, { n: 50, seed: 5 });
    expect(m.meanLogitDiff).toBeGreaterThan(4); // measured 7.32
    expect(m.accuracy).toBeGreaterThanOrEqual(0.9); // measured 1.00
    expect(m.flipRate).toBeGreaterThanOrEqual(0.9); // measured 1.00
  }, 120_000);

  it('copies repeated random tokens: second-copy loss ≥ 4 nats below the first (50 sequences, spans 20–40)', async () => {
    const rep = await repeatedTokenLosses(model, await seenPool(DIR), { n: 50, minSpan: 20, maxSpan: 40 });
    expect(rep.first - rep.second).toBeGreaterThanOrEqual(4); // measured 7.38
  }, 120_000);

  it('has a previous-token head in layer 0 (score ≥ 0.5) and layer-2 copying heads whose zero-ablation raises second-copy loss ≥ 2 nats', async () => {
    const pool = await seenPool(DIR);
    const s = await headScores(model, pool, { span: 30, n: 10 });
    expect(Math.max(...s.previousToken[0])).toBeGreaterThanOrEqual(0.5); // L0H3 ≈ 0.99
    // the copying heads attend to the token two after the earlier occurrence (card: "shifted induction")
    const copying: [number, number][] = [];
    s.shiftedInduction.forEach((hs, l) => hs.forEach((v, h) => { if (v >= 0.5) copying.push([l, h]); }));
    expect(copying.length).toBeGreaterThanOrEqual(1);
    expect(copying.every(([l]) => l >= 1)).toBe(true);
    const clean = await repeatedTokenLosses(model, pool, { n: 50, minSpan: 20, maxSpan: 40 });
    const ablated = await repeatedTokenLosses(model, pool, { n: 50, minSpan: 20, maxSpan: 40, interventions: ablationOf(copying) });
    expect(ablated.second - clean.second).toBeGreaterThanOrEqual(2);
  }, 120_000);

  it("the head detector and the weights find the heads the model card names (L0H3 previous token; L0H0 three back; L2H0, L2H1, L2H3 copying)", async () => {
    const pool = await seenPool(DIR);
    const L = 30;
    const r = Array.from({ length: L }, (_, i) => pool[(i * 37 + 11) % pool.length]); // 30 distinct pool tokens
    const seq = [50256, ...r, ...r];
    const T = seq.length;
    const ranked = (t: Tensor) => Array.from(t.data).map((v, i) => [v, Math.floor(i / model.cfg.n_heads), i % model.cfg.n_heads] as const).sort((a, b) => b[0] - a[0]);
    const prev = ranked(await detectHead(model, seq, 'previous_token_head'));
    expect([prev[0][1], prev[0][2]]).toEqual([0, 3]);
    expect(prev[0][0]).toBeGreaterThan(0.9); // every query but BOS attends to its previous token
    // a user-given pattern: second-copy queries attend to the token two after the earlier occurrence
    const shifted = new Float32Array(T * T);
    for (let q = L + 1; q < T; q++) shifted[q * T + q - (L - 2)] = 1;
    const top = ranked(await detectHead(model, seq, new Tensor(shifted, [T, T]))).slice(0, 3).map(([, l, h]) => `L${l}H${h}`).sort();
    expect(top).toEqual(['L2H0', 'L2H1', 'L2H3']);
    // the card's three-back head: a pattern with ones three below the diagonal ranks L0H0 first
    const threeBack = new Float32Array(T * T);
    for (let q = 3; q < T; q++) threeBack[q * T + q - 3] = 1;
    const back3 = ranked(await detectHead(model, seq, new Tensor(threeBack, [T, T])));
    expect([back3[0][1], back3[0][2]]).toEqual([0, 0]);
    expect(back3[0][0]).toBeGreaterThan(0.9);
    // from the weights: these heads copy (Σλ / Σ|λ| of W_E W_OV W_U above 0.7)
    const c = await copyingScores(model);
    for (const h of [0, 1, 3]) expect(c.data[2 * model.cfg.n_heads + h]).toBeGreaterThan(0.7); // measured 0.99, 0.92, 0.95
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
