/**
 * The shipped embedded model (models/embedded, v4) has the behaviour its model card claims, measured with the workbench
 * API (HookedTransformer on the exported directory, default weight processing). Issue 19's "done when" targets are
 * asserted here, as the issue words them: induction on random tokens drawn uniformly from GPT-2's whole vocabulary
 * (ids 0–50255, as TransformerLens's generate_repeated_tokens draws them), on five repeated held-out Shakespeare
 * sentences, and TransformerLens's own 8 IOI prompts (verbatim below); and the circuit read from the weights (the
 * card's "From the weights"): the layer-1 heads read the previous-token head's output after block 0's MLP.
 */
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HookedTransformer } from '../../../hooks/HookedTransformer.ts';
import { detectHead } from '../../../hooks/analysis/headDetector.ts';
import {
  allCompositionScores, blockZeroMlpInputs, compositionBaseline, copyingScores, effectiveEmbedding, embeddingTokenSet, mlpLinearization,
} from '../../../hooks/circuits/index.ts';
import { randomTokens } from '../../../hooks/datasets/induction.ts';
import { Rng } from '../../../hooks/random.ts';
import { Tensor } from '../../../hooks/tensor.ts';
import { Gpt2Tokenizer } from '../../../hooks/tokenizer.ts';
import {
  ablationOf, ioiMetrics, logitLensAccuracy, repeatedRows, repeatedRowStats, repeatedSentenceRows, wholeVocabulary, type RepeatedRowStats,
} from '../../../training/circuits.ts';
import { consecutiveWindows } from '../../../training/data/batches.ts';
import { IOI_HELDOUT_NAMES, IOI_TRAIN_NAMES } from '../../../hooks/datasets/ioi.ts';
import { readTokenizedText } from '../../../training/data/text.ts';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const DIR = join(ROOT, 'models', 'embedded');

/** TransformerLens's IOI demo prompts (Main Demo / Exploratory Analysis Demo), verbatim. */
const TL_IOI = [
  ['When John and Mary went to the shops, John gave the bag to', ' Mary', ' John'],
  ['When John and Mary went to the shops, Mary gave the bag to', ' John', ' Mary'],
  ['When Tom and James went to the park, James gave the ball to', ' Tom', ' James'],
  ['When Tom and James went to the park, Tom gave the ball to', ' James', ' Tom'],
  ['When Dan and Sid went to the shops, Sid gave an apple to', ' Dan', ' Sid'],
  ['When Dan and Sid went to the shops, Dan gave an apple to', ' Sid', ' Dan'],
  ['After Martin and Amy went to the park, Amy gave a drink to', ' Martin', ' Amy'],
  ['After Martin and Amy went to the park, Martin gave a drink to', ' Amy', ' Martin'],
] as const;

let model: HookedTransformer;
/** Issue 19's 50 rows [BOS, r, r], r uniform over ids 0–50255, spans 20–40 (seed 0: the model card's rows). */
let vocab: { rows: number[][]; spans: number[] };
let clean: RepeatedRowStats;

/** The best head of a [layer][head] grid among layers passing `layers`. */
const best = (grid: number[][], layers: (l: number) => boolean) =>
  grid.flatMap((hs, l) => hs.map((v, h) => ({ v, l, h }))).filter(({ l }) => layers(l)).sort((a, b) => b.v - a.v)[0];
const grid = (t: Tensor) => Array.from({ length: model.cfg.n_layers }, (_, l) => Array.from({ length: model.cfg.n_heads }, (_w, h) => t.get(l, h)));

beforeAll(async () => {
  model = await HookedTransformer.fromPretrained(DIR);
  vocab = repeatedRows(model.cfg.bos_token_id, wholeVocabulary(model.cfg), { n: 50, minSpan: 20, maxSpan: 40, seed: 0 });
  clean = await repeatedRowStats(model, vocab.rows, vocab.spans);
}, 240_000);
afterAll(async () => model?.dispose());

