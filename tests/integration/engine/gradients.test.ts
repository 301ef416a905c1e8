/**
 * Gradients through the hookable model (runWithCache inclBwd / backwardFrom, backward hooks) against
 * the reference backward pass (hooks/referenceBackward.ts, itself checked against finite differences):
 * every hook point's gradient within 1e-4 of that hook point's largest magnitude, on tiny random
 * checkpoints loaded raw and processed, for the loss and a logit difference; with padding, an in-graph
 * intervention, JavaScript forward hooks and backward hooks; the seeds (dense, sparse, metrics) agree;
 * bad input gets a clear error.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ActivationCache } from '../../../hooks/ActivationCache.ts';
import { logitDiffMetric, lossMetric, metricFromSpec, normalisedMetric, tokenLogprobMetric } from '../../../hooks/analysis/metrics.ts';
import type { HookedTransformerConfig } from '../../../hooks/config.ts';
import type { BackwardFrom } from '../../../hooks/gradients.ts';
import { HookedTransformer } from '../../../hooks/HookedTransformer.ts';
import { blockHook, listHookPoints, type HookName } from '../../../hooks/hookPoints.ts';
import { ablateHeads, materializeInterventions, patchFrom } from '../../../hooks/interventions.ts';
import { referenceBackward, type ReferenceBwdHookFn } from '../../../hooks/referenceBackward.ts';
import type { ReferenceHookFn } from '../../../hooks/reference.ts';
import { Tensor } from '../../../hooks/tensor.ts';
import type { TransformerWeights } from '../../../hooks/weights.ts';
import { writeHfCheckpoint } from '../../helpers/checkpoints.ts';
import { cloneWeights, mapIndexed, tinyConfig, tinyWeights, tokenBatch } from './helpers.ts';

const REL = 1e-4; // |engine - reference| ≤ REL · max |reference| per hook point

/** Hook points whose gradient differs from the reference's by more than REL of its largest magnitude ("name: error"). */
function gradMismatches(cache: ActivationCache, ref: ReadonlyMap<HookName, Tensor>, names: readonly HookName[]): string[] {
  const bad: string[] = [];
  for (const name of names) {
    const r = ref.get(name);
    const key = `${name}_grad`;
    if (!r || !cache.has(key)) {
      bad.push(`${name}: missing (${r ? 'engine' : 'reference'})`);
      continue;
    }
    const e = cache.get(key);
    if (e.shape.join(',') !== r.shape.join(',')) {
      bad.push(`${name}: shape [${e.shape}] vs [${r.shape}]`);
      continue;
    }
    let scale = 0;
    let err = 0;
    for (let i = 0; i < r.data.length; i++) {
      scale = Math.max(scale, Math.abs(r.data[i]));
      err = Math.max(err, Math.abs(e.data[i] - r.data[i]));
    }
    if (!(err <= REL * scale + 1e-7)) bad.push(`${name}: max |diff| ${err} (max |grad| ${scale})`);
  }
  return bad;
}

/** The reference's seed of the mean next-token loss: (softmax - onehot(next)) / count at scored positions (written out here, not the library's). */
function lossSeed(tokens: number[][], mask?: number[][]) {
  return (logits: Tensor): Tensor => {
    const [B, P, V] = logits.shape;
    const scored = (b: number, p: number) => p < P - 1 && (!mask || (mask[b][p] === 1 && mask[b][p + 1] === 1));
    let count = 0;
    for (let b = 0; b < B; b++) for (let p = 0; p < P; p++) if (scored(b, p)) count++;
    const g = new Float32Array(B * P * V);
    for (let b = 0; b < B; b++) {
      for (let p = 0; p < P; p++) {
        if (!scored(b, p)) continue;
        const o = (b * P + p) * V;
        let max = -Infinity;
        for (let v = 0; v < V; v++) max = Math.max(max, logits.data[o + v]);
        let sum = 0;
        for (let v = 0; v < V; v++) sum += Math.exp(logits.data[o + v] - max);
        for (let v = 0; v < V; v++) g[o + v] = Math.exp(logits.data[o + v] - max) / sum / count;
        g[o + tokens[b][p + 1]] -= 1 / count;
      }
    }
    return new Tensor(g, [B, P, V]);
  };
}

