/** In-graph interventions (ablateHeads, ablateNeurons, ablatePositions, patchFrom, raw mask specs) = the same edit done by a JS hook (1e-5), and their errors. */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HookedTransformer } from '../../../hooks/HookedTransformer.ts';
import type { HookName } from '../../../hooks/hookPoints.ts';
import { ablateHeads, ablateNeurons, ablatePositions, patchFrom, type InterventionSpec } from '../../../hooks/interventions.ts';
import { referenceForward } from '../../../hooks/reference.ts';
import { Tensor } from '../../../hooks/tensor.ts';
import { cloneWeights, expectClose, mapIndexed, setHeads, tinyConfig, tinyWeights, tokenBatch, type PlainHook } from './helpers.ts';

const ATOL = 1e-5; // in-graph intervention vs the JS-hook version of the same edit
const cfg = tinyConfig({ n_layers: 2, d_model: 16, n_heads: 4, d_vocab: 60 }); // d_head 4, d_mlp 64
const original = tinyWeights(cfg, 61);
const tokens = tokenBatch(3, 7, cfg.d_vocab, 4);
const other = tokenBatch(3, 7, cfg.d_vocab, 17); // the "corrupted" prompts to patch from

let model: HookedTransformer;
let clean: Tensor;

beforeAll(async () => {
  model = await HookedTransformer.fromWeights(cfg, cloneWeights(original), { threads: 1 });
  clean = await model.forward(tokens);
});

afterAll(async () => {
  await model?.dispose();
});

/**
 * The intervention (in the graph) and the JS hook give the same logits and the same cached value at
 * the hook point and downstream (ATOL), and the edit really changes the logits.
 */
async function expectSameAsHook(specs: InterventionSpec[], hook: HookName, fn: PlainHook): Promise<void> {
  const names = [hook, 'blocks.1.hook_resid_post', 'ln_final.hook_normalized'] as HookName[];
  const [ivLogits, ivCache] = await model.runWithCache(tokens, { interventions: specs, namesFilter: names });
  const [hkLogits, hkCache] = await model.withHooks([[hook, fn]], (m) => m.runWithCache(tokens, { namesFilter: names }));
  expectClose(ivLogits, hkLogits, ATOL, 'logits: intervention vs hook');
  for (const n of names) expectClose(ivCache.get(n), hkCache.get(n), ATOL, n);
  // The reference with the same hook agrees too (1e-4), so both are the intended edit.
  expectClose(ivLogits, referenceForward(cfg, original, tokens, { hooks: { [hook]: fn } }).logits, 1e-4, 'logits vs reference');
  expect(ivLogits.sub(clean).abs().max().item(), 'the intervention changes the logits').toBeGreaterThan(1e-4);
}

