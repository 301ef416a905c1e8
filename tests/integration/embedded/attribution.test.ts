/**
 * Attribution patching on the shipped embedded model's IOI (issue 20): clean, an ABBA prompt; corrupted, the same
 * prompt with the two names swapped. Issue 20's target was Pearson r ≥ 0.9 with activation patching for every head's
 * output over all positions (v1: 0.933). On v4 (issue 19's model) that r is 0.661: one patch leaves the linear regime.
 * Patching the previous-token head L0H3 at every position at once moves the metric by 0.94 (of the clean − corrupted
 * gap) while its gradient estimate is 0.16: its output reaches layer 1's keys through block 0's MLP (model card, "From
 * the weights"), a non-linear path, and a whole-prompt patch of it is a large change. Every other head is linear
 * enough: over layers ≥ 1 the all-positions r is ≥ 0.9, and head outputs patched one position at a time (TransformerLens's
 * `get_act_patch_attn_head_out_by_pos`, small patches) give r ≥ 0.9 with L0H3 included. This test asserts those, and
 * that the outlier is L0H3; notebook 05 reports each kind's r.
 */
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { getAttrPatchAttnHeadOutAllPos, getAttrPatchAttnHeadOutByPos, pearsonCorrelation } from '../../../hooks/analysis/attribution.ts';
import { logitDiffMetric, normalisedMetric } from '../../../hooks/analysis/metrics.ts';
import { getActPatchAttnHeadOutAllPos, getActPatchAttnHeadOutByPos } from '../../../hooks/analysis/patching.ts';
import { fillIoiTemplate } from '../../../hooks/datasets/ioi.ts';
import { HookedTransformer } from '../../../hooks/HookedTransformer.ts';
import type { Tensor } from '../../../hooks/tensor.ts';

const DIR = join(fileURLToPath(new URL('../../../', import.meta.url)), 'models', 'embedded');
let model: HookedTransformer;

beforeAll(async () => {
  model = await HookedTransformer.fromPretrained(DIR);
}, 120_000);
afterAll(async () => model?.dispose());

describe('embedded model: attribution patching of IOI', () => {
  it('head outputs: r ≥ 0.9 by position, and over all positions for layers ≥ 1; the all-positions outlier is the previous-token head L0H3', async () => {
    const clean = model.toTokens(fillIoiTemplate(0, 'Mary', 'John', 'ABBA', 'store', 'drink').prompt);
    const corrupted = model.toTokens(fillIoiTemplate(0, 'John', 'Mary', 'ABBA', 'store', 'drink').prompt);
    const diff = logitDiffMetric({ correct: model.toSingleToken(' Mary'), incorrect: model.toSingleToken(' John') });
    const [cleanLogits, cleanCache] = await model.runWithCache(clean);
    const metric = normalisedMetric(diff, diff(cleanLogits), diff(await model.forward(corrupted)));

    const actByPos = await getActPatchAttnHeadOutByPos(model, corrupted, cleanCache, metric); // [layer, pos, head]
    const attrByPos = await getAttrPatchAttnHeadOutByPos(model, corrupted, cleanCache, metric);
    expect(attrByPos.shape).toEqual(actByPos.shape);
    expect(pearsonCorrelation(attrByPos.data, actByPos.data)).toBeGreaterThanOrEqual(0.9); // measured 0.959

    const act = await getActPatchAttnHeadOutAllPos(model, corrupted, cleanCache, metric); // [layer, head]
    const attr = await getAttrPatchAttnHeadOutAllPos(model, corrupted, cleanCache, metric);
    expect(attr.shape).toEqual(act.shape);
    const H = model.cfg.n_heads;
    const fromLayer1 = (t: Tensor) => t.data.slice(H); // layers ≥ 1, [layer − 1, head] flattened
    expect(pearsonCorrelation(fromLayer1(attr), fromLayer1(act))).toBeGreaterThanOrEqual(0.9);
    // The one non-linear patch: L0H3 at every position (measured activation 0.94, attribution 0.16; all heads r 0.661)
    const gaps = Array.from(act.data, (v, i) => Math.abs(v - attr.data[i]));
    expect(gaps.indexOf(Math.max(...gaps))).toBe(3); // L0H3
    expect(act.get(0, 3)).toBeGreaterThan(0.5);
    expect(attr.get(0, 3)).toBeLessThan(0.5 * act.get(0, 3));
  }, 120_000);
});