/** The reference's seed of the mean logit difference at one position per prompt: ±1/batch. */
function logitDiffSeed(correct: number[], incorrect: number[], positions: number[]) {
  return (logits: Tensor): Tensor => {
    const [B, P, V] = logits.shape;
    const g = Tensor.zeros(logits.shape);
    for (let b = 0; b < B; b++) {
      g.data[(b * P + positions[b]) * V + correct[b]] += 1 / B;
      g.data[(b * P + positions[b]) * V + incorrect[b]] -= 1 / B;
    }
    return g;
  };
}

const allNames = (cfg: HookedTransformerConfig): HookName[] => listHookPoints(cfg).map((h) => h.name);

describe('every hook point\'s gradient = the reference backward pass, raw and processed checkpoints', () => {
  const CONFIGS = [
    { label: '2L d16 h4 gelu_new', cfg: tinyConfig({ model_name: 'ga', n_layers: 2, d_model: 16, n_heads: 4, d_vocab: 50 }) },
    { label: '3L d24 h2 d_mlp40 gelu', cfg: tinyConfig({ model_name: 'gb', n_layers: 3, d_model: 24, n_heads: 2, d_mlp: 40, d_vocab: 70, act_fn: 'gelu' }) },
    { label: '2L d32 h8 d_mlp48 relu', cfg: tinyConfig({ model_name: 'gc', n_layers: 2, d_model: 32, n_heads: 8, d_mlp: 48, d_vocab: 64, act_fn: 'relu' }) },
  ];
  let root: string;
  beforeAll(async () => {
    root = await mkdtemp(join(tmpdir(), 'lensboard-grad-'));
    await Promise.all(CONFIGS.map((c, i) => writeHfCheckpoint(join(root, `c${i}`), c.cfg, tinyWeights(c.cfg, 70 + i), { dtype: 'F32', prefix: false, buffers: false, lmHead: false })));
  });
  afterAll(async () => {
    await rm(root, { recursive: true, force: true });
  });

  CONFIGS.forEach(({ label, cfg }, i) => {
    it(`${label}: loss and logit difference, raw and processed`, async () => {
      const tokens = tokenBatch(2, 7, cfg.d_vocab, 5 + i);
      const names = allNames(cfg);
      for (const load of ['fromPretrainedNoProcessing', 'fromPretrained'] as const) {
        const model = await HookedTransformer[load](join(root, `c${i}`), { threads: 1 });
        try {
          const weights: TransformerWeights = model.rawWeights; // the weights the model runs (processed ones after fromPretrained)
          // the loss: TransformerLens's run_with_cache(…, return_type="loss", incl_bwd=True)
          const [loss, cache] = await model.runWithCache(tokens, { returnType: 'loss', inclBwd: true, namesFilter: names });
          const ref = referenceBackward(model.cfg, weights, tokens, { seed: lossSeed(tokens) });
          expect(gradMismatches(cache, ref.grads, names), `${load} loss`).toEqual([]);
          expect(cache.backwardValue).toBe(loss);
          // a logit difference read at position 4 of prompt 0 and 6 of prompt 1
          const m = logitDiffMetric({ correct: [3, 7], incorrect: [9, 1], positions: [4, -1] });
          const [, diffCache] = await model.runWithCache(tokens, { inclBwd: true, backwardFrom: m, namesFilter: names });
          const refDiff = referenceBackward(model.cfg, weights, tokens, { seed: logitDiffSeed([3, 7], [9, 1], [4, 6]) });
          expect(gradMismatches(diffCache, refDiff.grads, names), `${load} logit diff`).toEqual([]);
          expect(diffCache.backwardValue).toBeCloseTo(m(refDiff.logits), 4);
        } finally {
          await model.dispose();
        }
      }
    });
  });
});

