/**
 * SAEs spliced into the graph (HookedSAETransformer's semantics): with the error term the run is the
 * clean run; without it, the run with the hook point replaced by the reconstruction (a JS hook on the
 * plain model, computed by the plain-TypeScript SAE); the SAE's hook points in the cache; feature
 * ablation and patching in the graph = the JS-hook versions; steering (α = 0 changes nothing, α ≠ 0 =
 * a JS hook adding α·W_dec[f]) in forward passes and in generate with and without the KV cache.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { SaeArchitecture } from '../../../hooks/engine/graph/sae.ts';
import { HookedTransformer } from '../../../hooks/HookedTransformer.ts';
import { saeHook, type HookName, type ModelHookName } from '../../../hooks/hookPoints.ts';
import { ablateFeatures, patchFeatures, steerFeatures } from '../../../hooks/sae/features.ts';
import { Sae, type SaeWeights } from '../../../hooks/sae/Sae.ts';
import { Tensor } from '../../../hooks/tensor.ts';
import { randomSaeWeights, refDecodeRow, refEncodeRow, refReconstructRow, type RefSaeConfig } from '../../helpers/sae.ts';
import { cloneWeights, expectClose, expectExactlyEqual, tinyConfig, tinyWeights, tokenBatch } from '../engine/helpers.ts';

const cfg = tinyConfig({ n_layers: 2, d_model: 16, n_heads: 4, d_vocab: 60 }); // d_head 4, d_mlp 64
const weights = tinyWeights(cfg, 71);
const tokens = tokenBatch(3, 7, cfg.d_vocab, 5);
const other = tokenBatch(3, 7, cfg.d_vocab, 23);
const D_SAE = 40;

let model: HookedTransformer;
let clean: Tensor;

beforeAll(async () => {
  model = await HookedTransformer.fromWeights(cfg, cloneWeights(weights), { threads: 1 });
  clean = await model.forward(tokens);
});
afterAll(async () => {
  await model?.dispose();
});

interface TestSae {
  sae: Sae;
  ref: RefSaeConfig;
  w: SaeWeights;
}

function makeSae(arch: SaeArchitecture, hook: ModelHookName, seed: number, d_in = cfg.d_model): TestSae {
  const ref: RefSaeConfig = { architecture: arch, d_in, d_sae: D_SAE, ...(arch === 'topk' ? { k: 6 } : {}), apply_b_dec_to_input: true, normalize_activations: 'none' };
  const w = randomSaeWeights(arch, d_in, D_SAE, seed);
  return { sae: Sae.fromWeights({ ...ref, k: ref.k ?? null, hook_name: hook }, w), ref, w };
}

/** A JS hook computing `fn` of each row of the hook value's last dim(s) flattened to d_in (float64 reference). */
function rowwise(width: number, fn: (row: Float32Array) => ArrayLike<number>) {
  return (act: Tensor): Tensor => {
    const out = new Float32Array(act.size);
    for (let r = 0; r < act.size / width; r++) out.set(Float32Array.from(fn(act.data.subarray(r * width, (r + 1) * width))), r * width);
    return new Tensor(out, act.shape);
  };
}

const ARCHS: SaeArchitecture[] = ['standard', 'topk', 'jumprelu', 'gated'];
const HOOKS: [ModelHookName, number][] = [['blocks.0.hook_resid_post', cfg.d_model], ['blocks.1.attn.hook_z', cfg.n_heads * cfg.d_head], ['blocks.0.mlp.hook_post', cfg.d_mlp]];

