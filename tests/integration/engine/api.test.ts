/** HookedTransformer's API surface: losses (= lmCrossEntropyLoss), runWithCache options, ActivationCache access, input validation errors, hook_tokens. */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HookedTransformer, type ReturnType } from '../../../hooks/HookedTransformer.ts';
import { listHookPoints, type HookName } from '../../../hooks/hookPoints.ts';
import { lmCrossEntropyLoss } from '../../../hooks/loss.ts';
import { referenceForward } from '../../../hooks/reference.ts';
import { Tensor } from '../../../hooks/tensor.ts';
import { cloneWeights, expectClose, expectExactlyEqual, scaleBy, tinyConfig, tinyWeights, tokenBatch } from './helpers.ts';

const cfg = tinyConfig({ n_layers: 2, d_model: 16, n_heads: 4, d_vocab: 60, n_ctx: 32 });
const original = tinyWeights(cfg, 71);
const tokens = tokenBatch(2, 9, cfg.d_vocab, 6);

let model: HookedTransformer;
let logits: Tensor;

beforeAll(async () => {
  model = await HookedTransformer.fromWeights(cfg, cloneWeights(original), { threads: 1 });
  logits = await model.forward(tokens);
});

afterAll(async () => {
  await model?.dispose();
});

const relErr = (a: number, b: number) => Math.abs(a - b) / Math.abs(b);

describe('loss', () => {
  it("returnType 'loss' = lmCrossEntropyLoss(logits, tokens) (1e-5 relative), and matches the reference's logits", async () => {
    const loss = (await model.forward(tokens, { returnType: 'loss' })) as number;
    expect(typeof loss).toBe('number');
    const want = lmCrossEntropyLoss(logits, tokens);
    expect(relErr(loss, want)).toBeLessThanOrEqual(1e-5);
    const refWant = lmCrossEntropyLoss(referenceForward(cfg, original, tokens).logits, tokens);
    expect(relErr(loss, refWant)).toBeLessThanOrEqual(1e-5);
  });

  it('lossPerToken: Tensor [batch, pos - 1] = lmCrossEntropyLoss(..., perToken) (1e-5 abs, values ~4)', async () => {
    const per = (await model.forward(tokens, { returnType: 'loss', lossPerToken: true })) as Tensor;
    expect(per).toBeInstanceOf(Tensor);
    expect(per.shape).toEqual([2, 8]);
    expectClose(per, lmCrossEntropyLoss(logits, tokens, null, true), 1e-5, 'per-token loss');
  });

  it("'both' returns the same logits and loss; 'none' returns undefined but still fills the cache", async () => {
    const both = await model.forward(tokens, { returnType: 'both' });
    expectClose(both.logits, logits, 1e-6, 'logits');
    expect(relErr(both.loss as number, lmCrossEntropyLoss(logits, tokens))).toBeLessThanOrEqual(1e-5);
    const [out, cache] = await model.runWithCache(tokens, { returnType: 'none', namesFilter: 'blocks.1.hook_resid_post' });
    expect(out).toBeUndefined();
    const [, full] = await model.runWithCache(tokens, { namesFilter: 'blocks.1.hook_resid_post' });
    expectClose(cache.get('resid_post', 1), full.get('resid_post', 1), 1e-6, 'cache with returnType none');
  });

  it('with an attention mask = lmCrossEntropyLoss with the mask (mean 1e-5 relative, per token 1e-5 abs with exact zeros where masked)', async () => {
    const mask = [
      [0, 0, 0, 1, 1, 1, 1, 1, 1],
      [1, 1, 1, 1, 1, 1, 0, 0, 0],
    ];
    const masked = await model.forward(tokens, { attentionMask: mask });
    const loss = (await model.forward(tokens, { attentionMask: mask, returnType: 'loss' })) as number;
    expect(relErr(loss, lmCrossEntropyLoss(masked, tokens, mask))).toBeLessThanOrEqual(1e-5);
    expect(relErr(loss, lmCrossEntropyLoss(masked, tokens))).toBeGreaterThan(1e-3); // the mask matters
    const per = (await model.forward(tokens, { attentionMask: mask, returnType: 'loss', lossPerToken: true })) as Tensor;
    expectClose(per, lmCrossEntropyLoss(masked, tokens, mask, true), 1e-5, 'per-token masked loss');
    for (let b = 0; b < 2; b++) {
      for (let p = 0; p < 8; p++) if (!(mask[b][p] && mask[b][p + 1])) expect(per.get(b, p)).toBe(0);
    }
  });

  it('with hooks: runWithHooks loss = lmCrossEntropyLoss of the hooked logits', async () => {
    const hooks = [['blocks.0.hook_mlp_out', scaleBy(3)]] as const;
    const hooked = await model.runWithHooks(tokens, { fwdHooks: hooks });
    const loss = (await model.runWithHooks(tokens, { fwdHooks: hooks, returnType: 'loss' })) as number;
    expect(relErr(loss, lmCrossEntropyLoss(hooked, tokens))).toBeLessThanOrEqual(1e-5);
    expect(relErr(loss, lmCrossEntropyLoss(logits, tokens))).toBeGreaterThan(1e-4);
  });

  it('a loss needs at least 2 tokens', async () => {
    await expect(model.forward([[3]], { returnType: 'loss' })).rejects.toThrow(/at least 2 tokens/);
  });
});

