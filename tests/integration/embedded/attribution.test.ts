/**
 * Attribution patching on the shipped embedded model's IOI (the target): clean, an ABBA prompt;
 * corrupted, the same prompt with the two names swapped. Attribution patching of every head's output
 * over all positions correlates with activation patching at Pearson r ≥ 0.9 (whatever model is in
 * models/embedded: the assertion is the target, not one model's figure; notebook 05 reports each kind's r).
 */
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { getAttrPatchAttnHeadOutAllPos, pearsonCorrelation } from '../../../hooks/analysis/attribution.ts';
import { logitDiffMetric, normalisedMetric } from '../../../hooks/analysis/metrics.ts';
import { getActPatchAttnHeadOutAllPos } from '../../../hooks/analysis/patching.ts';
import { fillIoiTemplate } from '../../../hooks/datasets/ioi.ts';
import { HookedTransformer } from '../../../hooks/HookedTransformer.ts';

const DIR = join(fileURLToPath(new URL('../../../', import.meta.url)), 'models', 'embedded');
let model: HookedTransformer;

beforeAll(async () => {
  model = await HookedTransformer.fromPretrained(DIR);
}, 120_000);
afterAll(async () => model?.dispose());

describe('embedded model: attribution patching of IOI', () => {
  it('head outputs over all positions: Pearson r ≥ 0.9 with activation patching', async () => {
    const clean = model.toTokens(fillIoiTemplate(0, 'Mary', 'John', 'ABBA', 'store', 'drink').prompt);
    const corrupted = model.toTokens(fillIoiTemplate(0, 'John', 'Mary', 'ABBA', 'store', 'drink').prompt);
    const diff = logitDiffMetric({ correct: model.toSingleToken(' Mary'), incorrect: model.toSingleToken(' John') });
    const [cleanLogits, cleanCache] = await model.runWithCache(clean);
    const metric = normalisedMetric(diff, diff(cleanLogits), diff(await model.forward(corrupted)));
    const activation = await getActPatchAttnHeadOutAllPos(model, corrupted, cleanCache, metric);
    const attribution = await getAttrPatchAttnHeadOutAllPos(model, corrupted, cleanCache, metric);
    expect(attribution.shape).toEqual(activation.shape);
    expect(pearsonCorrelation(attribution.data, activation.data)).toBeGreaterThanOrEqual(0.9);
  });
});
