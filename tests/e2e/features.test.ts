/**
 * The Features view end to end (real server, built dashboard, Chromium): an SAE written into the e2e model's saes/
 * folder (with dashboards) is listed; the prompt's tokens, a clicked token's features and a clicked feature's page show
 * the API's answers; steering shows the API's steered and unsteered continuations; feature ablation and evaluation draw
 * their figures with the API's values; no console errors.
 */
import { join } from 'node:path';
import type { Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HookedTransformer } from '../../hooks/HookedTransformer.ts';
import { computeFeatureDashboards, saveFeatureDashboards } from '../../hooks/sae/dashboard.ts';
import { Sae } from '../../hooks/sae/Sae.ts';
import { randomSaeWeights } from '../helpers/sae.ts';
import { apiAt, ensureUiBuilt, openBrowser, SCREENSHOTS, startDashboard, waitPlotOn, type Browser, type DashboardServer } from './helpers.ts';

let srv: DashboardServer;
let br: Browser;
let page: Page;
const PROMPT = 'The cat sat on the mat because it was warm';
const api = <T = any>(path: string, body?: unknown) => apiAt<T>(srv.url, path, body);

beforeAll(async () => {
  await ensureUiBuilt();
  srv = await startDashboard();
  const model = await HookedTransformer.fromPretrained(srv.modelDir, { threads: 1 });
  try {
    const sae = Sae.fromWeights({ architecture: 'topk', d_in: 32, d_sae: 64, k: 6, hook_name: 'blocks.1.hook_resid_post', context_size: 32 }, randomSaeWeights('topk', 32, 64, 12));
    const dir = join(srv.modelDir, 'saes', 'res1');
    await sae.save(dir);
    const ctx = model.toTokens(['First Citizen: Before we proceed any further, hear me speak.', PROMPT]);
    await saveFeatureDashboards(dir, await computeFeatureDashboards(model, sae, ctx.map((r) => r.slice(0, 10)), { topK: 4, corpus: { name: 'e2e', split: 'all' } }));
  } finally {
    await model.dispose();
  }
  br = await openBrowser();
  page = br.page;
});
afterAll(async () => {
  await br?.close();
  await srv?.close();
});

describe('Features view', () => {
  it("lists the SAE; the prompt's tokens, a token's features and a feature's page are the API's", async () => {
    await page.goto(`${srv.url}/?view=features&prompt=${encodeURIComponent(PROMPT)}`);
    await expect.poll(() => page.locator('[data-testid="sae-select"] option').allTextContents(), { timeout: 30_000 }).toEqual([expect.stringContaining('res1 — topk k=6, 64 features at blocks.1.hook_resid_post')]);
    const want = (await api('/api/features', { sae: 'res1', prompt: PROMPT, topK: 8 })).body;
    await expect.poll(() => page.locator('[data-testid="feature-token"]').count(), { timeout: 30_000 }).toBe(want.tokens.length);
    await page.locator('[data-testid="feature-token"]').nth(3).click();
    await expect.poll(() => page.locator('[data-testid="feature-link"]').allTextContents()).toEqual(want.perToken[3].map((f: { feature: number }) => `F${f.feature}`));
    const f = want.perToken[3][0].feature;
    await page.locator('[data-testid="feature-link"]').first().click();
    expect(page.url()).toContain(`feat.f=${f}`);
    const feature = (await api(`/api/features/${f}?sae=res1`)).body;
    await expect.poll(() => page.locator('[data-testid="feature-contexts"] li').count(), { timeout: 20_000 }).toBe(feature.top.length);
    const logits = await waitPlotOn(page, 'fig-feature-logits');
    expect(logits.data[0].x).toEqual([...feature.logits.bottom].reverse().concat([...feature.logits.top].reverse()).map((l: { value: number }) => l.value));
    await page.screenshot({ path: join(SCREENSHOTS, 'view-features.png'), fullPage: true });
  });

  it('steering: the steered and unsteered continuations of the API', async () => {
    const want = (await api('/api/features', { sae: 'res1', prompt: PROMPT, topK: 8 })).body;
    const f = want.perToken[3][0].feature;
    await page.locator('[data-testid="token-features"] tr').first().getByRole('button', { name: 'steer' }).click();
    await page.locator('[data-testid="steer-strength"]').fill('30');
    await page.locator('[data-testid="steer-strength"]').press('Enter');
    await expect.poll(() => page.url()).toContain(`feat.steer=${f}%3A30`);
    await page.locator('[data-testid="run-steer"]').click();
    const steer = (await api('/api/steer', { sae: 'res1', prompt: PROMPT, features: [{ feature: f, strength: 30 }], maxNewTokens: 24 })).body;
    await expect.poll(() => page.locator('[data-testid="steered-text"]').textContent(), { timeout: 60_000 }).toBe(`${PROMPT}${steer.steered.text}`);
    expect(await page.locator('[data-testid="unsteered-text"]').textContent()).toBe(`${PROMPT}${steer.unsteered.text}`);
  });

  it('feature ablation and evaluation draw their figures with the API\'s values', async () => {
    const want = (await api('/api/features', { sae: 'res1', prompt: PROMPT, topK: 8 })).body;
    const f = want.perToken[3][0].feature;
    await page.locator('[data-testid="token-features"] tr').first().getByRole('button', { name: 'ablate' }).click();
    await page.locator('[data-testid="ablate-panel"] select').selectOption('loss');
    await page.locator('[data-testid="run-ablate"]').click();
    const ablate = (await api('/api/features/ablate', { sae: 'res1', prompt: PROMPT, features: [f], metric: { kind: 'loss' } })).body;
    const fig = await waitPlotOn(page, 'fig-feature-ablation');
    expect(fig.data[0].x[0]).toBeCloseTo(ablate.clean, 5);
    expect(fig.data[0].x[1]).toBeCloseTo(ablate.ablated, 5);
    await page.locator('[data-testid="run-eval"]').click();
    const density = await waitPlotOn(page, 'fig-feature-density', () => true, 120_000);
    const ev = (await api('/api/saes/eval', { sae: 'res1', tokens: 8192 })).body;
    expect(density.data[0].y).toEqual(ev.densityHistogram.counts);
    expect(await page.locator('[data-testid="eval-metrics"]').textContent()).toContain('CE loss recovered');
  });

  it('no console errors', () => {
    expect(br.errors).toEqual([]);
  });
});
