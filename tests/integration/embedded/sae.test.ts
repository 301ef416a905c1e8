/**
 * The SAE that ships with the embedded model (models/embedded/saes/, written by `npm run train:sae:embedded`) has the
 * figures its card gives and issue 22 asks for, measured here through the public API (`lensboard`'s exports) on the
 * held-out tail of Tiny Shakespeare: CE loss recovered ≥ 0.9, explained variance ≥ 0.8, L0 ≤ 32, dead features
 * ≤ 10 %; every shipped SAE together ≤ 8 MB; its dashboards cover every feature, and the card's features are the
 * ones its rule picks from them.
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  corpusContexts, DEFAULT_CORPUS, evaluateSae, HookedTransformer, loadFeatureDashboards, Sae, saeHook, type FeatureDashboards, type SaeEvalResult,
} from '../../../hooks/index.ts';
import { cardFeatures, SHIPPED_SAE, SHIPPED_SAE_TARGETS } from '../../../training/saeEmbedded.ts';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const MODEL_DIR = join(ROOT, 'models', 'embedded');
const SAES_DIR = join(MODEL_DIR, 'saes');
const SAE_DIR = join(SAES_DIR, SHIPPED_SAE.name);
/** 80 contexts of 127 positions (evaluation stops after whole batches of 16 contexts). */
const EVAL_TOKENS = 80 * 127;

let model: HookedTransformer;
let sae: Sae;
let heldOut: SaeEvalResult;
let dashboards: FeatureDashboards;
let training: { heldOut: Omit<SaeEvalResult, 'featureDensity'>; tokens: number };

beforeAll(async () => {
  training = JSON.parse(readFileSync(join(SAE_DIR, 'training.json'), 'utf8'));
  model = await HookedTransformer.fromPretrained(MODEL_DIR, { threads: 1 });
  sae = await Sae.fromPretrained(SAE_DIR);
  // The first 10,160 positions of the held-out tail (the card's figures are over all of it: ~36k, 1–3 minutes here).
  heldOut = await evaluateSae(model, sae, corpusContexts(DEFAULT_CORPUS, model.tokenizer!, { contextSize: sae.cfg.context_size ?? 128, split: 'heldOut' }), { maxTokens: EVAL_TOKENS, batchSize: 16 });
  dashboards = (await loadFeatureDashboards(SAE_DIR))!;
}, 600_000);
afterAll(async () => {
  await sae?.dispose();
  await model?.dispose();
});

function filesUnder(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? filesUnder(join(dir, e.name)) : [join(dir, e.name)]));
}