describe('embedded model (issue 19: done when)', () => {
  it('is a GPT-2 with at least 2 layers of 4 heads and the full GPT-2 vocabulary', () => {
    expect(model.cfg.n_layers).toBeGreaterThanOrEqual(2);
    expect(model.cfg.n_heads).toBeGreaterThanOrEqual(4);
    expect(model.cfg.d_vocab).toBe(50257);
    expect(vocab.rows.flat().filter((t) => t === 50256)).toHaveLength(50); // BOS only at the start: never drawn
  });

  it('copies repeated random tokens from the whole vocabulary: second-copy loss ≥ 4 nats below the first (50 sequences, spans 20–40)', () => {
    expect(clean.first - clean.second).toBeGreaterThanOrEqual(4); // measured 13.53 → 1.33 (12.21)
  });

  it("TransformerLens's head detector on those rows: induction ≥ 0.3 in layer ≥ 1 (≥ 0.6 on the second copy's stripe), previous-token ≥ 0.5 below it", async () => {
    const induction = best(grid(await detectHead(model, vocab.rows, 'induction_head')), (l) => l >= 1);
    expect(induction.v).toBeGreaterThanOrEqual(0.3); // measured 0.410 (L1H3; L1H0–L1H2 0.404–0.409)
    expect(best(clean.secondCopyStripe, (l) => l >= 1).v).toBeGreaterThanOrEqual(0.6); // measured 0.827 (L1H3; all four 0.81–0.83)
    const previous = best(grid(await detectHead(model, vocab.rows, 'previous_token_head')), (l) => l < induction.l);
    expect(previous.v).toBeGreaterThanOrEqual(0.5); // measured 0.640 (L0H3)
    expect(`L${previous.l}H${previous.h}`).toBe('L0H3'); // the model card's previous-token head
    expect(induction.l).toBe(1); // the card's induction heads are L1H0–L1H3
  }, 120_000);

  it('zero-ablating the induction heads (second-copy stripe ≥ 0.3) raises second-copy loss by ≥ 2 nats', async () => {
    const heads: [number, number][] = [];
    clean.secondCopyStripe.forEach((hs, l) => hs.forEach((v, h) => { if (l >= 1 && v >= 0.3) heads.push([l, h]); }));
    expect(heads.length).toBeGreaterThan(0);
    const ablated = await repeatedRowStats(model, vocab.rows, vocab.spans, ablationOf(heads));
    expect(ablated.second - clean.second).toBeGreaterThanOrEqual(2); // measured 1.33 → 13.78 (+12.45; L1H0–L1H3)
  }, 120_000);

  it('five held-out Shakespeare sentences, each repeated: second copy ≥ 2 nats lower, induction heads ≥ 0.4 on the stripe', async () => {
    const s = repeatedSentenceRows(model);
    for (const L of s.spans) { expect(L).toBeGreaterThanOrEqual(15); expect(L).toBeLessThanOrEqual(30); }
    const text = await repeatedRowStats(model, s.rows, s.spans);
    expect(text.first - text.second).toBeGreaterThanOrEqual(2); // measured 8.60 → 1.71 (6.89)
    expect(best(text.secondCopyStripe, (l) => l >= 1).v).toBeGreaterThanOrEqual(0.4); // measured 0.75–0.78 (L1H0–L1H3)
  }, 120_000);

  it("TransformerLens's 8 IOI prompts: all 8 right, mean logit difference ≥ 3", async () => {
    const diffs: number[] = [];
    for (const [prompt, correct, incorrect] of TL_IOI) {
      const logits = (await model.forward(prompt)) as Tensor; // [1, pos, d_vocab]
      const [, P, V] = logits.shape;
      const at = (t: string) => logits.data[(P - 1) * V + model.toSingleToken(t)];
      diffs.push(at(correct) - at(incorrect));
    }
    for (const d of diffs) expect(d).toBeGreaterThan(0); // smallest measured 4.23 ("After Martin and Amy …, Amy gave a drink to")
    expect(diffs.reduce((a, b) => a + b, 0) / diffs.length).toBeGreaterThanOrEqual(3); // measured 9.68
  }, 120_000);

  it('does IOI on held-out names: accuracy ≥ 90 %, mean logit diff (IO − S) ≥ 2.0, and swapping the repeated name flips its sign', async () => {
    const m = await ioiMetrics(model, IOI_HELDOUT_NAMES, { n: 100 });
    expect(m.accuracy).toBeGreaterThanOrEqual(0.9); // measured 0.98
    expect(m.meanLogitDiff).toBeGreaterThanOrEqual(2.0); // measured 5.21
    expect(m.swappedMeanLogitDiff).toBeLessThan(-2.0);
    expect(m.flipRate).toBeGreaterThanOrEqual(0.8); // measured 0.96
  }, 120_000);

  it('does IOI on training names: logit diff > 4, accuracy ≥ 90 %', async () => {
    const m = await ioiMetrics(model, IOI_TRAIN_NAMES, { n: 50, seed: 5 });
    expect(m.meanLogitDiff).toBeGreaterThan(4); // measured 8.57
    expect(m.accuracy).toBeGreaterThanOrEqual(0.9); // measured 1.00
  }, 120_000);

  it('logit lens: top-1 accuracy on held-out Shakespeare is higher at the last layer than after the first', async () => {
    const tok = await Gpt2Tokenizer.default();
    const text = await readTokenizedText(tok, join(ROOT, 'data', 'tinyshakespeare.txt'));
    const acc = await logitLensAccuracy(model, consecutiveWindows(text.heldOut, 8, model.cfg.n_ctx - 1, [50256]));
    expect(acc).toHaveLength(model.cfg.n_layers + 1);
    expect(acc[model.cfg.n_layers]).toBeGreaterThan(acc[1]); // measured 0.087 → 0.243 → 0.268
    expect(acc[model.cfg.n_layers]).toBeGreaterThan(0.2);
  }, 120_000);
});

