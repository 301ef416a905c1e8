/** ActivationCache's TL decomposition methods on tiny random models: stacks sum to the residual stream, head results equal hook_result, logit attributions sum to the logit difference. */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ActivationCache, type CacheModel } from '../../../hooks/ActivationCache.ts';
import { withModel } from '../../../hooks/analysis/cache.ts';
import { HookedTransformer } from '../../../hooks/HookedTransformer.ts';
import type { HookName } from '../../../hooks/hookPoints.ts';
import { referenceForward } from '../../../hooks/reference.ts';
import { Tensor } from '../../../hooks/tensor.ts';
import { cloneWeights, expectClose, tinyConfig, tinyWeights, tokenBatch } from '../engine/helpers.ts';

const cfg = tinyConfig({ n_layers: 2, d_model: 16, n_heads: 4, d_vocab: 60 }); // d_head 4, d_mlp 64
const original = tinyWeights(cfg, 7);
const tokens = tokenBatch(2, 6, cfg.d_vocab, 3);
const FOLD = { foldLn: true, centerWritingWeights: true, centerUnembed: true, foldValueBiases: true };

let raw: HookedTransformer; // LayerNorm with weights, no processing
let folded: HookedTransformer; // TL's default processing
let cache: ActivationCache; // raw model, every standard hook point
let fcache: ActivationCache; // folded model
let flogits: Tensor;

const sumStack = (t: Tensor) => t.sum(0);

beforeAll(async () => {
  raw = await HookedTransformer.fromWeights(cfg, cloneWeights(original), { threads: 1 });
  folded = await HookedTransformer.fromWeights(cfg, cloneWeights(original), { threads: 1, ...FOLD });
  cache = withModel((await raw.runWithCache(tokens))[1], raw);
  const [l, c] = await folded.runWithCache(tokens);
  flogits = l;
  fcache = withModel(c, folded);
});

afterAll(async () => {
  await raw?.dispose();
  await folded?.dispose();
});

describe('accumulatedResid', () => {
  it('stacks the cached resid_pre / resid_mid / final resid_post exactly, with TL labels', () => {
    const [stack, labels] = cache.accumulatedResid({ inclMid: true, returnLabels: true });
    expect(labels).toEqual(['0_pre', '0_mid', '1_pre', '1_mid', 'final_post']);
    const names = ['blocks.0.hook_resid_pre', 'blocks.0.hook_resid_mid', 'blocks.1.hook_resid_pre', 'blocks.1.hook_resid_mid', 'blocks.1.hook_resid_post'];
    names.forEach((n, i) => expectClose(stack.index(0, i), cache.get(n), 0, n));
    const [upTo1, l1] = cache.accumulatedResid({ layer: 1, mlpInput: true, returnLabels: true });
    expect(l1).toEqual(['0_pre', '1_pre', '1_mid']);
    expectClose(upTo1.index(0, 2), cache.get('blocks.1.hook_resid_mid'), 0, '1_mid');
  });

  it('posSlice: an int drops the pos dim, a list keeps it', () => {
    const last = cache.accumulatedResid({ posSlice: -1 });
    expect(last.shape).toEqual([3, 2, cfg.d_model]);
    expectClose(last.index(0, 2), cache.get('blocks.1.hook_resid_post').index(1, 5), 0, 'final at pos 5');
    expect(cache.accumulatedResid({ posSlice: [0, 2] }).shape).toEqual([3, 2, 2, cfg.d_model]);
  });

  it('applyLn at the unembed is the full ln_final of each component: the final one equals ln_final.hook_normalized (1e-5)', () => {
    const stack = cache.accumulatedResid({ applyLn: true });
    expectClose(stack.index(0, 2), cache.get('ln_final.hook_normalized'), 1e-5, 'final_post through ln_final');
  });
});