describe('the spliced forward', () => {
  for (const arch of ARCHS) {
    it(`${arch}: with the error term = the clean forward (1e-4); without = the hook replaced by the reconstruction (1e-4)`, async () => {
      for (const [hook, d_in] of HOOKS) {
        const { sae, ref, w } = makeSae(arch, hook, 100 + ARCHS.indexOf(arch), d_in);
        expectClose(await model.runWithSaes(tokens, { saes: sae, useErrorTerm: true }), clean, 1e-4, `${hook} with error term`);
        const spliced = await model.runWithSaes(tokens, { saes: [sae] });
        const hooked = await model.runWithHooks(tokens, { fwdHooks: [[hook, rowwise(d_in, (row) => refReconstructRow(ref, w, row))]] });
        expectClose(spliced, hooked, 1e-4, `${hook} without error term`);
        expect(spliced.sub(clean).abs().max().item(), 'the reconstruction changes the logits').toBeGreaterThan(1e-3);
        const loss = await model.runWithSaes(tokens, { saes: sae, useErrorTerm: true, returnType: 'loss' });
        expect(Math.abs((loss as number) - ((await model.forward(tokens, { returnType: 'loss' })) as number))).toBeLessThan(1e-4);
      }
    });
  }

  it("caches the SAE's hook points with their shapes and values", async () => {
    const { sae, ref, w } = makeSae('topk', 'blocks.1.hook_resid_pre', 7);
    const base: HookName = 'blocks.1.hook_resid_pre';
    const [, cache] = await model.runWithCacheWithSaes(tokens, { saes: sae, useErrorTerm: true });
    const n = (s: Parameters<typeof saeHook>[1]) => saeHook(base, s);
    expect(cache.get(n('hook_sae_input')).shape).toEqual([3, 7, 16]);
    expect(cache.get(n('hook_sae_acts_pre')).shape).toEqual([3, 7, D_SAE]);
    expect(cache.get(n('hook_sae_acts_post')).shape).toEqual([3, 7, D_SAE]);
    expect(cache.get(n('hook_sae_recons')).shape).toEqual([3, 7, 16]);
    expect(cache.get(n('hook_sae_error')).shape).toEqual([3, 7, 16]);
    expect(cache.get(n('hook_sae_output')).shape).toEqual([3, 7, 16]);
    // Forward order: the SAE's hook points right after the hook point they splice.
    const keys = cache.keys();
    expect(keys.slice(keys.indexOf(base), keys.indexOf(base) + 7)).toEqual([base, n('hook_sae_input'), n('hook_sae_acts_pre'), n('hook_sae_acts_post'), n('hook_sae_recons'), n('hook_sae_error'), n('hook_sae_output')]);
    const x = cache.get(base);
    expectExactlyEqual(cache.get(n('hook_sae_input')), x, 'input = the hook value');
    let worst = 0;
    for (let r = 0; r < 21; r++) {
      const row = x.data.subarray(r * 16, (r + 1) * 16);
      const { pre, acts } = refEncodeRow(ref, w, row);
      const recons = refDecodeRow(ref, w, acts);
      for (let f = 0; f < D_SAE; f++) {
        worst = Math.max(worst, Math.abs(cache.get(n('hook_sae_acts_pre')).data[r * D_SAE + f] - pre[f]), Math.abs(cache.get(n('hook_sae_acts_post')).data[r * D_SAE + f] - acts[f]));
      }
      for (let i = 0; i < 16; i++) worst = Math.max(worst, Math.abs(cache.get(n('hook_sae_recons')).data[r * 16 + i] - recons[i]));
    }
    expect(worst).toBeLessThanOrEqual(1e-5);
    expectClose(cache.get(n('hook_sae_error')), x.sub(cache.get(n('hook_sae_recons'))), 1e-5, 'error = x - recons');
    expectClose(cache.get(n('hook_sae_output')), x, 1e-5, 'output = x with the error term');
    expectClose(cache.get('blocks.1.hook_resid_mid').sub(cache.get('blocks.1.hook_attn_out')), cache.get(n('hook_sae_output')), 1e-5, 'downstream reads the output');
    // Without the error term there is no hook_sae_error (as in SAELens).
    const [, noError] = await model.runWithCacheWithSaes(tokens, { saes: sae });
    expect(noError.has(n('hook_sae_error'))).toBe(false);
    expectExactlyEqual(noError.get(n('hook_sae_output')), noError.get(n('hook_sae_recons')), 'output = recons without the error term');
    await expect(model.runWithCacheWithSaes(tokens, { saes: sae, namesFilter: [n('hook_sae_error')] })).rejects.toThrow(/unknown hook point 'blocks\.1\.hook_resid_pre\.hook_sae_error'/);
  });

  it('two SAEs in one run; a padded batch row equals its prompt alone', async () => {
    const a = makeSae('standard', 'blocks.0.hook_resid_post', 8);
    const b = makeSae('jumprelu', 'blocks.1.hook_mlp_out', 9);
    const [logits, cache] = await model.runWithCacheWithSaes(tokens, { saes: [a.sae, b.sae], namesFilter: (name) => name.endsWith('hook_sae_acts_post') });
    expect(cache.keys()).toEqual(['blocks.0.hook_resid_post.hook_sae_acts_post', 'blocks.1.hook_mlp_out.hook_sae_acts_post']);
    const both = await model.runWithHooks(tokens, {
      fwdHooks: [['blocks.0.hook_resid_post', rowwise(16, (r) => refReconstructRow(a.ref, a.w, r))], ['blocks.1.hook_mlp_out', rowwise(16, (r) => refReconstructRow(b.ref, b.w, r))]],
    });
    expectClose(logits, both, 1e-4, 'two SAEs');
    const padded = [[...tokens[0].slice(0, 4), 0, 0, 0], tokens[1]];
    const mask = [[1, 1, 1, 1, 0, 0, 0], [1, 1, 1, 1, 1, 1, 1]];
    const batch = await model.runWithSaes(padded, { saes: a.sae, attentionMask: mask });
    const alone = await model.runWithSaes([tokens[0].slice(0, 4)], { saes: a.sae });
    expectClose(batch.slice(0, 0, 1).slice(1, 0, 4), alone, 1e-4, 'padded row');
  });
});