describe('embedded model: the induction circuit from the weights', () => {
  const INDUCTION = [0, 1, 2, 3]; // L1H0–L1H3, the card's induction heads
  const PREV = 3; // L0H3, the card's previous-token head
  /** 1,024 distinct tokens drawn from the whole vocabulary (seed 0): what the effective embedding is read over. */
  const tokenSet = () => embeddingTokenSet(model);

  it('read through the effective embedding (W_E + mean W_pos through block 0’s MLP), the induction heads copy: scores > 0.7', async () => {
    const s = await copyingScores(model, { embedding: await effectiveEmbedding(model, tokenSet()) });
    for (const h of INDUCTION) expect(s.get(1, h)).toBeGreaterThan(0.7); // measured 0.995 (all four; from raw W_E 0.84–0.88)
  }, 120_000);

  it("K-composition past block 0's MLP: every induction head's highest score is with L0H3, > 10 std above the baseline; TransformerLens's direct score is not above the baseline", async () => {
    const M0 = await mlpLinearization(model, 0, blockZeroMlpInputs(model, tokenSet(), { samples: 256, seed: 0 }));
    const through = await allCompositionScores(model, 'K', { outputMaps: [M0] });
    const direct = await allCompositionScores(model, 'K');
    const baseThrough = compositionBaseline(model, 'K', { outputMap: M0 });
    const baseDirect = compositionBaseline(model, 'K');
    const H = model.cfg.n_heads;
    for (const h of INDUCTION) {
      const fromLayer0 = Array.from({ length: H }, (_, h0) => through.get(0, h0, 1, h));
      expect(fromLayer0.indexOf(Math.max(...fromLayer0))).toBe(PREV); // measured 0.165–0.169 vs ≤ 0.146 for the others (L0H2 0.142–0.146)
      expect(through.get(0, PREV, 1, h)).toBeGreaterThan(baseThrough.mean + 10 * baseThrough.std); // baseline 0.089 ± 0.003
      // TransformerLens's score from the raw weights misses it: below the random baseline (it is not a K-composition of
      // L0H3's direct output; the forward pass below confirms the path runs through MLP0)
      expect(direct.get(0, PREV, 1, h)).toBeLessThan(baseDirect.mean); // measured 0.071–0.074 vs 0.088 ± 0.002
    }
    // The weight-derived points stand in for real ones: linearising at block 0's resid_mid on repeated tokens gives the
    // same scores within 0.01 (measured ≤ 0.001).
    const repeated = Array.from({ length: 8 }, (_, i) => { const r = randomTokens(new Rng(100 + i), wholeVocabulary(model.cfg), 20); return [50256, ...r, ...r]; });
    const [, cache] = await model.runWithCache(repeated, { namesFilter: (n) => n === 'blocks.0.hook_resid_mid' });
    const mid = cache.get('blocks.0.hook_resid_mid'); // [batch, pos, d_model]
    const d = model.cfg.d_model;
    const fromActs = await allCompositionScores(model, 'K', { outputMaps: [await mlpLinearization(model, 0, new Tensor(mid.data, [mid.data.length / d, d]))] });
    for (let h0 = 0; h0 < H; h0++) for (const h of INDUCTION) expect(Math.abs(fromActs.get(0, h0, 1, h) - through.get(0, h0, 1, h))).toBeLessThan(0.01);
  }, 120_000);

  it("the forward pass agrees: layer 1's keys get the previous token through block 0's MLP, not from L0H3 directly", async () => {
    const split = await HookedTransformer.fromPretrained(DIR, { useSplitQkvInput: true });
    try {
      const pool = wholeVocabulary(split.cfg);
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
      expect(clean).toBeLessThan(1.5); // measured 0.96 (first copy ~13.5)
      expect(noDirect - clean).toBeLessThan(0.2); // measured +0.04
      expect(noMlp - clean).toBeGreaterThan(5); // measured +11.83
    } finally {
      await split.dispose();
    }
  }, 120_000);
});