describe('gradients with padding, interventions and hooks (2L d16 model)', () => {
  const cfg = tinyConfig({ n_layers: 2, d_model: 16, n_heads: 4, d_vocab: 60 });
  const original = tinyWeights(cfg, 41);
  const names = allNames(cfg);
  const tokens = tokenBatch(2, 6, cfg.d_vocab, 11);
  const diff = logitDiffMetric({ correct: [3, 7], incorrect: [9, 1], positions: -1 });
  const diffSeed = logitDiffSeed([3, 7], [9, 1], [5, 5]);
  let model: HookedTransformer;
  let plain: ActivationCache;

  beforeAll(async () => {
    model = await HookedTransformer.fromWeights(cfg, cloneWeights(original), { threads: 1 });
    [, plain] = await model.runWithCache(tokens, { inclBwd: true, backwardFrom: diff, namesFilter: names });
  });
  afterAll(async () => {
    await model?.dispose();
  });

  it('padding, left and right: the reference with the mask, and 0 at every padded position', async () => {
    const padded = [[5, 17, 3, 44, 59, 59], [59, 59, 9, 30, 2, 8]];
    const attentionMask = [[1, 1, 1, 1, 0, 0], [0, 0, 1, 1, 1, 1]];
    const [, cache] = await model.runWithCache(padded, { attentionMask, returnType: 'loss', inclBwd: true, namesFilter: names });
    const ref = referenceBackward(cfg, original, padded, { seed: lossSeed(padded, attentionMask), attentionMask });
    expect(gradMismatches(cache, ref.grads, names)).toEqual([]);
    // a metric that reads a padded position too: its gradient there is dropped
    const m = logitDiffMetric({ correct: 3, incorrect: 9, positions: [5, 5] });
    const [, cacheM] = await model.runWithCache(padded, { attentionMask, inclBwd: true, backwardFrom: m, namesFilter: names });
    const refM = referenceBackward(cfg, original, padded, { seed: logitDiffSeed([3, 3], [9, 9], [5, 5]), attentionMask });
    expect(gradMismatches(cacheM, refM.grads, names)).toEqual([]);
    for (const c of [cache, cacheM]) {
      for (const { name, dims } of listHookPoints(cfg)) {
        const g = c.get(`${name}_grad`);
        const posAxes = dims.flatMap((d, a) => (d === 'pos' || d === 'query_pos' ? [a] : []));
        const zeroAtPadding = mapIndexed(g, (v, idx) => (posAxes.some((a) => attentionMask[idx[0]][idx[a]] === 0) ? v : 0));
        expect(zeroAtPadding.abs().max().item(), name).toBe(0);
      }
    }
  });

  it('an in-graph intervention: the gradient of the forward as it ran (none through the replaced entries)', async () => {
    const clean = tokenBatch(2, 6, cfg.d_vocab, 12);
    const [, cleanCache] = await model.runWithCache(clean, { namesFilter: [blockHook(0, 'hook_resid_mid')] });
    const interventions = [ablateHeads(1, [2], { positions: [3, 4] }), patchFrom(blockHook(0, 'hook_resid_mid'), cleanCache.get(blockHook(0, 'hook_resid_mid')), { pos: [2] })];
    const [, cache] = await model.runWithCache(tokens, { interventions, inclBwd: true, backwardFrom: diff, namesFilter: names });
    // the reference: the same replacement as a hook, and the intervention's mask where no gradient flows
    const masks = materializeInterventions(cfg, interventions, 2, 6);
    const hooks: Partial<Record<HookName, ReferenceHookFn>> = {};
    const stopGradient: Partial<Record<HookName, Uint8Array>> = {};
    for (const [hook, iv] of masks) {
      const { mask, value } = iv as Required<typeof iv>; // replacing interventions: a mask and a value
      hooks[hook] = (a) => {
        const out = a.clone();
        mask.data.forEach((m, i) => { if (m) out.data[i] = value.data[i]; });
        return out;
      };
      stopGradient[hook] = mask.data;
    }
    const ref = referenceBackward(cfg, original, tokens, { seed: diffSeed, hooks, stopGradient });
    expect(gradMismatches(cache, ref.grads, names)).toEqual([]);
    // upstream of the patched resid_mid position, block 0's gradients changed (the check is not vacuous)
    expect(cache.get('blocks.0.hook_resid_pre_grad').sub(plain.get('blocks.0.hook_resid_pre_grad')).abs().max().item()).toBeGreaterThan(1e-4);
  });

  it('JavaScript forward hooks (a patch and an in-place edit): as TransformerLens, no gradient through the entries they changed', async () => {
    const patchValue = (a: Tensor) => mapIndexed(a, (v, [, p, h]) => (h === 1 && p >= 2 ? 0.3 : v));
    const zeroNeuronsInPlace = (a: Tensor) => {
      for (let i = 0; i < a.data.length; i++) if (i % cfg.d_mlp < 8) a.data[i] = 0;
    };
    const fwdHooks: [HookName, (a: Tensor) => Tensor | void][] = [['blocks.0.attn.hook_z', patchValue], ['blocks.1.mlp.hook_post', zeroNeuronsInPlace]];
    const [, cache] = await model.withHooks(fwdHooks, (m) => m.runWithCache(tokens, { inclBwd: true, backwardFrom: diff, namesFilter: names }));
    const ref = referenceBackward(cfg, original, tokens, { seed: diffSeed, hooks: Object.fromEntries(fwdHooks) });
    expect(gradMismatches(cache, ref.grads, names)).toEqual([]);
    expect(cache.get('blocks.0.attn.hook_v_grad').sub(plain.get('blocks.0.attn.hook_v_grad')).abs().max().item()).toBeGreaterThan(1e-4);
  });

  it('backward hooks that replace a gradient change every upstream gradient as the reference does, and nothing downstream', async () => {
    const at = blockHook(1, 'hook_resid_mid');
    const double: ReferenceBwdHookFn = (g) => mapIndexed(g, (v, [, p]) => (p === 2 ? 0 : 2 * v));
    const seen: Tensor[] = [];
    model.addHook(at, (g) => { seen.push(g.clone()); }, 'bwd'); // sees the gradient, returns nothing
    model.addHook(at, (g) => double(g, at) as Tensor, 'bwd');
    let cache: ActivationCache;
    try {
      [, cache] = await model.runWithCache(tokens, { inclBwd: true, backwardFrom: diff, namesFilter: names });
    } finally {
      model.resetHooks();
    }
    const ref = referenceBackward(cfg, original, tokens, { seed: diffSeed, bwdHooks: { [at]: double } });
    expect(gradMismatches(cache, ref.grads, names)).toEqual([]);
    const order = names.indexOf(at);
    for (const name of names) {
      const change = cache.get(`${name}_grad`).sub(plain.get(`${name}_grad`)).abs().max().item();
      if (names.indexOf(name) >= order) expect(change, `${name} (downstream or the hook point itself)`).toBe(0);
    }
    expect(cache.get('hook_embed_grad').sub(plain.get('hook_embed_grad')).abs().max().item()).toBeGreaterThan(1e-4);
    expect(seen).toHaveLength(1);
    expect(seen[0].sub(plain.get(`${at}_grad`)).abs().max().item()).toBe(0); // each bwd hook gets the gradient at the hook point
    // a plain forward pass leaves a registered backward hook alone (TransformerLens: it runs only in a backward pass)
    model.addHook(at, () => { throw new Error('must not run'); }, 'bwd');
    try {
      await model.forward(tokens);
      await model.runWithCache(tokens, { namesFilter: [at] });
    } finally {
      model.resetHooks();
    }
  });

  it('runWithHooks with bwdHooks and backwardFrom: the hooks run on a predicate; several hooks at one point: the last replacement flows', async () => {
    const calls: string[] = [];
    const logits = await model.runWithHooks(tokens, {
      backwardFrom: diff,
      bwdHooks: [
        [(n) => n.endsWith('hook_resid_pre'), (g, hook) => { calls.push(`${hook.name}:${hook.layer()}:${g.shape.join('x')}`); }],
        [blockHook(1, 'hook_resid_pre'), (g) => g.mul(5)],
        [blockHook(1, 'hook_resid_pre'), (g) => g.mul(0)],
      ],
    });
    expect(logits.shape).toEqual([2, 6, cfg.d_vocab]);
    expect(calls).toEqual(['blocks.1.hook_resid_pre:1:2x6x16', 'blocks.0.hook_resid_pre:0:2x6x16']);
    // with the last replacement 0, nothing reaches the embeddings
    const [, cache] = await model.withHooks([], (m) => m.runWithCache(tokens, { inclBwd: true, backwardFrom: diff, namesFilter: ['hook_embed'] }), {
      bwdHooks: [[blockHook(1, 'hook_resid_pre'), (g) => g.mul(5)], [blockHook(1, 'hook_resid_pre'), (g) => g.mul(0)]],
    });
    expect(cache.get('hook_embed_grad').abs().max().item()).toBe(0);
  });
});