describe('runWithCache options', () => {
  const standard = listHookPoints(cfg).map((h) => h.name).filter((n) => !n.endsWith('attn.hook_result'));

  it('default: every standard hook point in model.hookPoints() order, no hook_result', async () => {
    const [, cache] = await model.runWithCache(tokens);
    expect(cache.keys()).toEqual(model.hookPoints().map((h) => h.name).filter((n) => !n.endsWith('hook_result')));
    expect(cache.keys()).toEqual(standard);
    expect(cache.has('result', 0)).toBe(false);
    expect(() => cache.get('blocks.0.attn.hook_result')).toThrow(/has no 'blocks\.0\.attn\.hook_result'.*namesFilter/);
  });

  it('namesFilter as a name, a list (returned in forward order), and a predicate', async () => {
    const [, one] = await model.runWithCache(tokens, { namesFilter: 'blocks.1.attn.hook_pattern' });
    expect(one.keys()).toEqual(['blocks.1.attn.hook_pattern']);
    const [, list] = await model.runWithCache(tokens, {
      namesFilter: ['ln_final.hook_scale', 'blocks.1.attn.hook_result', 'hook_embed', 'blocks.0.mlp.hook_post'],
    });
    expect(list.keys()).toEqual(['hook_embed', 'blocks.0.mlp.hook_post', 'blocks.1.attn.hook_result', 'ln_final.hook_scale']);
    const [, pred] = await model.runWithCache(tokens, { namesFilter: (n) => n.endsWith('hook_resid_pre') || n.endsWith('hook_result') });
    expect(pred.keys()).toEqual(['blocks.0.hook_resid_pre', 'blocks.0.attn.hook_result', 'blocks.1.hook_resid_pre', 'blocks.1.attn.hook_result']);
    // values agree with the reference whichever variant of the graph computed them (1e-4)
    const ref = referenceForward(cfg, original, tokens);
    for (const [k, v] of [...list.entries(), ...pred.entries(), ...one.entries()]) expectClose(v, ref.cache.get(k as HookName)!, 1e-4, k);
  });

  it('an unknown name in namesFilter throws, naming it', async () => {
    await expect(model.runWithCache(tokens, { namesFilter: 'blocks.2.hook_resid_pre' as HookName })).rejects.toThrow(
      /namesFilter: unknown hook point 'blocks\.2\.hook_resid_pre'/,
    );
    await expect(model.runWithCache(tokens, { namesFilter: ['hook_embed', 'hook_bogus' as HookName] })).rejects.toThrow(/'hook_bogus'/);
  });

  it('removeBatchDim: batch 1 drops dim 0 of every value; batch 2 throws', async () => {
    const [, withBatch] = await model.runWithCache([tokens[0]]);
    const [, noBatch] = await model.runWithCache([tokens[0]], { removeBatchDim: true });
    expect(noBatch.hasBatchDim).toBe(false);
    expect(noBatch.keys()).toEqual(withBatch.keys());
    for (const [k, v] of withBatch.entries()) {
      const s = noBatch.get(k);
      expect(s.shape, k).toEqual(v.shape.slice(1));
      expectExactlyEqual(s, v.squeeze(0), k);
    }
    expect(noBatch.get('pattern', 1).shape).toEqual([cfg.n_heads, 9, 9]);
    await expect(model.runWithCache(tokens, { removeBatchDim: true })).rejects.toThrow(/removeBatchDim needs a batch of one; this batch has 2/);
  });

  it("cache.get shorthand: ('pattern', 0), ('scale', 1, 'ln2'), ('scale'), ('embed'), ('resid_pre', 1) = the full names", async () => {
    const [, cache] = await model.runWithCache(tokens);
    expect(cache.get('pattern', 0)).toBe(cache.get('blocks.0.attn.hook_pattern'));
    expect(cache.get('attn', 1)).toBe(cache.get('blocks.1.attn.hook_pattern'));
    expect(cache.get('scale', 1, 'ln2')).toBe(cache.get('blocks.1.ln2.hook_scale'));
    expect(cache.get('scale')).toBe(cache.get('ln_final.hook_scale'));
    expect(cache.get('embed')).toBe(cache.get('hook_embed'));
    expect(cache.get('resid_pre', 1)).toBe(cache.get('blocks.1.hook_resid_pre'));
    expect(cache.size).toBe(cache.keys().length);
    expect(() => cache.get('resid_pre')).toThrow(/needs a layer index/);
  });
});