describe('interventions on the SAE = JS hooks on its hook points', () => {
  it('feature ablation in the graph = zeroing the features in a JS hook (1e-5); with the error term = the plain model minus their decoded contribution (1e-4)', async () => {
    const { sae, ref, w } = makeSae('standard', 'blocks.0.hook_resid_post', 12);
    const acts = 'blocks.0.hook_resid_post.hook_sae_acts_post';
    const [, cache] = await model.runWithCacheWithSaes(tokens, { saes: sae, namesFilter: acts });
    // The two features that fire most, at positions 2 and 5.
    const totals = Array.from({ length: D_SAE }, (_, f) => { let s = 0; for (let r = 0; r < 21; r++) s += cache.get(acts).data[r * D_SAE + f]; return s; });
    const features = Array.from({ length: D_SAE }, (_, f) => f).sort((x, y) => totals[y] - totals[x]).slice(0, 2);
    const zeroing = (a: Tensor) => a.map((v, i) => (features.includes(i % D_SAE) && [2, 5].includes(Math.floor(i / D_SAE) % 7) ? 0 : v));
    for (const useErrorTerm of [false, true]) {
      const inGraph = await model.runWithSaes(tokens, { saes: sae, useErrorTerm, interventions: [ablateFeatures(sae, features, { positions: [2, 5] })] });
      const jsHook = await model.runWithHooksWithSaes(tokens, { saes: sae, useErrorTerm, fwdHooks: [[acts, zeroing]] });
      expectClose(inGraph, jsHook, 1e-5, `ablation, useErrorTerm ${useErrorTerm}`);
      expect(inGraph.sub(await model.runWithSaes(tokens, { saes: sae, useErrorTerm })).abs().max().item()).toBeGreaterThan(1e-4);
    }
    // SAELens: the error term comes from the SAE without hooks, so the ablation removes exactly acts_f · W_dec[f].
    const ablated = await model.runWithSaes(tokens, { saes: sae, useErrorTerm: true, interventions: [ablateFeatures(sae, features, { positions: [2, 5] })] });
    const minusFeatures = await model.runWithHooks(tokens, {
      fwdHooks: [['blocks.0.hook_resid_post', (x) => {
        const out = x.clone();
        for (let r = 0; r < 21; r++) {
          if (![2, 5].includes(r % 7)) continue;
          const a = refEncodeRow(ref, w, x.data.subarray(r * 16, (r + 1) * 16)).acts;
          for (const f of features) for (let i = 0; i < 16; i++) out.data[r * 16 + i] -= a[f] * w.W_dec![f * 16 + i];
        }
        return out;
      }]],
    });
    expectClose(ablated, minusFeatures, 1e-4, 'ablation with the error term');
  });

  it('feature patching from another run = a JS hook substituting those activations (1e-5)', async () => {
    const { sae } = makeSae('topk', 'blocks.1.hook_resid_pre', 13);
    const acts = 'blocks.1.hook_resid_pre.hook_sae_acts_post';
    const [, src] = await model.runWithCacheWithSaes(other, { saes: sae, namesFilter: acts });
    const features = [0, 3, 17, 30];
    const patched = await model.runWithSaes(tokens, { saes: sae, interventions: [patchFeatures(sae, src.get(acts), { features, positions: [-1] })] });
    const jsHook = await model.runWithHooksWithSaes(tokens, {
      saes: sae,
      fwdHooks: [[acts, (a) => a.map((v, i) => (features.includes(i % D_SAE) && Math.floor(i / D_SAE) % 7 === 6 ? src.get(acts).data[i] : v))]],
    });
    expectClose(patched, jsHook, 1e-5, 'patching');
  });
});