describe('seeds: the loss in the graph, metrics, and gradients given dense or sparse agree', () => {
  const cfg = tinyConfig({ n_layers: 2, d_model: 16, n_heads: 4, d_vocab: 60 });
  const tokens = tokenBatch(3, 6, cfg.d_vocab, 21);
  const names: HookName[] = ['hook_embed', blockHook(0, 'attn.hook_pattern'), blockHook(1, 'hook_resid_mid'), 'ln_final.hook_scale'];
  let model: HookedTransformer;
  beforeAll(async () => {
    model = await HookedTransformer.fromWeights(cfg, tinyWeights(cfg, 42), { threads: 1 });
  });
  afterAll(async () => {
    await model?.dispose();
  });
  const grads = async (backwardFrom: BackwardFrom) => {
    const [, cache] = await model.runWithCache(tokens, { inclBwd: true, backwardFrom, namesFilter: names });
    return cache;
  };
  const expectSame = (a: ActivationCache, b: ActivationCache, tol = 1e-6) => {
    for (const n of names) expect(a.get(`${n}_grad`).sub(b.get(`${n}_grad`)).abs().max().item(), n).toBeLessThanOrEqual(tol);
    expect(a.backwardValue! - b.backwardValue!).toBeCloseTo(0, 5);
  };

  it("'loss' (in the graph) = lossMetric (its gradient from JavaScript) = returnType 'loss' with inclBwd", async () => {
    const [loss, fromReturn] = await model.runWithCache(tokens, { returnType: 'loss', inclBwd: true, namesFilter: names });
    const inGraph = await grads('loss');
    expectSame(inGraph, fromReturn);
    expectSame(inGraph, await grads(lossMetric(tokens)), 1e-6);
    expect(inGraph.backwardValue).toBeCloseTo(loss as number, 6);
  });

  it('logitDiffMetric = its gradient as a dense tensor = as sparse entries; normalisedMetric scales it', async () => {
    const m = logitDiffMetric({ correct: [1, 2, 3], incorrect: [4, 5, 6], positions: [2, -1, 4] });
    const viaMetric = await grads(m);
    const dense = Tensor.zeros([3, 6, cfg.d_vocab]);
    const indices: [number, number, number][] = [];
    const values: number[] = [];
    [[1, 4, 2], [2, 5, 5], [3, 6, 4]].forEach(([c, i, p], b) => {
      dense.data[(b * 6 + p) * cfg.d_vocab + c] = 1 / 3;
      dense.data[(b * 6 + p) * cfg.d_vocab + i] = -1 / 3;
      indices.push([b, p, c], [b, p, i]);
      values.push(1 / 3, -1 / 3);
    });
    expectSame(viaMetric, await grads({ gradient: dense }));
    // returnType 'none': the forward computes logits only at the metric's rows; the same gradients
    const [, rowsOnly] = await model.runWithCache(tokens, { returnType: 'none', inclBwd: true, backwardFrom: m, namesFilter: names });
    expectSame(viaMetric, rowsOnly);
    expectSame(viaMetric, await grads({ gradient: { indices, values } }));
    const norm = await grads(normalisedMetric(m, 2, -0.5));
    for (const n of names) expect(norm.get(`${n}_grad`).sub(viaMetric.get(`${n}_grad`).div(2.5)).abs().max().item()).toBeLessThanOrEqual(1e-6);
    expect(norm.backwardValue).toBeCloseTo((viaMetric.backwardValue! + 0.5) / 2.5, 6);
  });

  it('tokenLogprobMetric: the gradient of log p(token) (positions only, or full logits) = the reference seed', async () => {
    const m = tokenLogprobMetric({ token: [7, 8, 9], positions: -2 });
    const [, cache] = await model.runWithCache(tokens, { inclBwd: true, backwardFrom: m, namesFilter: allNames(cfg) });
    const ref = referenceBackward(cfg, model.rawWeights, tokens, { seed: (l) => m.valueAndGrad(l).gradient });
    expect(gradMismatches(cache, ref.grads, allNames(cfg))).toEqual([]);
    // the positioned path (logits at the metric's positions) = the metric on full logits (no positions)
    const full = Object.assign((l: Tensor) => m(l), { valueAndGrad: m.valueAndGrad });
    expectSame(await grads(m), await grads(full));
    expect(cache.backwardValue).toBeCloseTo(m(ref.logits), 5);
  });

  it('metricFromSpec: tokens by id or text; text on a model without a tokenizer is a clear error', () => {
    const spec = { kind: 'logit_diff', correct: ' Mary', incorrect: 3 } as const;
    expect(() => metricFromSpec(model, spec, tokens)).toThrow(/metric.correct: the token " Mary" is named by its text, which needs a tokenizer.*give its token id/);
    expect(() => metricFromSpec(model, { kind: 'logprob', token: 600 }, tokens)).toThrow(/metric.token: token id 600 is not an integer in \[0, 60\)/);
    const m = metricFromSpec(model, { kind: 'logit_diff', correct: 1, incorrect: [2, 3, 4] }, tokens);
    expect(m(Tensor.zeros([3, 6, 60]))).toBe(0);
  });
});

