/**
 * Attribution patching and input saliency on a tiny random model. Attribution patching is the first-order
 * approximation of activation patching: with a "clean" cache a small step away from the corrupted run,
 * each getAttrPatch* result equals its getActPatch* counterpart up to second order (same shape, same
 * units); and each entry is metric(corrupted) + Σ (clean − corrupted) · gradient with the gradient from
 * the reference backward pass. Integrated gradients are complete (their scores add up to
 * metric(input) − metric(baseline) within 1 % at 64 steps) and match a path integral of reference gradients.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ActivationCache } from '../../../hooks/ActivationCache.ts';
import * as attr from '../../../hooks/analysis/attribution.ts';
import { logitDiffMetric, normalisedMetric, tokenLogprobMetric } from '../../../hooks/analysis/metrics.ts';
import * as act from '../../../hooks/analysis/patching.ts';
import { inputSaliency } from '../../../hooks/analysis/saliency.ts';
import { HookedTransformer } from '../../../hooks/HookedTransformer.ts';
import { getActName, type CacheKey, type HookName } from '../../../hooks/hookPoints.ts';
import { Rng } from '../../../hooks/random.ts';
import { referenceBackward } from '../../../hooks/referenceBackward.ts';
import { Tensor } from '../../../hooks/tensor.ts';
import { cloneWeights, tinyConfig, tinyWeights, tokenBatch } from '../engine/helpers.ts';

const cfg = tinyConfig({ n_layers: 2, d_model: 16, n_heads: 4, d_vocab: 60 });
const original = tinyWeights(cfg, 61);
const corrupted = tokenBatch(2, 6, cfg.d_vocab, 62);
const ld = logitDiffMetric({ correct: [3, 7], incorrect: [9, 1] });
let model: HookedTransformer;
let corruptedCache: ActivationCache;

beforeAll(async () => {
  model = await HookedTransformer.fromWeights(cfg, cloneWeights(original), { threads: 1 });
  [, corruptedCache] = await model.runWithCache(corrupted);
});
afterAll(async () => {
  await model?.dispose();
});

/** The corrupted run's activations, each moved by `eps` · N(0, 1) noise: a "clean" cache one small step away. */
function nearbyCache(eps: number): ActivationCache {
  const rng = new Rng(5);
  const store = new Map<CacheKey, Tensor>();
  for (const [k, v] of corruptedCache.entries()) store.set(k, v.add(new Tensor(Float32Array.from(v.data, () => eps * rng.normal()), v.shape)));
  return new ActivationCache(store, true, model);
}

const KINDS = [
  ['ResidPre', attr.getAttrPatchResidPre, act.getActPatchResidPre],
  ['ResidMid', attr.getAttrPatchResidMid, act.getActPatchResidMid],
  ['AttnOut', attr.getAttrPatchAttnOut, act.getActPatchAttnOut],
  ['MlpOut', attr.getAttrPatchMlpOut, act.getActPatchMlpOut],
  ['AttnHeadOutAllPos', attr.getAttrPatchAttnHeadOutAllPos, act.getActPatchAttnHeadOutAllPos],
  ['AttnHeadOutByPos', attr.getAttrPatchAttnHeadOutByPos, act.getActPatchAttnHeadOutByPos],
  ['AttnHeadQAllPos', attr.getAttrPatchAttnHeadQAllPos, act.getActPatchAttnHeadQAllPos],
  ['AttnHeadKByPos', attr.getAttrPatchAttnHeadKByPos, act.getActPatchAttnHeadKByPos],
  ['AttnHeadVByPos', attr.getAttrPatchAttnHeadVByPos, act.getActPatchAttnHeadVByPos],
  ['AttnHeadPatternAllPos', attr.getAttrPatchAttnHeadPatternAllPos, act.getActPatchAttnHeadPatternAllPos],
  ['AttnHeadPatternByPos', attr.getAttrPatchAttnHeadPatternByPos, act.getActPatchAttnHeadPatternByPos],
  ['AttnHeadPatternDestSrcPos', attr.getAttrPatchAttnHeadPatternDestSrcPos, act.getActPatchAttnHeadPatternDestSrcPos],
] as const;