describe('the shipped SAE of the embedded model', () => {
  it('is a TopK SAE of the middle block\'s residual stream that fits the model', () => {
    expect(sae.cfg.architecture).toBe('topk');
    expect(sae.cfg.hook_name).toBe('blocks.1.hook_resid_post');
    expect(sae.cfg.d_in).toBe(model.cfg.d_model);
    expect(sae.cfg.d_sae).toBe(SHIPPED_SAE.dSae);
    expect(sae.cfg.k).toBe(SHIPPED_SAE.k);
  });

  it('meets the card\'s targets on held-out text, near the card\'s figures over the whole held-out tail', () => {
    expect(heldOut.tokens).toBe(EVAL_TOKENS);
    expect(heldOut.ceLossRecovered).toBeGreaterThanOrEqual(SHIPPED_SAE_TARGETS.ceLossRecovered);
    expect(heldOut.explainedVariance).toBeGreaterThanOrEqual(SHIPPED_SAE_TARGETS.explainedVariance);
    expect(heldOut.l0).toBeLessThanOrEqual(SHIPPED_SAE_TARGETS.maxL0);
    expect(heldOut.deadFraction).toBeLessThanOrEqual(SHIPPED_SAE_TARGETS.maxDeadFraction);
    // The spliced run is far below zero-ablated and within 5 % of that gap of clean. Not necessarily above clean: on the
    // embedded model v4, whose text loss is high (6.7 nats here), the spliced run is slightly *below* it (whole tail:
    // 6.650 against 6.730, zero-ablated 13.614), so CE loss recovered is above 1 (1.012).
    expect(heldOut.ceLossSpliced).toBeLessThan(heldOut.ceLossZeroAblated);
    expect(Math.abs(heldOut.ceLossSpliced - heldOut.ceLossClean)).toBeLessThan(0.05 * (heldOut.ceLossZeroAblated - heldOut.ceLossClean));
    // The card (written from training.json) over the whole tail: the same targets, and close to this part of it.
    const whole = training.heldOut;
    expect(whole.tokens).toBeGreaterThan(3 * EVAL_TOKENS);
    expect(whole.ceLossRecovered).toBeGreaterThanOrEqual(SHIPPED_SAE_TARGETS.ceLossRecovered);
    expect(whole.explainedVariance).toBeGreaterThanOrEqual(SHIPPED_SAE_TARGETS.explainedVariance);
    expect(whole.l0).toBeLessThanOrEqual(SHIPPED_SAE_TARGETS.maxL0);
    expect(whole.deadFraction).toBeLessThanOrEqual(SHIPPED_SAE_TARGETS.maxDeadFraction);
    expect(Math.abs(heldOut.ceLossRecovered - whole.ceLossRecovered)).toBeLessThan(0.02);
    expect(Math.abs(heldOut.explainedVariance - whole.explainedVariance)).toBeLessThan(0.03);
    const card = readFileSync(join(SAE_DIR, 'README.md'), 'utf8');
    expect(card).toContain(`| CE loss recovered | ${whole.ceLossRecovered.toFixed(4)} |`);
    expect(card).toContain(`| explained variance | ${whole.explainedVariance.toFixed(4)} |`);
    expect(card).toContain(`| L0 (features active per token) | ${whole.l0.toFixed(2)} |`);
    expect(card).toContain(`| dead features (never fire) | ${(100 * whole.deadFraction).toFixed(1)} % |`);
  });

  it('spliced in with its error term it leaves the model\'s logits as they are; its acts are k-sparse', async () => {
    const prompt = 'ROMEO:\nBut soft, what light through yonder window breaks?';
    const clean = await model.forward(prompt);
    const [spliced, cache] = await model.runWithCacheWithSaes(prompt, { saes: sae, useErrorTerm: true });
    expect(spliced.sub(clean).abs().max().item()).toBeLessThan(1e-4);
    const acts = cache.get(saeHook('blocks.1.hook_resid_post', 'hook_sae_acts_post')); // [1, pos, d_sae]
    const pos = acts.shape[1];
    for (let p = 0; p < pos; p++) {
      const row = acts.data.subarray(p * sae.cfg.d_sae, (p + 1) * sae.cfg.d_sae);
      expect(row.filter((v) => v > 0).length).toBeLessThanOrEqual(SHIPPED_SAE.k);
    }
  });

  it('every shipped SAE together, dashboards and cards included, is at most 8 MB', () => {
    const bytes = filesUnder(SAES_DIR).reduce((s, f) => s + statSync(f).size, 0);
    expect(bytes).toBeLessThanOrEqual(SHIPPED_SAE_TARGETS.maxBytes);
  });

  it('has dashboards for every feature, and the card lists the features its rule finds in them', () => {
    expect(dashboards.sae.d_sae).toBe(sae.cfg.d_sae);
    expect(dashboards.features.map((f) => f.feature)).toEqual([...Array(sae.cfg.d_sae).keys()]);
    const live = dashboards.features.filter((f) => f.density > 0);
    expect(live.every((f) => f.top.length > 0 && f.maxAct > 0)).toBe(true);
    const picked = cardFeatures(dashboards);
    expect(picked.length).toBeGreaterThanOrEqual(5);
    const card = readFileSync(join(SAE_DIR, 'README.md'), 'utf8');
    const listed = [...card.matchAll(/^\| (\d+) \| /gm)].map((m) => Number(m[1]));
    expect(listed).toEqual(picked.map((f) => f.feature));
  });
});