describe('bad input gets a clear error', () => {
  const cfg = tinyConfig({ n_layers: 2, d_model: 16, n_heads: 4, d_vocab: 60 });
  const tokens = tokenBatch(2, 5, cfg.d_vocab, 31);
  let model: HookedTransformer;
  beforeAll(async () => {
    model = await HookedTransformer.fromWeights(cfg, tinyWeights(cfg, 43), { threads: 1 });
  });
  afterAll(async () => {
    await model?.dispose();
  });

  it('a metric that is not scalar, or has no gradient, or a gradient of the wrong shape', async () => {
    const vector = Object.assign((l: Tensor) => l.data[0], { valueAndGrad: (l: Tensor) => ({ value: [1, 2] as unknown as number, gradient: Tensor.zeros(l.shape) }) });
    await expect(model.runWithCache(tokens, { inclBwd: true, backwardFrom: vector })).rejects.toThrow(/must be a scalar \(one number\).*an array/);
    await expect(model.runWithCache(tokens, { inclBwd: true, backwardFrom: ((l: Tensor) => l.data[0]) as never })).rejects.toThrow(/has no gradient.*\{ gradient \}/);
    await expect(model.runWithCache(tokens, { inclBwd: true, backwardFrom: { gradient: Tensor.zeros([2, 5]) } })).rejects.toThrow(/shape \[2, 5\].*must be \[2, 5, 60\]/);
    const wrongGrad = Object.assign((l: Tensor) => l.data[0], { valueAndGrad: () => ({ value: 1, gradient: Tensor.zeros([1]) }) });
    await expect(model.runWithCache(tokens, { inclBwd: true, backwardFrom: wrongGrad })).rejects.toThrow(/gradient has shape \[1\]; the logits it read have shape \[2, 5, 60\]/);
    await expect(model.runWithCache(tokens, { inclBwd: true })).rejects.toThrow(/inclBwd differentiates the scalar the run returns: use returnType 'loss' \(got 'logits'\)/);
    await expect(model.runWithCache(tokens, { inclBwd: true, returnType: 'loss', lossPerToken: true })).rejects.toThrow(/needs a scalar, but lossPerToken/);
    await expect(model.runWithCache(tokens, { inclBwd: true, returnType: 'loss', stopAtLayer: 1 })).rejects.toThrow(/stopAtLayer cannot be combined with a backward pass/);
  });

  it('a backward hook returning the wrong shape, or hooks without a backward pass', async () => {
    const bad = model.runWithHooks(tokens, { backwardFrom: 'loss', bwdHooks: [[blockHook(0, 'attn.hook_z'), () => Tensor.zeros([2, 5, 4])]] });
    await expect(bad).rejects.toThrow(/backward hook on 'blocks.0.attn.hook_z' returned shape \[2, 5, 4\]; the gradient at this hook point has shape \[2, 5, 4, 4\]/);
    await expect(model.runWithHooks(tokens, { bwdHooks: [['hook_embed', () => undefined]] })).rejects.toThrow(/bwdHooks need a backward pass: give backwardFrom/);
    expect(() => model.addHook('blocks.9.hook_resid_pre' as HookName, () => undefined, 'bwd')).toThrow(/unknown hook point 'blocks.9.hook_resid_pre'/);
    // the model still works afterwards
    expect((await model.forward(tokens, { returnType: 'loss' })) as number).toBeGreaterThan(0);
  });

  it('removeBatchDim keeps the gradients, without the batch dim; hook_tokens has no gradient', async () => {
    const one = await HookedTransformer.fromWeights(cfg, tinyWeights(cfg, 43), { threads: 1, useHookTokens: true });
    try {
      const [, cache] = await one.runWithCache([tokens[0]], { returnType: 'loss', inclBwd: true, removeBatchDim: true, namesFilter: ['hook_tokens', 'hook_embed'] });
      expect(cache.keys()).toEqual(['hook_tokens', 'hook_embed', 'hook_embed_grad']);
      expect(cache.get('hook_embed_grad').shape).toEqual([5, 16]);
      expect(() => cache.get('hook_pos_embed_grad')).toThrow(/inclBwd/);
    } finally {
      await one.dispose();
    }
  });
});

