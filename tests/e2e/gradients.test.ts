/**
 * Gradients in the dashboard, end to end (the real server and the built ui/ in Chromium): the patching view's method
 * switch (activation / attribution / both) with a scatter of attribution against activation patching per kind, and
 * the text view's saliency colouring — each figure read back from the page and compared with the API's answer.
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { apiAt, ensureUiBuilt, openBrowser, SCREENSHOTS, startDashboard, waitPlotOn, type Browser, type DashboardServer } from './helpers.ts';

let srv: DashboardServer;
let br: Browser;
let page: Page;
const CLEAN = 'When Mary and John went to the store, John gave a drink to';
const CORRUPTED = 'When Mary and John went to the store, Mary gave a drink to';

beforeAll(async () => {
  mkdirSync(SCREENSHOTS, { recursive: true });
  await ensureUiBuilt();
  srv = await startDashboard();
  br = await openBrowser();
  page = br.page;
  await page.goto(srv.url);
  await page.locator('[data-testid="chips"]').waitFor({ timeout: 60_000 });
});
afterAll(async () => {
  await br?.close();
  await srv?.close();
});

const api = <T = any>(path: string, body?: unknown) => apiAt<T>(srv.url, path, body);
const flat = (x: unknown): number[] => (Array.isArray(x) ? (x.flat(Infinity as 1) as number[]) : [x as number]);

describe('gradients in the dashboard', () => {
  it('patching: "both" draws attribution patching beside activation patching and a scatter of the two per kind, with r', async () => {
    await page.locator('[data-testid="tab-ioi"]').click();
    await page.locator('[data-testid="patch-method"]').selectOption('both');
    await page.locator('[data-testid="run-patch"]').click();
    const body = { clean: CLEAN, corrupted: CORRUPTED, metric: { kind: 'logit_diff', correct: ' Mary', incorrect: ' John' } };
    const [act, attr] = [(await api('/api/patch', body)).body, (await api('/api/attribution-patch', body)).body];
    const estimate = await waitPlotOn(page, 'fig-attr-patch-resid_pre');
    expect(estimate.layout.title.text).toMatch(/estimated by attribution(<br>| )patching/);
    expect(Math.max(...flat(estimate.data[0].z).map((v, i) => Math.abs(v - flat(attr.results[0].values)[i])))).toBeLessThan(1e-6);
    await waitPlotOn(page, 'fig-patch-resid_pre');
    const scatter = await waitPlotOn(page, 'fig-patch-compare-head_out_all_pos');
    expect(scatter.data[0].x).toEqual(flat(act.results[3].values));
    expect(scatter.data[0].y).toEqual(flat(attr.results[3].values));
    expect(scatter.data[0].text[5]).toBe('L1H1');
    expect(scatter.layout.title.text).toMatch(/Pearson r = -?[\d.]+/);
    expect(page.url()).toContain('ioi.method=both');
    await page.screenshot({ path: join(SCREENSHOTS, 'ioi-attribution.png'), fullPage: true });
    // attribution alone: no activation figures
    await page.locator('[data-testid="patch-method"]').selectOption('attribution');
    await page.locator('[data-testid="fig-patch-compare-resid_pre"]').waitFor({ state: 'detached' });
    expect(await page.locator('[data-testid="fig-patch-resid_pre"]').count()).toBe(0);
    expect(await page.locator('[data-testid="fig-attr-patch-resid_pre"]').count()).toBe(1);
  });

  it('text view: tokens coloured by saliency (gradient × input, integrated gradients) as the API computes it', async () => {
    await page.locator('[data-testid="tab-text"]').click();
    await page.locator('[data-testid="text-by"]').selectOption('saliency');
    const title = page.locator('[data-testid="text-title"]');
    await expect.poll(() => title.textContent(), { timeout: 60_000 }).toMatch(/^Saliency \(gradient × input\)/);
    const prompt = await page.locator('[data-testid="prompt"]').inputValue();
    const ids = (await api('/api/tokenize', { text: [' Mary', ' John'], prependBos: false })).body.tokens.map((t: number[]) => t[0]);
    const ref = (await api('/api/saliency', { prompt, metric: { kind: 'logit_diff', correct: ids[0], incorrect: ids[1] } })).body;
    const toks = page.locator('[data-testid="text-tokens"] .t');
    const values = await toks.evaluateAll((els) => els.map((e) => Number((e as HTMLElement).dataset.value)));
    expect(values).toHaveLength(ref.scores.length);
    values.forEach((v, i) => expect(Math.abs(v - ref.scores[i])).toBeLessThan(1e-6));
    // the most positive token is the bluest, the most negative the reddest (the diverging scale's ends)
    const top = ref.scores.indexOf(Math.max(...ref.scores));
    const bottom = ref.scores.indexOf(Math.min(...ref.scores));
    const bg = (i: number) => toks.nth(i).evaluate((e) => getComputedStyle(e).backgroundColor);
    if (Math.max(...ref.scores) >= -Math.min(...ref.scores)) expect(await bg(top)).toBe('rgb(33, 102, 172)');
    else expect(await bg(bottom)).toBe('rgb(178, 24, 43)');
    await page.locator('[data-testid="text-by"]').selectOption('saliency-ig');
    await expect.poll(() => title.textContent(), { timeout: 60_000 }).toMatch(/^Saliency \(integrated gradients\).*they add up to/);
    await page.screenshot({ path: join(SCREENSHOTS, 'text-saliency.png'), fullPage: true });
  });

  it('no console errors', () => {
    expect(br.errors).toEqual([]);
  });
});
