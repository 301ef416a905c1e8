/**
 * The shipped embedded model (models/embedded) has the behaviour its model card claims, measured with
 * the workbench API (HookedTransformer on the exported directory, default weight processing).
 * Every target of the embedded-model issue is asserted here, and the circuit read from the weights (the card's
 * "From the weights"): TransformerLens's raw scores do not single out the induction heads, because the layer-1
 * heads read tokens and the previous-token head's output after block 0's MLP; read past that MLP they do, and
 * ablating paths in the forward pass confirms where the previous-token information travels.
 */
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HookedTransformer } from '../../../hooks/HookedTransformer.ts';
import { detectHead } from '../../../hooks/analysis/headDetector.ts';
import {
  allCompositionScores, blockZeroMlpInputs, compositionBaseline, copyingScores, effectiveEmbedding, mlpLinearization,
} from '../../../hooks/circuits/index.ts';
import { randomTokens } from '../../../hooks/datasets/induction.ts';
import { Rng } from '../../../hooks/random.ts';
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

describe('embedded model: the induction circuit from the weights', () => {
  const INDUCTION = [0, 1, 2, 3]; // L1H0–L1H3, the card's induction heads
  const PREV = 2; // L0H2, the card's previous-token head

  it('read through the effective embedding (W_E + mean W_pos through block 0’s MLP), the induction heads copy: scores > 0.7', async () => {
    const pool = await seenPool(DIR);
    const s = await copyingScores(model, { embedding: await effectiveEmbedding(model, pool) });
    for (const h of INDUCTION) expect(s.get(1, h)).toBeGreaterThan(0.7); // measured 0.96 / 0.93 / 0.76 / 0.88
  }, 120_000);

  it("K-composition past block 0's MLP: every induction head's highest score is with L0H2, > 10 std above the baseline; TransformerLens's direct score sits at the baseline", async () => {
    const pool = await seenPool(DIR);
    const M0 = await mlpLinearization(model, 0, blockZeroMlpInputs(model, pool, { samples: 256, seed: 0 }));
    const through = await allCompositionScores(model, 'K', { outputMaps: [M0] });
    const direct = await allCompositionScores(model, 'K');
    const baseThrough = compositionBaseline(model, 'K', { outputMap: M0 });
    const baseDirect = compositionBaseline(model, 'K');
    const H = model.cfg.n_heads;
    for (const h of INDUCTION) {
      const fromLayer0 = Array.from({ length: H }, (_, h0) => through.get(0, h0, 1, h));
      expect(fromLayer0.indexOf(Math.max(...fromLayer0))).toBe(PREV); // measured 0.156–0.163 vs ≤ 0.130 for the others
      expect(through.get(0, PREV, 1, h)).toBeGreaterThan(baseThrough.mean + 10 * baseThrough.std); // baseline 0.089 ± 0.003
      expect(Math.abs(direct.get(0, PREV, 1, h) - baseDirect.mean)).toBeLessThan(4 * baseDirect.std); // measured 0.086–0.089 vs 0.088 ± 0.002
    }
    // The weight-derived points stand in for real ones: linearising at block 0's resid_mid on repeated tokens gives the
    // same scores within 0.01 (measured ≤ 0.001).
    const repeated = Array.from({ length: 8 }, (_, i) => { const r = randomTokens(new Rng(100 + i), pool, 20); return [50256, ...r, ...r]; });
    const [, cache] = await model.runWithCache(repeated, { namesFilter: (n) => n === 'blocks.0.hook_resid_mid' });
    const mid = cache.get('blocks.0.hook_resid_mid'); // [batch, pos, d_model]
    const d = model.cfg.d_model;
    const fromActs = await allCompositionScores(model, 'K', { outputMaps: [await mlpLinearization(model, 0, new Tensor(mid.data, [mid.data.length / d, d]))] });
    for (let h0 = 0; h0 < H; h0++) for (const h of INDUCTION) expect(Math.abs(fromActs.get(0, h0, 1, h) - through.get(0, h0, 1, h))).toBeLessThan(0.01);
  }, 120_000);

  it("the forward pass agrees: layer 1's keys get the previous token through block 0's MLP, not from L0H2 directly", async () => {
    const split = await HookedTransformer.fromPretrained(DIR, { useSplitQkvInput: true });
    try {
      const pool = await seenPool(DIR);
      const rng = new Rng(3);
      const span = 20;
      const tokens = Array.from({ length: 24 }, () => { const r = randomTokens(rng, pool, span); return [50256, ...r, ...r]; });
      const [, cache] = await split.runWithCache(tokens, { namesFilter: (n) => n === 'blocks.0.attn.hook_result' || n === 'blocks.0.hook_mlp_out' });
      const result = cache.get('blocks.0.attn.hook_result'); // [batch, pos, head, d_model]
      const mlpOut = cache.get('blocks.0.hook_mlp_out'); // [batch, pos, d_model]
      const [B, P, H, D] = result.shape;
      /** Replaces one write into blocks.1.hook_k_input [batch, pos, head, d_model] by its mean over batch and positions. */
      const meanOutOfKeys = (write: (i: number, k: number) => number) => (k_in: Tensor) => {
        const mean = new Float64Array(D);
        for (let i = 0; i < B * P; i++) for (let k = 0; k < D; k++) mean[k] += write(i, k) / (B * P);
        const out = new Float32Array(k_in.data);
        for (let i = 0; i < B * P; i++) for (let h = 0; h < H; h++) for (let k = 0; k < D; k++) out[(i * H + h) * D + k] -= write(i, k) - mean[k];
        return new Tensor(out, k_in.shape);
      };
      const secondCopyLoss = async (fn?: (t: Tensor) => Tensor) => {
        const per = (await split.runWithHooks(tokens, { fwdHooks: fn ? [['blocks.1.hook_k_input', fn]] : [], returnType: 'loss', lossPerToken: true })) as Tensor;
        return per.slice(1, span + 1).mean().item(); // [batch, pos − 1] → predictions of the second copy
      };
      const clean = await secondCopyLoss();
      const noDirect = await secondCopyLoss(meanOutOfKeys((i, k) => result.data[(i * H + PREV) * D + k]));
      const noMlp = await secondCopyLoss(meanOutOfKeys((i, k) => mlpOut.data[i * D + k]));
      expect(clean).toBeLessThan(1); // measured 0.29
      expect(noDirect - clean).toBeLessThan(0.2); // measured +0.01
      expect(noMlp - clean).toBeGreaterThan(5); // measured +9.7
    } finally {
      await split.dispose();
    }
  }, 120_000);
});