describe("TransformerLens's optional hook points (attn_in, split q/k/v inputs, mlp_in)", () => {
  const cfg = tinyConfig({ n_layers: 2, d_model: 16, n_heads: 4, d_vocab: 60 });
  const tokens = tokenBatch(2, 6, cfg.d_vocab, 51);
  const diff = logitDiffMetric({ correct: 3, incorrect: 9 });

  it('leave every standard gradient unchanged; their own gradients add up to what reaches the residual stream', async () => {
    const plain = await HookedTransformer.fromWeights(cfg, tinyWeights(cfg, 44), { threads: 1 });
    const [, base] = await plain.runWithCache(tokens, { inclBwd: true, backwardFrom: diff, namesFilter: allNames(cfg) });
    await plain.dispose();
    for (const opts of [{ useAttnIn: true, useHookMlpIn: true }, { useSplitQkvInput: true }, { useSplitQkvInput: true, useAttnIn: true }]) {
      const model = await HookedTransformer.fromWeights(cfg, tinyWeights(cfg, 44), { threads: 1, ...opts });
      try {
        const [, cache] = await model.runWithCache(tokens, { inclBwd: true, backwardFrom: diff, namesFilter: () => true });
        const label = JSON.stringify(opts);
        for (const name of allNames(cfg)) {
          if (name.includes('ln1.')) continue; // per head with these inputs
          expect(cache.get(`${name}_grad`).sub(base.get(`${name}_grad`)).abs().max().item(), `${label} ${name}`).toBeLessThanOrEqual(1e-5);
        }
        for (let l = 0; l < cfg.n_layers; l++) {
          const g = (s: Parameters<typeof blockHook>[1]) => cache.get(`${blockHook(l, s)}_grad`);
          const throughAttention = g('hook_resid_pre').sub(g('hook_resid_mid')); // [batch, pos, d_model]
          const perHead = opts.useSplitQkvInput
            ? g('hook_q_input').add(g('hook_k_input')).add(g('hook_v_input'))
            : g('hook_attn_in');
          expect(perHead.sum(2).sub(throughAttention).abs().max().item(), `${label} L${l} per-head inputs`).toBeLessThanOrEqual(1e-5);
          if (opts.useSplitQkvInput && opts.useAttnIn) expect(g('hook_attn_in').abs().max().item()).toBe(0); // read by nothing
          if (opts.useHookMlpIn) expect(g('hook_mlp_in').sub(g('hook_resid_mid').sub(g('hook_resid_post'))).abs().max().item()).toBeLessThanOrEqual(1e-5);
        }
      } finally {
        await model.dispose();
      }
    }
  });
});