describe('input validation errors', () => {
  it('token id out of range, negative, or not an integer', async () => {
    await expect(model.forward([[1, 2, 60]])).rejects.toThrow('token id 60 at [0][2] is not an integer in [0, 60)');
    await expect(model.forward([[1, -1]])).rejects.toThrow('token id -1 at [0][1] is not an integer in [0, 60)');
    await expect(model.forward([[1, 2], [3, 4.5]])).rejects.toThrow('token id 4.5 at [1][1] is not an integer in [0, 60)');
  });

  it('a ragged batch without a mask', async () => {
    await expect(model.forward([[1, 2, 3], [4, 5]])).rejects.toThrow(
      /same length \(pad it and pass attentionMask\); row 0 has 3, row 1 has 2/,
    );
  });

  it('more tokens than n_ctx', async () => {
    const long = [Array.from({ length: 33 }, (_, i) => i % 60)];
    await expect(model.forward(long)).rejects.toThrow("input has 33 tokens; this model's context (n_ctx) is 32");
    await expect(model.forward([long[0].slice(0, 32)])).resolves.toBeInstanceOf(Tensor); // exactly n_ctx is fine
  });

  it('empty input', async () => {
    await expect(model.forward([])).rejects.toThrow(/input must be a string, a non-empty string\[\], number\[\] or number\[\]\[\]/);
    await expect(model.forward([[]])).rejects.toThrow('input has no tokens');
  });

  it('a bad returnType', async () => {
    await expect(model.forward(tokens, { returnType: 'logit' as ReturnType })).rejects.toThrow(
      "returnType must be 'logits', 'loss', 'both' or 'none'; got 'logit'",
    );
  });

  it('attentionMask of the wrong shape or with values other than 0/1', async () => {
    await expect(model.forward(tokens, { attentionMask: [[1, 1, 1]] })).rejects.toThrow('attentionMask must be [2, 9] like the tokens');
    await expect(model.forward(tokens, { attentionMask: [tokens[0].map(() => 1), [1, 1]] })).rejects.toThrow(
      'attentionMask must be [2, 9] like the tokens',
    );
    await expect(model.forward([[1, 2]], { attentionMask: [[1, 2]] })).rejects.toThrow('attentionMask[0][1] is 2; allowed: 0 or 1');
  });

  it('text input without a tokenizer, and a Tensor of the wrong rank', async () => {
    await expect(model.forward('hello')).rejects.toThrow(/Text input needs a tokenizer/);
    await expect(model.forward(Tensor.zeros([1, 2, 3]))).rejects.toThrow('input tensor must be [pos] or [batch, pos] of token ids; got shape [1, 2, 3]');
  });

  it('other input forms give the same logits: number[], Tensor [pos] and [batch, pos]', async () => {
    const row = tokens[0];
    const want = await model.forward([row]);
    expectExactlyEqual(await model.forward(row), want, 'number[]');
    expectExactlyEqual(await model.forward(new Tensor(Float32Array.from(row), [row.length])), want, 'Tensor [pos]');
    expectExactlyEqual(await model.forward(new Tensor(Float32Array.from(tokens.flat()), [2, 9])), logits, 'Tensor [batch, pos]');
  });
});

describe('hook_tokens (useHookTokens)', () => {
  let withTokens: HookedTransformer;
  beforeAll(async () => {
    withTokens = await HookedTransformer.fromWeights(cfg, cloneWeights(original), { threads: 1, useHookTokens: true });
  });
  afterAll(async () => {
    await withTokens?.dispose();
  });

  it('is the first hook point, caches the ids, and a hook on it replaces the tokens the model sees', async () => {
    expect(withTokens.hookPoints()[0].name).toBe('hook_tokens');
    const [, cache] = await withTokens.runWithCache(tokens);
    expect(cache.keys()[0]).toBe('hook_tokens');
    expect(cache.get('hook_tokens').toArray()).toEqual(tokens);
    const swapped = tokens.map((r) => r.map((t) => (t + 1) % cfg.d_vocab));
    const hooked = await withTokens.runWithHooks(tokens, { fwdHooks: [['hook_tokens', (a) => a.map((t) => (t + 1) % cfg.d_vocab)]] });
    expectExactlyEqual(hooked, await withTokens.forward(swapped), 'logits');
  });
});
