/** Activation patching (TL's get_act_patch_*), batched: clean patches give the normalised metric 1, corrupted ones 0, and every entry equals a JS-hook patch (1e-5). */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ActivationCache } from '../../../hooks/ActivationCache.ts';
import { ioiMetric, isPositionedMetric, logitDiff, logitDiffMetric, normalisedMetric } from '../../../hooks/analysis/metrics.ts';
import {
  genericActivationPatch,
  getActPatchAttnHeadAllPosEvery,
  getActPatchAttnHeadByPosEvery,
  getActPatchAttnHeadOutAllPos,
  getActPatchAttnHeadOutByPos,
  getActPatchAttnHeadPatternDestSrcPos,
  getActPatchBlockEvery,
  getActPatchResidPre,
} from '../../../hooks/analysis/patching.ts';
import { HookedTransformer } from '../../../hooks/HookedTransformer.ts';
import type { HookName } from '../../../hooks/hookPoints.ts';
import type { Tensor } from '../../../hooks/tensor.ts';
import { cloneWeights, mapIndexed, tinyConfig, tinyWeights, tokenBatch } from '../engine/helpers.ts';

const ATOL = 1e-5;
const cfg = tinyConfig({ n_layers: 2, d_model: 16, n_heads: 4, d_vocab: 60 });
const original = tinyWeights(cfg, 55);
const clean = tokenBatch(2, 6, cfg.d_vocab, 12);
const DIFF_POS = 2;
// corrupted = clean with one token changed at DIFF_POS
const corrupted = clean.map((row) => row.map((t, p) => (p === DIFF_POS ? (t + 17) % cfg.d_vocab : t)));
const answers = { correct: [5, 40], incorrect: [33, 8] };

let model: HookedTransformer;
let cleanCache: ActivationCache;
let corruptedCache: ActivationCache;
let metric: (logits: Tensor) => number;
let rawMetric: (logits: Tensor) => number;

beforeAll(async () => {
  model = await HookedTransformer.fromWeights(cfg, cloneWeights(original), { threads: 1 });
  const [cleanLogits, cc] = await model.runWithCache(clean);
  const [corruptLogits, kc] = await model.runWithCache(corrupted);
  cleanCache = cc;
  corruptedCache = kc;
  rawMetric = (l) => logitDiff(l, answers);
  metric = normalisedMetric(rawMetric, rawMetric(cleanLogits), rawMetric(corruptLogits));
});
afterAll(async () => {
  await model?.dispose();
});

/** The normalised metric of the corrupted run with a JS hook copying the clean activation where `sel(idx)` holds. */
async function hookPatch(hook: HookName, sel: (idx: number[]) => boolean): Promise<number> {
  const src = cleanCache.get(hook);
  const fn = (a: Tensor) => mapIndexed(a, (v, idx) => (sel(idx) ? src.get(...idx) : v));
  return metric(await model.runWithHooks(corrupted, { fwdHooks: [[hook, fn]] }));
}

describe('normalised metric at the extremes', () => {
  it('resid_pre of layer 0: 1 at the differing position (patching it gives the clean run), 0 elsewhere', async () => {
    const r = await getActPatchResidPre(model, corrupted, cleanCache, metric);
    expect(r.shape).toEqual([2, 6]);
    for (let p = 0; p < 6; p++) expect(r.get(0, p), `layer 0 pos ${p}`).toBeCloseTo(p === DIFF_POS ? 1 : 0, 4);
    // positions before the change never differ: 0 at every layer
    for (let l = 0; l < 2; l++) for (let p = 0; p < DIFF_POS; p++) expect(Math.abs(r.get(l, p))).toBeLessThanOrEqual(1e-4);
  });

  it('patching the corrupted activations into the corrupted run gives 0 everywhere', async () => {
    const r = await getActPatchAttnHeadAllPosEvery(model, corrupted, corruptedCache, metric);
    expect(r.shape).toEqual([5, 2, 4]);
    expect(r.abs().max().item()).toBeLessThanOrEqual(1e-4);
    const b = await getActPatchBlockEvery(model, corrupted, corruptedCache, metric);
    expect(b.shape).toEqual([3, 2, 6]);
    expect(b.abs().max().item()).toBeLessThanOrEqual(1e-4);
  });

  it('patching the clean activations into the clean run gives 1 everywhere', async () => {
    const r = await getActPatchAttnHeadOutAllPos(model, clean, cleanCache, metric);
    expect(r.sub(1).abs().max().item()).toBeLessThanOrEqual(1e-4);
  });
});