describe('applyLnToStack (cached scale)', () => {
  it('is (x - mean) / cached scale of the given LayerNorm (1e-6)', () => {
    const x = cache.get('blocks.0.hook_attn_out');
    const hand = x.sub(x.mean(-1, { keepdim: true })).div(cache.get('blocks.1.ln2.hook_scale'));
    expectClose(cache.applyLnToStack(x.unsqueeze(0), { layer: 1, mlpInput: true }).index(0, 0), hand, 1e-6, 'ln2 of layer 1');
    const handFinal = x.sub(x.mean(-1, { keepdim: true })).div(cache.get('ln_final.hook_scale'));
    expectClose(cache.applyLnToStack(x.unsqueeze(0)).index(0, 0), handFinal, 1e-6, 'ln_final');
    // with a pos slice, the scale is sliced the same way
    const at2 = cache.applyLnToStack(x.select(1, [2]).unsqueeze(0), { posSlice: [2] }).index(0, 0);
    expectClose(at2, handFinal.select(1, [2]), 1e-6, 'pos 2');
  });

  it('without LN weights (folded model), cached-scale ln_final of the final stream is ln_final.hook_normalized (1e-5)', () => {
    const final = fcache.get('blocks.1.hook_resid_post').unsqueeze(0);
    expectClose(fcache.applyLnToStack(final).index(0, 0), fcache.get('ln_final.hook_normalized'), 1e-5, 'LNPre');
  });
});

describe('decomposeResid and getFullResidDecomposition sum to the residual stream (1e-4)', () => {
  it('decomposeResid: all layers → final resid_post; layer 1 → resid_pre 1; mlpInput → resid_mid 1', () => {
    const [all, labels] = cache.decomposeResid({ returnLabels: true });
    expect(labels).toEqual(['embed', 'pos_embed', '0_attn_out', '0_mlp_out', '1_attn_out', '1_mlp_out']);
    expectClose(sumStack(all), cache.get('blocks.1.hook_resid_post'), 1e-4, 'final');
    expectClose(sumStack(cache.decomposeResid({ layer: 1 })), cache.get('blocks.1.hook_resid_pre'), 1e-4, 'resid_pre 1');
    expectClose(sumStack(cache.decomposeResid({ layer: 1, mlpInput: true })), cache.get('blocks.1.hook_resid_mid'), 1e-4, 'resid_mid 1');
    const [attnOnly, al] = cache.decomposeResid({ mode: 'attn', inclEmbeds: false, returnLabels: true });
    expect(al).toEqual(['0_attn_out', '1_attn_out']);
    expect(attnOnly.shape[0]).toBe(2);
  });

  it('getFullResidDecomposition (neurons expanded or not, mlpInput) sums to the stream', () => {
    const [full, labels] = cache.getFullResidDecomposition({ returnLabels: true });
    expect(full.shape).toEqual([2 * cfg.n_heads + 2 * cfg.d_mlp + 3, 2, 6, cfg.d_model]);
    expect(labels.slice(0, 2)).toEqual(['L0H0', 'L0H1']);
    expect(labels).toContain('L1N17');
    expect(labels.slice(-3)).toEqual(['embed', 'pos_embed', 'bias']);
    expectClose(sumStack(full), cache.get('blocks.1.hook_resid_post'), 1e-4, 'full, neurons');
    expectClose(sumStack(cache.getFullResidDecomposition({ expandNeurons: false })), cache.get('blocks.1.hook_resid_post'), 1e-4, 'full, mlp layers');
    expectClose(sumStack(cache.getFullResidDecomposition({ layer: 1, mlpInput: true })), cache.get('blocks.1.hook_resid_mid'), 1e-4, 'resid_mid 1');
    expectClose(sumStack(cache.getFullResidDecomposition({ layer: 0 })), cache.get('blocks.0.hook_resid_pre'), 1e-5, 'layer 0');
    // the folded model too (centred weights, folded value biases)
    expectClose(sumStack(fcache.getFullResidDecomposition({ posSlice: -1 })), fcache.get('blocks.1.hook_resid_post').index(1, 5), 1e-4, 'folded, last pos');
  });
});