describe('attribution patching = activation patching to first order', () => {
  it('every kind: same shape; the difference from activation patching is second order (a clean run a small step away)', async () => {
    const base = ld(await model.forward(corrupted));
    const metric = normalisedMetric(ld, base + 1, base); // a span of 1: values are metric changes
    const near = nearbyCache(4e-3);
    const nearer = nearbyCache(1e-3);
    for (const [label, attrFn, actFn] of KINDS) {
      const error = async (clean: ActivationCache) => {
        const a = await actFn(model, corrupted, clean, metric);
        const b = await attrFn(model, corrupted, clean, metric);
        expect(b.shape, label).toEqual(a.shape);
        const effect = a.abs().max().item();
        expect(effect, `${label}: the patches change the metric`).toBeGreaterThan(1e-5);
        return b.sub(a).abs().max().item() / effect;
      };
      const [e1, e2] = [await error(near), await error(nearer)];
      expect(e1, label).toBeLessThanOrEqual(0.03); // within 3 % of the largest effect ...
      expect(e2, label).toBeLessThanOrEqual(Math.max(e1 / 2, 3e-3)); // ... and shrinking with the step (exact to first order; 3e-3: float32's floor)
    }
  });

  it('the *Every variants stack their kinds from one backward pass', async () => {
    const clean = nearbyCache(0.1);
    const every = await attr.getAttrPatchAttnHeadByPosEvery(model, corrupted, clean, ld);
    expect(every.shape).toEqual([5, cfg.n_layers, 6, cfg.n_heads]);
    const z = await attr.getAttrPatchAttnHeadOutByPos(model, corrupted, clean, ld);
    expect(every.select(0, [0]).squeeze(0).sub(z).abs().max().item()).toBeLessThanOrEqual(1e-6);
    const pattern = await attr.getAttrPatchAttnHeadPatternByPos(model, corrupted, clean, ld); // [layer, head, dest]
    expect(every.select(0, [4]).squeeze(0).sub(pattern.permute(0, 2, 1)).abs().max().item()).toBeLessThanOrEqual(1e-6);
    const block = await attr.getAttrPatchBlockEvery(model, corrupted, clean, ld);
    expect(block.shape).toEqual([3, cfg.n_layers, 6]);
  });

  it('each entry is metric(corrupted) + Σ (clean − corrupted) · the reference backward pass\'s gradient over what it selects', async () => {
    const [, clean] = await model.runWithCache(tokenBatch(2, 6, cfg.d_vocab, 63));
    const ref = referenceBackward(cfg, original, corrupted, { seed: (l) => ld.valueAndGrad(l).gradient });
    const base = ld(ref.logits);
    const term = (hook: HookName, keep: (idx: number[]) => boolean) => {
      const c = clean.get(hook);
      const x = ref.cache.get(hook)!;
      const g = ref.grads.get(hook)!;
      let s = 0;
      const idx = new Array<number>(x.ndim).fill(0);
      for (let i = 0; i < x.data.length; i++) {
        if (keep(idx)) s += (c.data[i] - x.data[i]) * g.data[i];
        for (let a = x.ndim - 1; a >= 0; a--) {
          if (++idx[a] < x.shape[a]) break;
          idx[a] = 0;
        }
      }
      return base + s;
    };
    const residPre = await attr.getAttrPatchResidPre(model, corrupted, clean, ld); // [layer, pos]
    const zByPos = await attr.getAttrPatchAttnHeadOutByPos(model, corrupted, clean, ld); // [layer, pos, head]
    const patternRows = await attr.getAttrPatchAttnHeadPatternByPos(model, corrupted, clean, ld); // [layer, head, dest]
    const tol = 1e-4 * Math.max(1, Math.abs(base));
    for (let l = 0; l < cfg.n_layers; l++) {
      for (let p = 0; p < 6; p++) {
        expect(Math.abs(residPre.get(l, p) - term(getActName('resid_pre', l), (i) => i[1] === p))).toBeLessThanOrEqual(tol);
        for (let h = 0; h < cfg.n_heads; h++) {
          expect(Math.abs(zByPos.get(l, p, h) - term(getActName('z', l), (i) => i[1] === p && i[2] === h))).toBeLessThanOrEqual(tol);
          expect(Math.abs(patternRows.get(l, h, p) - term(getActName('pattern', l), (i) => i[1] === h && i[2] === p))).toBeLessThanOrEqual(tol);
        }
      }
    }
  });

  it('a corrupted cache with gradients is reused; a metric without a gradient or a cache without the hook is a clear error', async () => {
    const clean = nearbyCache(0.1);
    const names = Array.from({ length: cfg.n_layers }, (_, l) => getActName('z', l));
    const [, withGrads] = await model.runWithCache(corrupted, { returnType: 'none', inclBwd: true, backwardFrom: ld, namesFilter: names });
    const reused = await attr.getAttrPatchAttnHeadOutAllPos(model, corrupted, clean, ld, { corruptedCache: withGrads });
    expect(reused.sub(await attr.getAttrPatchAttnHeadOutAllPos(model, corrupted, clean, ld)).abs().max().item()).toBeLessThanOrEqual(1e-6);
    await expect(attr.getAttrPatchAttnHeadOutAllPos(model, corrupted, clean, ((l: Tensor) => l.data[0]) as never)).rejects.toThrow(/has no gradient/);
    const [, partial] = await model.runWithCache(corrupted, { namesFilter: ['hook_embed'] });
    await expect(attr.getAttrPatchResidPre(model, corrupted, partial, ld)).rejects.toThrow(/the clean cache has no 'blocks.0.hook_resid_pre'/);
  });
});