describe('steering', () => {
  it('α = 0 changes nothing: forward and generate (with and without the KV cache) are bitwise the same', async () => {
    const { sae } = makeSae('standard', 'blocks.0.hook_resid_post', 14);
    const steer = steerFeatures(sae, [{ feature: 3, strength: 0 }, { feature: 9, strength: 0 }]);
    expectExactlyEqual(await model.forward(tokens, { interventions: [steer] }), clean, 'forward');
    for (const useKvCache of [true, false]) {
      const logits: Tensor[][] = [[], []];
      const plain = await model.generate([tokens[0]], { maxNewTokens: 6, doSample: false, useKvCache, onStep: (s) => { logits[0].push(s.logits); } });
      const steered = await model.generate([tokens[0]], { maxNewTokens: 6, doSample: false, useKvCache, interventions: [steer], onStep: (s) => { logits[1].push(s.logits); } });
      expect(steered).toEqual(plain);
      logits[0].forEach((l, i) => expectExactlyEqual(logits[1][i], l, `step ${i}`));
    }
  });

  it('α ≠ 0 = a JS hook adding α·W_dec[f] (1e-5), spliced or not; generate with the KV cache = without it = a forward loop with the hook', async () => {
    const { sae, w } = makeSae('topk', 'blocks.0.hook_resid_post', 15);
    const features = [{ feature: 4, strength: 3 }, { feature: 11, strength: -2 }];
    const vector = new Float32Array(16);
    for (const { feature, strength } of features) for (let i = 0; i < 16; i++) vector[i] += strength * w.W_dec![feature * 16 + i];
    const addHook = (x: Tensor) => x.add(new Tensor(vector, [16]));
    const steer = steerFeatures(sae, features);
    expectClose(await model.forward(tokens, { interventions: [steer] }), await model.runWithHooks(tokens, { fwdHooks: [['blocks.0.hook_resid_post', addHook]] }), 1e-5, 'steered forward');
    // Spliced: the SAE reads the steered value (steering comes before the SAE at its hook point).
    expectClose(
      await model.runWithSaes(tokens, { saes: sae, useErrorTerm: true, interventions: [steer] }),
      await model.runWithHooks(tokens, { fwdHooks: [['blocks.0.hook_resid_post', addHook]] }),
      1e-4,
      'steered with the SAE spliced (error term)',
    );
    const prompts = [tokens[0].slice(0, 4), tokens[1].slice(0, 4)];
    const steps: Tensor[][] = [[], [], []];
    const kv = await model.generate(prompts, { maxNewTokens: 8, doSample: false, interventions: [steer], onStep: (s) => { steps[0].push(s.logits); } });
    const noKv = await model.generate(prompts, { maxNewTokens: 8, doSample: false, useKvCache: false, interventions: [steer], onStep: (s) => { steps[1].push(s.logits); } });
    const hooked = await model.withHooks([['blocks.0.hook_resid_post', addHook]], (m) => m.generate(prompts, { maxNewTokens: 8, doSample: false, useKvCache: false, onStep: (s) => { steps[2].push(s.logits); } }));
    expect(kv).toEqual(noKv);
    expect(kv).toEqual(hooked);
    expect(kv).not.toEqual(await model.generate(prompts, { maxNewTokens: 8, doSample: false }));
    steps[0].forEach((l, i) => {
      expectClose(l, steps[1][i], 1e-4, `step ${i}: KV vs forward`);
      expectClose(l, steps[2][i], 1e-4, `step ${i}: KV vs hook`);
    });
  });

  it('generate refuses steering it cannot apply at every position', async () => {
    const { sae } = makeSae('standard', 'blocks.0.hook_resid_post', 16);
    await expect(model.generate([tokens[0]], { maxNewTokens: 2, interventions: [steerFeatures(sae, [{ feature: 1, strength: 1 }], { positions: [0] })] })).rejects.toThrow(/applies at every position and row; the one on 'blocks\.0\.hook_resid_post' selects some/);
    await expect(model.generate([tokens[0]], { maxNewTokens: 2, interventions: [{ hook: 'blocks.0.hook_resid_post', value: 0 }] })).rejects.toThrow(/additive interventions \(steering: 'add'\) only/);
    await expect(model.generate([tokens[0]], { maxNewTokens: 2, interventions: [ablateFeatures(sae, 1)] })).rejects.toThrow(/unknown hook point 'blocks\.0\.hook_resid_post\.hook_sae_acts_post'/);
  });
});