describe('stackHeadResults and stackNeuronResults', () => {
  it('computed from hook_z and W_O, equals the engine hook_result and the reference (1e-5)', async () => {
    const names = [0, 1].map((l) => `blocks.${l}.attn.hook_result` as HookName);
    const [, withResult] = await raw.runWithCache(tokens, { namesFilter: names });
    const [stack, labels] = cache.stackHeadResults({ returnLabels: true });
    expect(labels).toEqual(['L0H0', 'L0H1', 'L0H2', 'L0H3', 'L1H0', 'L1H1', 'L1H2', 'L1H3']);
    const ref = referenceForward(cfg, original, tokens).cache;
    for (let l = 0; l < 2; l++) {
      for (let h = 0; h < cfg.n_heads; h++) {
        expectClose(stack.index(0, l * cfg.n_heads + h), withResult.get(names[l]).index(2, h), 1e-5, `L${l}H${h} vs engine`);
        expectClose(stack.index(0, l * cfg.n_heads + h), ref.get(names[l])!.index(2, h), 1e-5, `L${l}H${h} vs reference`);
      }
    }
    // heads + b_O = attn_out
    const attn1 = stack.slice(0, 4, 8).sum(0).add(new Tensor(raw.rawWeights.blocks[1].b_O, [cfg.d_model]));
    expectClose(attn1, cache.get('blocks.1.hook_attn_out'), 1e-5, 'Σ heads + b_O');
    // with hook_result cached, it is used as is
    const cached = withModel(withResult, raw);
    expectClose(cached.stackHeadResults({ layer: 1 }).index(0, 2), withResult.get(names[0]).index(2, 2), 0, 'cached used');
  });

  it('inclRemainder: heads + remainder = resid_post; computeHeadResults caches in forward order', () => {
    const [stack, labels] = cache.stackHeadResults({ layer: 1, inclRemainder: true, returnLabels: true });
    expect(labels.at(-1)).toBe('remainder');
    expectClose(sumStack(stack), cache.get('blocks.0.hook_resid_post'), 1e-5, 'heads + remainder');
    const c = new ActivationCache(new Map(cache.entries()), true, raw);
    c.computeHeadResults();
    const keys = c.keys();
    expect(keys.indexOf('blocks.0.attn.hook_result')).toBe(keys.indexOf('blocks.0.attn.hook_z') + 1);
    expectClose(c.get('result', 1).index(2, 3), cache.stackHeadResults().index(0, 7), 0, 'L1H3');
  });

  it('stackNeuronResults: Σ neurons + b_out = mlp_out; neuronSlice and labels', () => {
    const [stack, labels] = cache.stackNeuronResults({ layer: 1, returnLabels: true });
    expect(stack.shape).toEqual([cfg.d_mlp, 2, 6, cfg.d_model]);
    expect(labels[5]).toBe('L0N5');
    const mlp0 = sumStack(stack).add(new Tensor(raw.rawWeights.blocks[0].b_out, [cfg.d_model]));
    expectClose(mlp0, cache.get('blocks.0.hook_mlp_out'), 1e-5, 'Σ neurons + b_out');
    // one neuron by hand: post[..., 3] * W_out[3]
    const [one, l1] = cache.stackNeuronResults({ layer: 2, neuronSlice: 3, posSlice: 4, returnLabels: true });
    expect(l1).toEqual(['L0N3', 'L1N3']);
    const post = cache.get('blocks.1.mlp.hook_post').index(1, 4).index(1, 3); // [batch]
    const row = new Tensor(raw.rawWeights.blocks[1].W_out.slice(3 * cfg.d_model, 4 * cfg.d_model), [1, cfg.d_model]);
    expectClose(one.index(0, 1), post.unsqueeze(1).mul(row), 1e-6, 'L1N3 at pos 4');
    const [withRem] = cache.stackNeuronResults({ layer: 1, inclRemainder: true, returnLabels: true });
    expectClose(sumStack(withRem), cache.get('blocks.0.hook_resid_post'), 1e-4, 'neurons + remainder');
  });

  it('getNeuronResults and stackActivation', () => {
    const nr = cache.getNeuronResults(1, [3, 7], 4); // [batch, 2, d_model]
    expect(nr.shape).toEqual([2, 2, cfg.d_model]);
    expectClose(nr.index(1, 0), cache.stackNeuronResults({ layer: 2, neuronSlice: 3, posSlice: 4 }).index(0, 1), 0, 'L1N3');
    const all = cache.getNeuronResults(0); // [batch, pos, d_mlp, d_model]
    expectClose(all.sum(2).add(new Tensor(raw.rawWeights.blocks[0].b_out, [cfg.d_model])), cache.get('blocks.0.hook_mlp_out'), 1e-5, 'Σ neurons + b_out');
    const pats = cache.stackActivation('pattern');
    expect(pats.shape).toEqual([2, 2, cfg.n_heads, 6, 6]);
    expectClose(pats.index(0, 1), cache.get('blocks.1.attn.hook_pattern'), 0, 'pattern 1');
    expectClose(cache.stackActivation('scale', 1, 'ln2').index(0, 0), cache.get('blocks.0.ln2.hook_scale'), 0, 'ln2 scale');
  });
});