describe('input saliency', () => {
  it('gradient × input = hook_embed ⊙ its gradient, summed per token', async () => {
    const out = await inputSaliency(model, corrupted, ld, { method: 'grad_x_input' });
    const [, cache] = await model.runWithCache(corrupted, { inclBwd: true, backwardFrom: ld, namesFilter: ['hook_embed'] });
    const expected = cache.get('hook_embed').mul(cache.get('hook_embed_grad')).sum(-1);
    expect(out.scores.shape).toEqual([2, 6]);
    expect(out.scores.sub(expected).abs().max().item()).toBeLessThanOrEqual(1e-6);
    expect(out.value).toBeCloseTo(ld(await model.forward(corrupted)), 5);
  });

  it('integrated gradients are complete within 1 % at 64 steps (zero baseline, a token baseline, a padded batch)', async () => {
    const padded = [[5, 17, 3, 44, 59, 59], [9, 30, 2, 8, 11, 12]];
    const attentionMask = [[1, 1, 1, 1, 0, 0], [1, 1, 1, 1, 1, 1]];
    const cases = [
      { input: corrupted, metric: ld, opts: {} },
      { input: corrupted, metric: tokenLogprobMetric({ token: [4, 5], positions: [2, -1] }), opts: { baseline: 0 } },
      { input: padded, metric: logitDiffMetric({ correct: 3, incorrect: 9, positions: [3, 5] }), opts: { attentionMask, rowsPerPass: 10 } },
    ];
    for (const { input, metric, opts } of cases) {
      const ig = await inputSaliency(model, input, metric, { method: 'integrated_gradients', steps: 64, ...opts });
      const total = ig.scores.sum().item();
      const change = ig.value - ig.baselineValue!;
      expect(Math.abs(change)).toBeGreaterThan(0.1);
      expect(Math.abs(total - change)).toBeLessThanOrEqual(0.01 * Math.abs(change));
    }
  });

  it('integrated gradients = the midpoint rule over reference gradients along the path', async () => {
    const steps = 8;
    const ig = await inputSaliency(model, corrupted, ld, { method: 'integrated_gradients', steps });
    const embed = referenceBackward(cfg, original, corrupted, { seed: (l) => ld.valueAndGrad(l).gradient }).cache.get('hook_embed')!;
    const sum = Tensor.zeros(embed.shape);
    for (let i = 0; i < steps; i++) {
      const alpha = (i + 0.5) / steps;
      const ref = referenceBackward(cfg, original, corrupted, { seed: (l) => ld.valueAndGrad(l).gradient, hooks: { hook_embed: (e) => e.mul(alpha) } });
      sum.data.forEach((_, j) => { sum.data[j] += ref.grads.get('hook_embed')!.data[j]; });
    }
    const expected = embed.mul(sum.div(steps)).sum(-1);
    expect(ig.scores.sub(expected).abs().max().item()).toBeLessThanOrEqual(1e-4 * expected.abs().max().item());
    await expect(inputSaliency(model, corrupted, ld, { method: 'integrated_gradients', steps: 0 })).rejects.toThrow(/steps must be an integer in 1…4096/);
    await expect(inputSaliency(model, corrupted, ld, { method: 'occlusion' as never })).rejects.toThrow(/method must be 'grad_x_input' or 'integrated_gradients'/);
  });
});