describe('every entry = the same patch done by a JS hook (1e-5)', () => {
  it('head output by position, all positions, and block outputs', async () => {
    const byPos = await getActPatchAttnHeadOutByPos(model, corrupted, cleanCache, metric, { chunkSize: 7 });
    expect(byPos.shape).toEqual([2, 6, 4]);
    for (const [l, p, h] of [[0, 2, 1], [1, 5, 3], [1, 4, 0]]) {
      const seq = await hookPatch(`blocks.${l}.attn.hook_z` as HookName, ([, q, hh]) => q === p && hh === h);
      expect(Math.abs(byPos.get(l, p, h) - seq), `L${l} p${p} H${h}`).toBeLessThanOrEqual(ATOL);
    }
    const allPos = await getActPatchAttnHeadOutAllPos(model, corrupted, cleanCache, metric);
    const seq = await hookPatch('blocks.1.attn.hook_z', ([, , hh]) => hh === 2);
    expect(Math.abs(allPos.get(1, 2) - seq)).toBeLessThanOrEqual(ATOL);
    const block = await getActPatchBlockEvery(model, corrupted, cleanCache, metric);
    expect(Math.abs(block.get(2, 1, 3) - (await hookPatch('blocks.1.hook_mlp_out', ([, q]) => q === 3)))).toBeLessThanOrEqual(ATOL);
    expect(Math.abs(block.get(1, 0, 4) - (await hookPatch('blocks.0.hook_attn_out', ([, q]) => q === 4)))).toBeLessThanOrEqual(ATOL);
  });

  it('q / k / v / pattern (by position "every"; pattern by dest and src)', async () => {
    const every = await getActPatchAttnHeadByPosEvery(model, corrupted, cleanCache, metric);
    expect(every.shape).toEqual([5, 2, 6, 4]);
    const k = await hookPatch('blocks.1.attn.hook_k', ([, q, h]) => q === 2 && h === 1);
    expect(Math.abs(every.get(2, 1, 2, 1) - k)).toBeLessThanOrEqual(ATOL);
    // pattern row: [batch, head, dest, src]; "every" stores it at [4, layer, dest_pos, head]
    const row = await hookPatch('blocks.1.attn.hook_pattern', ([, h, q]) => h === 3 && q === 5);
    expect(Math.abs(every.get(4, 1, 5, 3) - row)).toBeLessThanOrEqual(ATOL);
    const ds = await getActPatchAttnHeadPatternDestSrcPos(model, corrupted, cleanCache, metric);
    expect(ds.shape).toEqual([2, 4, 6, 6]);
    const one = await hookPatch('blocks.0.attn.hook_pattern', ([, h, q, s]) => h === 0 && q === 4 && s === 2);
    expect(Math.abs(ds.get(0, 0, 4, 2) - one)).toBeLessThanOrEqual(ATOL);
  });

  it('genericActivationPatch with a custom activation and axes; errors name the problem', async () => {
    const post = await genericActivationPatch(model, corrupted, cleanCache, metric, { activationName: 'post', indexAxisNames: ['layer', 'pos'] });
    expect(Math.abs(post.get(0, 3) - (await hookPatch('blocks.0.mlp.hook_post', ([, q]) => q === 3)))).toBeLessThanOrEqual(ATOL);
    await expect(genericActivationPatch(model, corrupted, cleanCache, metric, { activationName: 'z', indexAxisNames: ['pos', 'layer'] })).rejects.toThrow(/first index axis must be 'layer'/);
    await expect(genericActivationPatch(model, corrupted, cleanCache, metric, { activationName: 'resid_pre', indexAxisNames: ['layer', 'head'] })).rejects.toThrow(/no 'head' dimension/);
    const [, partial] = await model.runWithCache(clean, { namesFilter: ['blocks.0.hook_resid_pre'] });
    await expect(getActPatchResidPre(model, corrupted, partial, metric)).rejects.toThrow(/clean cache has no 'blocks.1.hook_resid_pre'/);
    await expect(getActPatchResidPre(model, tokenBatch(3, 6, 60), cleanCache, metric)).rejects.toThrow(/batch dim of 3/);
  });
});

describe('positioned metrics (logitDiffMetric, ioiMetric): batched runs compute logits only where they read', () => {
  it('ioiMetric = normalisedMetric(logitDiff) on full logits; patching with it = with the plain closure (1e-5), reading [batch, 1, d_vocab] logits', async () => {
    const [cleanLogits] = await model.runWithCache(clean);
    const corruptLogits = await model.forward(corrupted);
    const pm = ioiMetric({ ...answers, clean: rawMetric(cleanLogits), corrupted: rawMetric(corruptLogits) });
    expect(isPositionedMetric(pm)).toBe(true);
    expect(isPositionedMetric(metric)).toBe(false);
    expect(Math.abs(pm(cleanLogits) - 1)).toBeLessThan(1e-6);
    expect(Math.abs(pm(corruptLogits))).toBeLessThan(1e-6);
    const shapes: string[] = [];
    const spy = Object.assign((l: Tensor) => pm(l), {
      positions: pm.positions,
      atPositions: (l: Tensor) => { shapes.push(l.shape.join('x')); return pm.atPositions(l); },
    });
    const plain = await getActPatchResidPre(model, corrupted, cleanCache, metric);
    const fast = await getActPatchResidPre(model, corrupted, cleanCache, spy);
    expect(fast.shape).toEqual(plain.shape);
    for (let i = 0; i < plain.data.length; i++) expect(Math.abs(fast.data[i] - plain.data[i])).toBeLessThanOrEqual(ATOL);
    expect(shapes.length).toBe(plain.data.length);
    expect(new Set(shapes)).toEqual(new Set([`2x1x${cfg.d_vocab}`]));
  });

  it('logitDiffMetric reads the given positions per prompt; out-of-range positions are a clear error', async () => {
    const logits = await model.forward(clean);
    const m = logitDiffMetric({ ...answers, positions: [1, -2] });
    expect(m(logits)).toBeCloseTo(logitDiff(logits, { ...answers, positions: [1, -2] }), 6);
    const r = await getActPatchResidPre(model, corrupted, cleanCache, m);
    const want = await getActPatchResidPre(model, corrupted, cleanCache, (l) => logitDiff(l, { ...answers, positions: [1, 4] }));
    for (let i = 0; i < want.data.length; i++) expect(Math.abs(r.data[i] - want.data[i])).toBeLessThanOrEqual(ATOL);
    await expect(getActPatchResidPre(model, corrupted, cleanCache, logitDiffMetric({ ...answers, positions: 6 }))).rejects.toThrow(/position 6 of prompt 0 is out of range for 6 positions/);
  });
});