describe('attached SAEs (addSae / resetSaes)', () => {
  it('an attached SAE runs in every run and in generate (KV = no KV), with its hook points listed; resetSaes removes it', async () => {
    const { sae } = makeSae('gated', 'blocks.1.hook_resid_mid', 17);
    const before = model.hookPoints().length;
    model.addSae(sae);
    try {
      expect(model.hookPoints().length).toBe(before + 5);
      expect(model.hookPoints().map((h) => h.name)).toContain('blocks.1.hook_resid_mid.hook_sae_acts_post');
      expect(model.hookPoints().find((h) => h.name === 'blocks.1.hook_resid_mid.hook_sae_acts_post')!.dims).toEqual(['batch', 'pos', 'd_sae']);
      expectClose(await model.forward(tokens), await model.runWithSaes(tokens, { saes: [] }), 0, 'attached = run with none extra');
      const spliced = await model.forward(tokens);
      model.resetSaes();
      expectClose(spliced, await model.runWithSaes(tokens, { saes: sae }), 1e-6, 'attached = runWithSaes');
      model.addSae(sae);
      const [, cache] = await model.runWithCache(tokens, { namesFilter: (n) => n.includes('hook_sae') });
      expect(cache.keys().length).toBe(5);
      const kv = await model.generate([tokens[0]], { maxNewTokens: 6, doSample: false });
      const noKv = await model.generate([tokens[0]], { maxNewTokens: 6, doSample: false, useKvCache: false });
      expect(kv).toEqual(noKv);
      model.resetSaes('blocks.1.hook_resid_mid');
      expect(model.hookPoints().length).toBe(before);
      expectExactlyEqual(await model.forward(tokens), clean, 'after resetSaes');
    } finally {
      model.resetSaes();
    }
  });

  it('an SAE that does not fit the model is refused, naming the problem', async () => {
    const wrongWidth = makeSae('standard', 'blocks.0.hook_resid_post', 18, 12).sae;
    await expect(model.runWithSaes(tokens, { saes: wrongWidth })).rejects.toThrow(/does not fit this model: 'blocks\.0\.hook_resid_post' has d_model = 16 per position, not d_in 12/);
    const heads = makeSae('standard', 'blocks.0.attn.hook_z', 19, 12).sae;
    await expect(model.runWithSaes(tokens, { saes: heads })).rejects.toThrow(/'blocks\.0\.attn\.hook_z' has 4 heads × 4 = 16 per position, not d_in 12/);
    const unknown = makeSae('standard', 'blocks.0.mlp.hook_in' as ModelHookName, 20).sae;
    expect(() => model.addSae(unknown)).toThrow(/'blocks\.0\.mlp\.hook_in' is not one of its hook points/);
    const pattern = makeSae('standard', 'blocks.0.attn.hook_pattern', 21, 7).sae;
    await expect(model.runWithSaes(tokens, { saes: pattern })).rejects.toThrow(/has dims \[batch, head, query_pos, key_pos\]; an SAE reads \[batch, pos, d\]/);
    const deep = makeSae('standard', 'blocks.5.hook_resid_post', 22).sae;
    await expect(model.runWithSaes(tokens, { saes: deep })).rejects.toThrow(/'blocks\.5\.hook_resid_post' is not one of its hook points/);
    await expect(model.runWithSaes(tokens, { saes: {} as Sae })).rejects.toThrow(/saes must be an Sae or a list of them/);
  });

  it('a backward pass refuses spliced SAEs and steering, naming them (the backward graph has no SAE pieces)', async () => {
    const sae = makeSae('topk', 'blocks.0.hook_resid_post', 24).sae;
    await expect(model.runWithCacheWithSaes(tokens, { saes: sae, returnType: 'loss', inclBwd: true })).rejects.toThrow(/a backward pass cannot run with spliced SAEs/);
    await expect(model.runWithCache(tokens, { returnType: 'loss', inclBwd: true, interventions: [steerFeatures(sae, [{ feature: 1, strength: 2 }])] }))
      .rejects.toThrow(/a backward pass cannot run with steering/);
  });
});
