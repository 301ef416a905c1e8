/**
 * Feature dashboards against brute force: each feature's top contexts are its k largest activations
 * over every position (computed here from the plain model's cache and the plain-TypeScript SAE), with
 * the window's per-token activations; density, maximum and mean; the logit weights W_dec[f] · W_U;
 * the histogram; the file written beside the SAE reads back.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HookedTransformer } from '../../../hooks/HookedTransformer.ts';
import { computeFeatureDashboards, loadFeatureDashboards, saveFeatureDashboards, type FeatureDashboards } from '../../../hooks/sae/dashboard.ts';
import { Sae } from '../../../hooks/sae/Sae.ts';
import { randomSaeWeights, refEncodeRow, type RefSaeConfig } from '../../helpers/sae.ts';
import { writeTinyCheckpoint } from '../cli/tinyModel.ts';

const BOS = 50256;
const HOOK = 'blocks.1.hook_resid_pre';
const ref: RefSaeConfig = { architecture: 'topk', d_in: 32, d_sae: 24, k: 5, apply_b_dec_to_input: true, normalize_activations: 'none' };
const w = randomSaeWeights('topk', 32, 24, 8);
let work: string;
let model: HookedTransformer;
let sae: Sae;
let contexts: number[][];
let dash: FeatureDashboards;

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'lensboard-dash-'));
  await writeTinyCheckpoint(join(work, 'tiny'), 4);
  model = await HookedTransformer.fromPretrained(join(work, 'tiny'), { threads: 1 });
  sae = Sae.fromWeights({ ...ref, hook_name: HOOK }, w, { name: 'test-sae' });
  const ids = model.tokenizer!.encode('First Citizen: Before we proceed any further, hear me speak. All: Speak, speak. You are all resolved rather to die than to famish? Resolved, resolved. First, you know Caius Marcius is chief enemy to the people.');
  contexts = Array.from({ length: 7 }, (_, i) => [BOS, ...ids.slice(i * 5, i * 5 + 9)]);
  dash = await computeFeatureDashboards(model, sae, contexts, { topK: 4, windowBefore: 3, windowAfter: 2, bins: 8, logitK: 5, batchSize: 3, corpus: { name: 'test', split: 'all' } });
});
afterAll(async () => {
  await model?.dispose();
  await rm(work, { recursive: true, force: true });
});

describe('feature dashboards', () => {
  it('top contexts, density, max and mean = brute force over every position', async () => {
    const [, cache] = await model.runWithCache(contexts, { namesFilter: HOOK });
    const x = cache.get(HOOK).data;
    const all: { f: number; b: number; p: number; v: number }[] = [];
    const acts = contexts.map((row, b) => row.map((_, p) => refEncodeRow(ref, w, x.subarray((b * 10 + p) * 32, (b * 10 + p + 1) * 32)).acts));
    for (let b = 0; b < 7; b++) for (let p = 1; p < 10; p++) for (let f = 0; f < 24; f++) if (acts[b][p][f] > 0) all.push({ f, b, p, v: acts[b][p][f] });
    expect(dash.corpus).toMatchObject({ tokens: 63, contexts: 7, contextSize: 10 });
    let checked = 0;
    for (let f = 0; f < 24; f++) {
      const mine = all.filter((a) => a.f === f).sort((a, b) => b.v - a.v);
      const d = dash.features[f];
      expect(d.density).toBeCloseTo(mine.length / 63, 10);
      if (mine.length === 0) {
        expect(d.top).toEqual([]);
        continue;
      }
      expect(d.maxAct).toBeCloseTo(mine[0].v, 3);
      expect(d.meanAct).toBeCloseTo(mine.reduce((s, a) => s + a.v, 0) / mine.length, 3);
      expect(d.top.length).toBe(Math.min(4, mine.length));
      d.top.forEach((t, i) => {
        expect(t.value).toBeCloseTo(mine[i].v, 3);
        const { b, p } = mine[i];
        const from = Math.max(0, p - 3);
        expect(t.tokens).toEqual(contexts[b].slice(from, Math.min(10, p + 3)));
        expect(t.at).toBe(p - from);
        t.acts.forEach((a, j) => expect(a).toBeCloseTo(contexts[b][from + j] === BOS ? 0 : acts[b][from + j][f], 3)); // BOS shown as 0
        checked++;
      });
      expect(d.histogram.counts.reduce((s, c) => s + c, 0)).toBe(mine.length);
      expect(d.histogram.edges.at(-1)).toBeCloseTo(d.maxAct, 3);
    }
    expect(checked).toBeGreaterThan(40);
  });

  it('logit weights are the top and bottom tokens of W_dec[f] · W_U', async () => {
    const W_U = model.W_U; // [d_model, d_vocab]
    for (const f of [0, 7, 23]) {
      const v = new Float64Array(50257);
      for (let t = 0; t < 50257; t++) for (let i = 0; i < 32; i++) v[t] += w.W_dec![f * 32 + i] * W_U.data[i * 50257 + t];
      const order = Array.from({ length: 50257 }, (_, t) => t).sort((a, b) => v[b] - v[a]);
      expect(dash.features[f].logits.top.map((l) => l.token)).toEqual(order.slice(0, 5));
      expect(dash.features[f].logits.bottom.map((l) => l.token)).toEqual(order.slice(-5).reverse());
      dash.features[f].logits.top.forEach((l) => expect(l.value).toBeCloseTo(v[l.token], 3));
    }
    for (const id of [...dash.features[3].logits.top.map((l) => l.token), ...(dash.features[3].top[0]?.tokens ?? [])]) {
      expect(dash.tokenStrings[id]).toBe(model.tokenizer!.decode([id]));
    }
  });

  it('is written beside the SAE and read back', async () => {
    const dir = join(work, 'sae-dir');
    await sae.save(dir);
    const path = await saveFeatureDashboards(dir, dash);
    expect(path).toBe(join(dir, 'feature_dashboards.json.gz'));
    expect(await loadFeatureDashboards(dir)).toEqual(dash);
    expect(await loadFeatureDashboards(join(work, 'tiny'))).toBeNull();
    expect(dash.sae).toEqual({ name: 'test-sae', hook_name: HOOK, architecture: 'topk', d_in: 32, d_sae: 24, k: 5 });
  });
});
