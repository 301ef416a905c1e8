/**
 * TransformerLens's start_at_layer / stop_at_layer, and Lensboard's logitPositions: each equals
 * the corresponding slice of a full run (1e-5).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HookedTransformer } from '../../../hooks/HookedTransformer.ts';
import { ablateHeads } from '../../../hooks/interventions.ts';
import type { Tensor } from '../../../hooks/tensor.ts';
import { cloneWeights, expectClose, tinyConfig, tinyWeights } from './helpers.ts';

const cfg = tinyConfig({ n_layers: 3 });
const original = tinyWeights(cfg, 5);
const tokens = [[4, 8, 15, 16, 23, 42], [1, 2, 3, 5, 8, 13]];
let model: HookedTransformer;
let logits: Tensor;

beforeAll(async () => {
  model = await HookedTransformer.fromWeights(cfg, cloneWeights(original), { threads: 1 });
  logits = await model.forward(tokens);
});
afterAll(async () => model?.dispose());

describe('startAtLayer / stopAtLayer / logitPositions', () => {
  it('stopAtLayer L returns resid_pre of block L (resid_post of the last block for L = n_layers)', async () => {
    const [, cache] = await model.runWithCache(tokens);
    for (let L = 0; L <= cfg.n_layers; L++) {
      const resid = (await model.forward(tokens, { stopAtLayer: L })) as Tensor;
      const expected = L < cfg.n_layers ? cache.get(`blocks.${L}.hook_resid_pre`) : cache.get(`blocks.${L - 1}.hook_resid_post`);
      expectClose(resid, expected, 1e-5, `stopAtLayer ${L}`);
    }
  });

  it('startAtLayer L from the cached resid_pre gives the full run logits, and an ablation after L its effect', async () => {
    const [, cache] = await model.runWithCache(tokens);
    for (let L = 0; L < cfg.n_layers; L++) {
      const out = await model.forward(tokens, { startAtLayer: L, residual: cache.get(`blocks.${L}.hook_resid_pre`) });
      expectClose(out, logits, 1e-5, `startAtLayer ${L}`);
    }
    // Ablating a head of block 2 from a residual started at block 1 = the same ablation in a full run.
    const full = await model.forward(tokens, { interventions: [ablateHeads(2, 1)] });
    const started = await model.forward(tokens, { startAtLayer: 1, residual: cache.get('blocks.1.hook_resid_pre'), interventions: [ablateHeads(2, 1)] });
    expectClose(started, full, 1e-5, 'ablation from layer 1');
  });

  it('logitPositions returns the logits of the chosen positions only', async () => {
    const positions = [[5], [2]];
    const some = await model.forward(tokens, { logitPositions: positions });
    expect(some.shape).toEqual([2, 1, cfg.d_vocab]);
    expectClose(some.index(0, 0).index(0, 0), logits.index(0, 0).index(0, 5), 1e-5, 'row 0, pos 5');
    expectClose(some.index(0, 1).index(0, 0), logits.index(0, 1).index(0, 2), 1e-5, 'row 1, pos 2');
  });

  it('bad layers, a missing residual and bad positions are clear errors', async () => {
    await expect(model.forward(tokens, { stopAtLayer: 4 })).rejects.toThrow('stopAtLayer must be an integer in 0…3; got 4');
    await expect(model.forward(tokens, { startAtLayer: 1 })).rejects.toThrow(/startAtLayer needs `residual`/);
    await expect(model.forward(tokens, { logitPositions: [[6], [0]] })).rejects.toThrow('logitPositions[0] has 6; allowed: integers 0…5');
    await expect(model.forward(tokens, { stopAtLayer: 1, returnType: 'loss' })).rejects.toThrow(/returnType must be 'logits'/);
  });
});
