/**
 * `npm run train:embedded` recipes: the default one is the recipe recorded in the shipped model's
 * training_summary.json (written by the run that produced models/embedded), and the phases switch at its steps.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { RECIPE_V1, RECIPE_V2, RECIPE_V3, RECIPE_V4, RECIPES, recipePhase } from '../../../training/embedded.ts';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));

describe('embedded model recipes', () => {
  it("the default recipe (v4) is the one models/embedded's training_summary.json records", () => {
    const s = JSON.parse(readFileSync(join(ROOT, 'models', 'embedded', 'training_summary.json'), 'utf8'));
    expect(RECIPES[s.recipe]).toBe(RECIPE_V4);
    expect(s.steps).toBe(RECIPE_V4.steps);
    expect(s.lr).toBe(RECIPE_V4.lr);
    expect(s.phase0.to).toBe(RECIPE_V4.triggerRowsTo);
    expect(s.phase1.weights).toEqual(RECIPE_V4.weights.phase1);
    expect(s.phase2).toEqual({ from: RECIPE_V4.phase2From, weights: RECIPE_V4.weights.phase2 });
    expect(s.phase3).toEqual({ from: RECIPE_V4.phase3From, weights: RECIPE_V4.weights.phase3 });
    expect(s.phase4).toEqual(RECIPE_V4.phase4);
    expect(s.lazyEmbeddingFrom).toBe(RECIPE_V4.lazyEmbeddingFrom);
    for (const [k, v] of Object.entries(RECIPE_V4.mix)) expect(s.mix[k], k).toEqual(v);
    expect(s.ioiWordNames).toEqual({ from: RECIPE_V4.ioiWordNamesFrom, fraction: 0.5 });
  });

  it('phases switch at the recipe steps: trigger rows, then phase 1 options, word names, the later weights', () => {
    expect(recipePhase(RECIPE_V1, 1999)).toEqual({ weights: RECIPE_V1.weights.phase0, ioiWordNameFraction: 0, inductionTriggerRows: true });
    expect(recipePhase(RECIPE_V1, 2000)).toEqual({ weights: RECIPE_V1.weights.phase1, ioiWordNameFraction: 0, inductionTriggerRows: false });
    expect(recipePhase(RECIPE_V1, 2800)).toEqual({ weights: RECIPE_V1.weights.phase2, ioiWordNameFraction: 0.5, inductionTriggerRows: false });
    expect(recipePhase(RECIPE_V1, 4099).weights).toEqual(RECIPE_V1.weights.phase3);
    expect(recipePhase(RECIPE_V2, 2499)).toEqual({ weights: RECIPE_V2.weights.phase0, ioiWordNameFraction: 0, inductionTriggerRows: true });
    expect(recipePhase(RECIPE_V2, 2500)).toEqual({
      weights: RECIPE_V2.weights.phase1, ioiWordNameFraction: 0.5, inductionTriggerRows: false,
      inductionTriggerFraction: 0.5, inductionTextCopyFraction: 0.25, ioiVariety: 0.5,
    });
    expect(recipePhase(RECIPE_V2, 3000).weights).toEqual(RECIPE_V2.weights.phase2);
    expect(recipePhase(RECIPE_V2, 3500).weights).toEqual(RECIPE_V2.weights.phase3);
  });

  it('v3 is v2 with trigger rows of several shapes covering every position of n_ctx (about the same tokens per step) and lazy embedding rows', () => {
    const { mix, lazyEmbeddingFrom, steps, triggerRowsTo, phase2From, phase3From, ioiWordNamesFrom, ...rest } = RECIPE_V3;
    const { mix: mix2, ...rest2 } = RECIPE_V2;
    expect(rest).toEqual({ ...rest2, steps: undefined, triggerRowsTo: undefined, phase2From: undefined, phase3From: undefined, ioiWordNamesFrom: undefined });
    // phase 0 500 steps longer, then v2's phases shifted by 500
    expect([steps, triggerRowsTo, phase2From, phase3From, ioiWordNamesFrom]).toEqual([RECIPE_V2.steps, RECIPE_V2.triggerRowsTo, RECIPE_V2.phase2From, RECIPE_V2.phase3From, RECIPE_V2.ioiWordNamesFrom].map((s) => s + 500));
    expect(lazyEmbeddingFrom).toBe(0);
    const { triggerShapes, ...others } = mix;
    expect(others).toEqual(mix2);
    expect(Math.max(...triggerShapes!.map((s) => s.ctx))).toBe(128);
    for (const s of triggerShapes!) expect(s.batch * (s.ctx + 1)).toBeGreaterThan(2000);
    expect(RECIPES.v3).toBe(RECIPE_V3);
  });

  it('v4 is v3 for its first 4,500 steps, then phase 4 (its weights, long trigger shapes only)', () => {
    for (const step of [0, 2999, 3000, 3500, 4000, 4499]) expect(recipePhase(RECIPE_V4, step), `step ${step}`).toEqual(recipePhase(RECIPE_V3, step));
    const p4 = recipePhase(RECIPE_V4, 4500);
    expect(p4.weights).toEqual(RECIPE_V4.phase4!.weights);
    expect(p4.triggerShapes!.map((t) => t.ctx)).toEqual([64, 128]);
    expect(p4.inductionTriggerFraction).toBe(0.5);
    expect(p4.ioiWordNameFraction).toBe(0.5);
    expect(RECIPES.v4).toBe(RECIPE_V4);
  });
});