describe('interventions = JS hooks (1e-5)', () => {
  it('zero-ablate heads 1 and 3 of layer 0 at hook_z', async () => {
    await expectSameAsHook([ablateHeads(0, [1, 3])], 'blocks.0.attn.hook_z', setHeads([1, 3], () => 0));
  });

  it('zero-ablate head 2 of layer 1 at hook_result', async () => {
    await expectSameAsHook([ablateHeads(1, 2, { at: 'result' })], 'blocks.1.attn.hook_result', setHeads([2], () => 0));
  });

  it('mean-ablate head 0 of layer 1 (value = mean of z over batch and pos, shape [1, 1, n_heads, d_head])', async () => {
    const [, cache] = await model.runWithCache(other, { namesFilter: 'blocks.1.attn.hook_z' });
    const mean = cache.get('z', 1).mean(0, { keepdim: true }).mean(1, { keepdim: true }); // [1, 1, n_heads, d_head]
    expect(mean.shape).toEqual([1, 1, cfg.n_heads, cfg.d_head]);
    await expectSameAsHook(
      [ablateHeads(1, 0, { value: mean })],
      'blocks.1.attn.hook_z',
      setHeads([0], (_b, _p, h, e) => mean.get(0, 0, h, e)),
    );
  });

  it('ablate heads only at some positions and batch rows', async () => {
    await expectSameAsHook(
      [ablateHeads(0, [0, 2], { positions: [1, 4], batch: 2 })],
      'blocks.0.attn.hook_z',
      (a) => mapIndexed(a, (v, [b, p, h]) => (b === 2 && (p === 1 || p === 4) && (h === 0 || h === 2) ? 0 : v)),
    );
  });

  it('ablate MLP neurons [0, 5, 63] of layer 0, and neuron 7 of layer 1 at position 3 with value 2.5', async () => {
    await expectSameAsHook([ablateNeurons(0, [0, 5, 63])], 'blocks.0.mlp.hook_post', (a) =>
      mapIndexed(a, (v, [, , n]) => (n === 0 || n === 5 || n === 63 ? 0 : v)),
    );
    await expectSameAsHook([ablateNeurons(1, 7, { positions: 3, value: 2.5 })], 'blocks.1.mlp.hook_post', (a) =>
      mapIndexed(a, (v, [, p, n]) => (n === 7 && p === 3 ? 2.5 : v)),
    );
  });

  it('ablate residual positions [0, 2] at resid_pre of layer 1, and the last position (-1) at resid_mid of layer 0', async () => {
    await expectSameAsHook([ablatePositions(1, [0, 2])], 'blocks.1.hook_resid_pre', (a) =>
      mapIndexed(a, (v, [, p]) => (p === 0 || p === 2 ? 0 : v)),
    );
    await expectSameAsHook([ablatePositions(0, -1, { at: 'resid_mid' })], 'blocks.0.hook_resid_mid', (a) =>
      mapIndexed(a, (v, [, p]) => (p === tokens[0].length - 1 ? 0 : v)),
    );
  });

  it("patch resid_pre of layer 1 at position 4 from another prompt's cache", async () => {
    const [, src] = await model.runWithCache(other, { namesFilter: 'blocks.1.hook_resid_pre' });
    const source = src.get('resid_pre', 1); // [batch, pos, d_model]
    await expectSameAsHook([patchFrom('blocks.1.hook_resid_pre', source, { pos: 4 })], 'blocks.1.hook_resid_pre', (a) =>
      mapIndexed(a, (v, [b, p, d]) => (p === 4 ? source.get(b, p, d) : v)),
    );
  });

  it("patch head 3's z of layer 0 from another cache (all positions), and the whole resid_post of layer 0", async () => {
    const [, src] = await model.runWithCache(other, { namesFilter: ['blocks.0.attn.hook_z', 'blocks.0.hook_resid_post'] });
    const z = src.get('z', 0);
    await expectSameAsHook([patchFrom('blocks.0.attn.hook_z', z, { head: 3 })], 'blocks.0.attn.hook_z', setHeads([3], (b, p, h, e) => z.get(b, p, h, e)));
    const rp = src.get('resid_post', 0);
    const [ivLogits] = await model.runWithCache(tokens, { interventions: [patchFrom('blocks.0.hook_resid_post', rp)] });
    // Patching the whole residual stream after layer 0 makes layer 1 see the other prompt: logits = the other run's (1e-5).
    expectClose(ivLogits, await model.forward(other), ATOL, 'fully patched resid_post');
  });

  it('a per-batch-row mask: row b ablates head b (raw spec with mask [batch, 1, n_heads, 1])', async () => {
    const mask = mapIndexed(Tensor.zeros([3, 1, cfg.n_heads, 1]), (_v, [b, , h]) => (b === h ? 1 : 0));
    await expectSameAsHook([{ hook: 'blocks.0.attn.hook_z', mask, value: 0 }], 'blocks.0.attn.hook_z', (a) =>
      mapIndexed(a, (v, [b, , h]) => (b === h ? 0 : v)),
    );
  });

  it('raw spec with `where` and a number value; two specs on one hook compose (the later wins where they overlap)', async () => {
    await expectSameAsHook(
      [
        { hook: 'blocks.1.attn.hook_pattern', where: { head: 1, query_pos: [5, 6] }, value: 0 },
        { hook: 'blocks.1.attn.hook_pattern', where: { head: [1, 2], query_pos: 6, key_pos: 0 }, value: 0.5 },
      ],
      'blocks.1.attn.hook_pattern',
      (a) =>
        mapIndexed(a, (v, [, h, q, k]) => {
          if ((h === 1 || h === 2) && q === 6 && k === 0) return 0.5;
          if (h === 1 && (q === 5 || q === 6)) return 0;
          return v;
        }),
    );
  });

  it('interventions in two layers at once, together with a JS hook elsewhere', async () => {
    const specs = [ablateHeads(0, 1), ablateNeurons(1, [2, 3])];
    const extra: PlainHook = (a) => a.mul(0.9);
    const viaGraph = await model.runWithHooks(tokens, { interventions: specs, fwdHooks: [['blocks.1.hook_resid_mid', extra]] });
    const viaHooks = await model.runWithHooks(tokens, {
      fwdHooks: [
        ['blocks.0.attn.hook_z', setHeads([1], () => 0)],
        ['blocks.1.hook_resid_mid', extra],
        ['blocks.1.mlp.hook_post', (a) => mapIndexed(a, (v, [, , n]) => (n === 2 || n === 3 ? 0 : v))],
      ],
    });
    expectClose(viaGraph, viaHooks, ATOL, 'logits');
  });

  it('with a padded batch (attentionMask), = the JS hook with the same mask', async () => {
    const mask = [
      [0, 0, 1, 1, 1, 1, 1],
      [1, 1, 1, 1, 1, 1, 1],
      [1, 1, 1, 1, 0, 0, 0],
    ];
    const iv = await model.forward(tokens, { attentionMask: mask, interventions: [ablateHeads(1, [0, 1])] });
    const hk = await model.runWithHooks(tokens, { attentionMask: mask, fwdHooks: [['blocks.1.attn.hook_z', setHeads([0, 1], () => 0)]] });
    expectClose(iv, hk, ATOL, 'logits');
  });

  it('an intervention is not sticky: the next run without it is clean', async () => {
    await model.forward(tokens, { interventions: [ablateHeads(0, [0, 1, 2, 3])] });
    expectClose(await model.forward(tokens), clean, 0, 'logits');
  });
});