describe('logitAttrs', () => {
  it('head attributions + remainder = logit difference - b_U difference, on the folded model (1e-4)', () => {
    const correct = [5, 11];
    const incorrect = [9, 2];
    const stack = fcache.stackHeadResults({ inclRemainder: true, posSlice: -1 }); // [9, batch, d_model]
    const attrs = fcache.logitAttrs(stack, correct, incorrect, { posSlice: -1 }); // [9, batch]
    expect(attrs.shape).toEqual([2 * cfg.n_heads + 1, 2]);
    const bU = folded.rawWeights.b_U;
    for (let b = 0; b < 2; b++) {
      const diff = flogits.get(b, 5, correct[b]) - flogits.get(b, 5, incorrect[b]);
      expect(attrs.index(1, b).sum().item() + bU[correct[b]] - bU[incorrect[b]]).toBeCloseTo(diff, 4);
    }
    // one attribution by hand: centred head output / scale · (W_U[:, c] - W_U[:, i])
    const head = stack.index(0, 6).index(0, 1); // L1H2, prompt 1
    const centred = head.sub(head.mean());
    const s = fcache.get('ln_final.hook_scale').get(1, 5, 0);
    let dot = 0;
    for (let d = 0; d < cfg.d_model; d++) dot += (centred.get(d) / s) * (folded.rawWeights.W_U[d * cfg.d_vocab + 11] - folded.rawWeights.W_U[d * cfg.d_vocab + 2]);
    expect(attrs.get(6, 1)).toBeCloseTo(dot, 5);
  });

  it('accepts one token for all, and [batch, pos] tokens', () => {
    const stack = fcache.decomposeResid(); // [6, 2, 6, d_model]
    const one = fcache.logitAttrs(stack, 4);
    expect(one.shape).toEqual([6, 2, 6]);
    const grid = fcache.logitAttrs(stack, tokens);
    expect(grid.shape).toEqual([6, 2, 6]);
    expect(grid.get(2, 1, 3)).toBeCloseTo(fcache.logitAttrs(stack, tokens[1][3]).get(2, 1, 3), 5);
    expect(() => fcache.logitAttrs(stack, [1, 2], [3])).toThrow(/same shape/);
  });
});

describe('batchless caches and errors', () => {
  it('works on a removeBatchDim cache', async () => {
    const [, c1] = await raw.runWithCache([tokens[0]], { removeBatchDim: true });
    const c = withModel(c1, raw);
    expect(c.hasBatchDim).toBe(false);
    expectClose(sumStack(c.getFullResidDecomposition()), c.get('blocks.1.hook_resid_post'), 1e-4, 'batchless full decomposition');
    expectClose(c.decomposeResid({ posSlice: 2 }).index(0, 0), cache.get('hook_embed').index(0, 0).index(0, 2), 0, 'embed at pos 2');
  });

  it('a HookedTransformer is a CacheModel (what runWithCache passes as the third argument)', () => {
    const asModel: CacheModel = raw;
    const c = new ActivationCache(new Map(cache.entries()), true, asModel);
    expect(c.model).toBe(raw);
    expect(withModel(c, folded)).toBe(c); // a cache that knows its model is kept
  });

  it('without a model, or with a bad layer, the methods say what is wrong', async () => {
    const bare = new ActivationCache(new Map(cache.entries()));
    expect(() => bare.decomposeResid()).toThrow(/needs the model's config and weights/);
    expect(() => cache.accumulatedResid({ layer: 3 })).toThrow(/layer 3 is out of range; allowed 0…2/);
    expect(() => cache.decomposeResid({ mode: 'heads' as never })).toThrow(/mode 'heads' is not allowed/);
    const [, partial] = await raw.runWithCache(tokens, { namesFilter: ['blocks.0.hook_attn_out'] });
    expect(() => withModel(partial, raw).applyLnToStack(partial.get('blocks.0.hook_attn_out').unsqueeze(0))).toThrow(/ln_final.hook_scale/);
  });
});