describe('intervention errors', () => {
  it('out-of-range head index names the hook, the index and the allowed range', async () => {
    await expect(model.forward(tokens, { interventions: [ablateHeads(0, 4)] })).rejects.toThrow(
      /blocks\.0\.attn\.hook_z.*head index 4 is out of range; allowed 0…3/,
    );
    await expect(model.forward(tokens, { interventions: [ablatePositions(1, 7)] })).rejects.toThrow(/pos index 7 is out of range; allowed 0…6/);
  });

  it('a dim the hook point does not have is named, with the dims it has', async () => {
    await expect(
      model.forward(tokens, { interventions: [{ hook: 'blocks.0.attn.hook_z', where: { d_mlp: 0 } }] }),
    ).rejects.toThrow(/'blocks\.0\.attn\.hook_z': it has no 'd_mlp' dimension; its dims are batch, pos, head, d_head/);
    await expect(
      model.forward(tokens, { interventions: [{ hook: 'blocks.0.hook_resid_pre', where: { heads: 0 } as never }] }),
    ).rejects.toThrow(/no 'heads' dimension/);
  });

  it('an unknown hook point, and a value that does not broadcast, are clear errors', async () => {
    await expect(
      model.forward(tokens, { interventions: [{ hook: 'blocks.5.attn.hook_z' as HookName, value: 0 }] }),
    ).rejects.toThrow(/unknown hook point 'blocks\.5\.attn\.hook_z'/);
    await expect(
      model.forward(tokens, { interventions: [ablateHeads(0, 1, { value: Tensor.zeros([cfg.n_heads, cfg.d_head]) })] }),
    ).rejects.toThrow(/shape \[4, 4\] does not broadcast to the hook's shape \[3, 7, 4, 4\]/);
  });
});
