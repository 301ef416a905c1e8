/**
 * The dashboard end to end: the real server (createApp, 127.0.0.1:0, a random GPT-2-vocabulary checkpoint) serving the built
 * ui/, driven in Debian's Chromium through playwright-core at 1280×800. Figures are read back from Plotly's own data on the
 * page and compared with the API's answers for the same request; exports are checked byte by byte; screenshots of every
 * view go to tests/.artifacts/screenshots/.
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseCsv } from '../integration/server/helpers.ts';
import {
  apiAt, clickCellOn, downloadOf, ensureUiBuilt, openBrowser, plotOf, SCREENSHOTS, startDashboard, waitPlotOn, type Browser, type DashboardServer,
} from './helpers.ts';

let srv: DashboardServer;
let br: Browser;
let page: Page;
const PROMPT = 'The cat sat on the mat because it was warm';

function api<T = any>(path: string, body?: unknown): Promise<{ status: number; body: T }> {
  return apiAt<T>(srv.url, path, body);
}

/** Waits until the figure card `id` holds a plot whose data and layout satisfy `pred`. */
function waitPlot(id: string, pred: (data: any[], layout: any) => boolean = () => true, timeout = 60_000, on: Page = page): Promise<{ data: any[]; layout: any }> {
  return waitPlotOn(on, id, pred, timeout);
}

async function download(click: () => Promise<void>): Promise<{ name: string; bytes: Buffer }> {
  return downloadOf(page, click);
}

async function shot(name: string): Promise<void> {
  await page.waitForTimeout(300);
  await page.screenshot({ path: join(SCREENSHOTS, `${name}.png`), fullPage: true });
}

/** Clicks the centre of cell (row, col) of a heatmap (rows top→bottom, cols left→right). */
function clickCell(id: string, row: number, col: number, nRows: number, nCols: number, subplot = 'xy'): Promise<void> {
  return clickCellOn(page, id, row, col, nRows, nCols, subplot);
}

async function tokensOf(text: string): Promise<string[]> {
  return (await api('/api/tokenize', { text })).body.strTokens[0];
}

beforeAll(async () => {
  mkdirSync(SCREENSHOTS, { recursive: true });
  await ensureUiBuilt();
  srv = await startDashboard();
  br = await openBrowser();
  page = br.page;
});

afterAll(async () => {
  await br?.close();
  await srv?.close();
});

describe('dashboard', () => {
  it('loads with the model, and shows the prompt\'s tokens as chips with indices, BOS first', async () => {
    await page.goto(srv.url);
    await expect.poll(() => page.locator('[data-testid="model-info"]').textContent(), { timeout: 30_000 }).toContain('tiny on cpu · 3 layers × 4 heads');
    await page.locator('[data-testid="chips"] .chip').first().waitFor();
    const chips = await page.locator('[data-testid="chips"] .chip').allTextContents();
    const tokens = await tokensOf('When Mary and John went to the store, John gave a drink to');
    expect(chips).toHaveLength(tokens.length);
    expect(chips[0]).toBe('0<|endoftext|>');
    expect(chips[2]).toBe('2␣Mary');
  });

  it('a typed prompt (Enter) gives a logit lens heatmap: one row per layer plus final, one column per token, the API\'s values', async () => {
    await page.locator('[data-testid="prompt"]').fill(PROMPT);
    await page.locator('[data-testid="prompt"]').press('Enter');
    const tokens = await tokensOf(PROMPT);
    const n = tokens.length;
    const { data, layout } = await waitPlot('fig-lens', (d) => d[0].z[0].length === n);
    const z = data[0].z as number[][];
    expect(z).toHaveLength(srv.cfg.n_layers + 1);
    expect(layout.yaxis.ticktext).toEqual(['L0 resid_pre', 'L1 resid_pre', 'L2 resid_pre', 'final']);
    expect(layout.xaxis.ticktext[0]).toBe('0: &lt;|endoftext|&gt;');
    expect(data[0].colorbar.title.text).toBe('probability');
    const ref = await api('/api/logit-lens', { prompt: PROMPT, topK: 5, targets: [' Mary', ' John'] });
    expect(ref.status).toBe(200);
    for (let l = 0; l <= srv.cfg.n_layers; l++) for (let p = 0; p < n; p++) expect(Math.abs(z[l][p] - ref.body.top[l][p][0].prob)).toBeLessThan(1e-6);
    expect(data[0].text[srv.cfg.n_layers][n - 1]).toBe(ref.body.top[srv.cfg.n_layers][n - 1][0].str.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;'));
    await shot('logit-lens');
  });

  it('exports the figure as PNG, SVG, CSV and JSON', async () => {
    const card = page.locator('[data-testid="fig-lens"]');
    const png = await download(() => card.getByRole('button', { name: 'PNG' }).click());
    expect(png.name).toBe('logit-lens-prob.png');
    expect([...png.bytes.subarray(0, 8)]).toEqual([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
    expect(png.bytes.readUInt32BE(16)).toBeGreaterThan(400); // IHDR width (2× scale)
    const svg = await download(() => card.getByRole('button', { name: 'SVG' }).click());
    const text = svg.bytes.toString('utf8');
    expect(text.trimStart()).toMatch(/^<svg[\s>]/);
    expect(text.trimEnd()).toMatch(/<\/svg>$/);
    expect(text).toContain('Logit lens: probability of the top-1 token');
    const csv = await download(() => card.getByRole('button', { name: 'CSV' }).click());
    const rows = parseCsv(csv.bytes.toString('utf8'));
    const n = (await tokensOf(PROMPT)).length;
    expect(rows[0]).toEqual(['component', 'pos', 'token', 'top1_id', 'top1_str', 'top1_prob', 'prob']);
    expect(rows).toHaveLength(1 + (srv.cfg.n_layers + 1) * n);
    expect(rows[1].slice(0, 3)).toEqual(['0_pre', '0', '<|endoftext|>']);
    const json = await download(() => card.getByRole('button', { name: 'JSON' }).click());
    const parsed = JSON.parse(json.bytes.toString('utf8'));
    expect(parsed).toHaveLength((srv.cfg.n_layers + 1) * n);
    expect(Number(rows[5][5])).toBeCloseTo(parsed[4].top1_prob, 12);
  });

  it('a permalink reopens the same figure', async () => {
    await page.locator('[data-testid="lens-metric"]').selectOption('logprob');
    await page.locator('[data-testid="lens-of"]').selectOption('target');
    const before = await waitPlot('fig-lens', (d, l) => d[0].colorbar.title.text === 'log-probability' && l.title.text.includes('target'));
    const link = await page.locator('[data-testid="permalink"]').getAttribute('href');
    expect(link).toContain('lens.metric=logprob');
    expect(link).toContain('prompt=The+cat');
    const other = await br.context.newPage();
    try {
      await other.goto(link!);
      const after = await waitPlot('fig-lens', (_d, l) => l.title.text.includes('target'), 60_000, other);
      expect(after.layout.title.text).toBe(before.layout.title.text);
      expect(after.data[0].z).toEqual(before.data[0].z);
      expect(after.layout.xaxis.ticktext).toEqual(before.layout.xaxis.ticktext);
      expect(await other.locator('[data-testid="prompt"]').inputValue()).toBe(PROMPT);
    } finally {
      await other.close();
    }
    await page.locator('[data-testid="lens-metric"]').selectOption('prob');
    await page.locator('[data-testid="lens-of"]').selectOption('top');
  });

  it('attention: hovering a head previews it, clicking locks it large with token labels and the upper triangle greyed', async () => {
    await page.locator('[data-testid="tab-attention"]').click();
    const n = (await tokensOf(PROMPT)).length;
    await waitPlot('fig-attention-grid', (d) => d.length === 12);
    // L1H1 is trace 5 → subplot x6y6
    const cell = page.locator('[data-testid="fig-attention-grid"] .nsewdrag[data-subplot="x6y6"]');
    await cell.hover();
    // previewed over the large head (a canvas: no Plotly redraw while hovering), locked by a click
    await expect.poll(() => page.locator('[data-testid="head-preview"]').getAttribute('data-head')).toBe('L1H1');
    await cell.click();
    await expect.poll(() => page.locator('[data-testid="locked-head"]').textContent()).toBe('L1H1');
    expect(page.url()).toContain('att.l=1');
    await page.locator('[data-testid="tab-lens"]').hover(); // leave the grid: the locked head stays
    const { data, layout } = await waitPlot('fig-attention-head', (_d, l) => l.title.text === 'Attention pattern L1H1');
    const z = data[0].z as (number | null)[][];
    expect(z).toHaveLength(n);
    expect(layout.xaxis.ticktext).toHaveLength(n);
    const ref = await api('/api/attention', { prompt: PROMPT, layers: [1], heads: [1] });
    for (let q = 0; q < n; q++) {
      for (let k = 0; k < n; k++) {
        if (k > q) expect(z[q][k]).toBeNull();
        else expect(Math.abs((z[q][k] as number) - ref.body.patterns[0][0][q][k])).toBeLessThan(1e-6);
      }
    }
    // hover token 3 in the prompt bar's token strip: what it attends to / what attends to it
    await page.locator('[data-testid="chips"] .chip').nth(3).hover();
    await expect.poll(() => page.locator('[data-testid="focus-info"]').textContent()).toMatch(/3:.*attends to .* attended to by /);
    await waitPlot('fig-attention-head', (_d, l) => l.shapes?.length === 2);
    await shot('attention');
  });

  let sweepDelta: number[][] = [];
  it('ablation: the all-heads sweep runs to completion with the API\'s values; a clicked head re-runs alone', async () => {
    await page.locator('[data-testid="tab-ablation"]').click();
    await page.locator('[data-testid="run-sweep"]').click();
    const { data } = await waitPlot('fig-ablation-sweep', (d) => d[0].z.length === 3);
    const ids = (await api('/api/tokenize', { text: [' Mary', ' John'], prependBos: false })).body.tokens.map((t: number[]) => t[0]);
    const ref = await api('/api/ablate/sweep', { prompt: PROMPT, metric: { kind: 'logit_diff', correct: ids[0], incorrect: ids[1] }, mode: 'zero' });
    expect(ref.status).toBe(200);
    sweepDelta = data[0].z;
    expect(sweepDelta.map((r) => r.length)).toEqual([4, 4, 4]);
    for (let l = 0; l < 3; l++) for (let h = 0; h < 4; h++) expect(Math.abs(sweepDelta[l][h] - ref.body.delta[l][h])).toBeLessThan(1e-5);
    expect(data[0].zmid).toBe(0);
    await clickCell('fig-ablation-sweep', 0, 1, 3, 4);
    await expect.poll(() => page.locator('[data-testid="abl-set"]').textContent()).toBe('L0H1');
    await page.locator('[data-testid="run-set"]').click();
    const set = await waitPlot('fig-ablation-set');
    // ablating L0H1 alone equals the sweep's value for L0H1
    expect(Math.abs(set.data[0].x[1] - ref.body.values[0][1])).toBeLessThan(1e-4);
    expect(Math.abs(set.data[0].x[0] - ref.body.clean)).toBeLessThan(1e-5);
    await shot('ablation');
  });

  it('ablation: a long sweep shows progress and is cancelled on the server', async () => {
    const long = Array.from({ length: 9 }, (_v, i) => `Sentence number ${i} says that the cat sat on the mat.`).join(' ');
    expect((await tokensOf(long)).length).toBeLessThanOrEqual(128);
    await page.locator('[data-testid="prompt"]').fill(long);
    await page.locator('[data-testid="prompt"]').press('Enter');
    await page.locator('[data-testid="abl-metric"]').selectOption('loss');
    await page.locator('[data-testid="run-sweep"]').click();
    await page.locator('[data-testid="progress"]').first().waitFor();
    await page.waitForFunction(() => {
      const p = document.querySelector('[data-testid="progress"]') as HTMLProgressElement | null;
      return !!p && p.value > 0;
    }, null, { timeout: 30_000 });
    const fraction = await page.locator('[data-testid="progress"]').first().evaluate((p) => (p as HTMLProgressElement).value);
    expect(fraction).toBeLessThan(1);
    await page.locator('[data-testid="cancel"]').first().click();
    await page.locator('[data-testid="cancelled"]').first().waitFor({ timeout: 10_000 });
    await expect.poll(async () => (await api('/api/jobs')).body.jobs.length, { timeout: 10_000 }).toBe(0);
    // the previous sweep stays on screen
    expect((await plotOf(page, 'fig-ablation-sweep')).data[0].z).toEqual(sweepDelta);
    await page.locator('[data-testid="abl-metric"]').selectOption('logit_diff');
  });

  it('induction, IOI and circuits views draw their figures', async () => {
    await page.locator('[data-testid="prompt"]').fill(PROMPT);
    await page.locator('[data-testid="prompt"]').press('Enter');
    await page.locator('[data-testid="tab-induction"]').click();
    for (const k of ['induction', 'previous_token', 'duplicate_token']) {
      const f = await waitPlot(`fig-scores-${k}`);
      expect(f.data[0].z.map((r: number[]) => r.length)).toEqual([4, 4, 4]);
      // the induction score's ceiling on BOS + 20 + 20 tokens: 20 / 41
      expect(f.data[0].colorbar.title.text).toBe(k === 'induction' ? 'score (ceiling 0.49)' : 'score');
    }
    const loss = await waitPlot('fig-loss-by-pos');
    expect(loss.data[0].x).toHaveLength(40); // BOS + 20 + 20: 40 predicted tokens
    await page.locator('[data-testid="head-finder"] tbody tr').nth(9).waitFor();
    await page.waitForFunction(() => document.querySelectorAll('[data-testid^="fig-attention-L"] .js-plotly-plot').length === 4, null, { timeout: 60_000 });
    await shot('induction');

    await page.locator('[data-testid="tab-ioi"]').click();
    const diff = await waitPlot('fig-ioi-logit-diff');
    expect(diff.data[0].y).toHaveLength(8);
    const attr = await waitPlot('fig-ioi-attribution');
    expect(attr.data[0].z).toHaveLength(3);
    await page.locator('[data-testid="run-patch"]').click();
    const patch = await waitPlot('fig-patch-resid_pre');
    const clean = await tokensOf('When Mary and John went to the store, John gave a drink to');
    expect(patch.data[0].z).toHaveLength(3);
    expect(patch.data[0].z[0]).toHaveLength(clean.length);
    await waitPlot('fig-patch-head_out_by_pos');
    await shot('ioi');

    await page.locator('[data-testid="tab-circuits"]').click();
    const comp = await waitPlot('fig-composition');
    expect(comp.data[0].z).toHaveLength(12);
    expect(comp.data[0].customdata[0][4]).toMatch(/^L0H0 → L1H0<br>K-composition [\d.]+<br>z = /);
    expect(comp.data[0].z[0][0]).toBeNull();
    // colour = z-score against the random baseline the API returns
    const kRef = (await api('/api/circuits/composition', { mode: 'K' })).body;
    const zRef = (kRef.scores[0][0][1][0] - kRef.baseline.mean) / kRef.baseline.std;
    expect(Math.abs(comp.data[0].z[0][4] - zRef)).toBeLessThan(1e-6 * Math.max(1, Math.abs(zRef)));
    expect(comp.data[0].zmid).toBe(0);
    const copying = await waitPlot('fig-copying');
    expect(copying.data[0].y).toHaveLength(12);
    await waitPlot('fig-positional');
    await waitPlot('fig-top-copied');
    await shot('circuits');

    // "read past block 0's MLP": the same figures redrawn from the pastMlp0 endpoints, and the choice kept in the URL.
    await page.locator('[data-testid="circ-mlp0"]').check();
    const past = (await api('/api/circuits/copying', { pastMlp0: true })).body;
    const copyingPast = await waitPlot('fig-copying', (_d, l) => /past block 0's(<br>| )MLP/.test(l.title.text));
    const flatPast = past.scores.flat() as number[];
    copyingPast.data[0].y.forEach((v: number, i: number) => expect(Math.abs(v - flatPast[i])).toBeLessThan(1e-6));
    expect(flatPast.some((v, i) => Math.abs(v - copying.data[0].y[i]) > 1e-3)).toBe(true);
    const compPast = await waitPlot('fig-composition', (_d, l) => /past block 0's(<br>| )MLP/.test(l.title.text));
    const kPast = (await api('/api/circuits/composition', { mode: 'K', pastMlp0: true })).body;
    const zPast = (kPast.scores[0][0][1][0] - kPast.baseline.mean) / kPast.baseline.std;
    expect(Math.abs(compPast.data[0].z[0][4] - zPast)).toBeLessThan(1e-6 * Math.max(1, Math.abs(zPast)));
    await waitPlot('fig-top-copied', (_d, l) => /past block 0's(<br>| )MLP/.test(l.title.text));
    expect(page.url()).toContain('circ.mlp0=1');
    await shot('circuits-past-mlp0');
    await page.locator('[data-testid="circ-mlp0"]').uncheck();
  });

  it('no console errors and no request outside the page\'s own origin so far', () => {
    expect(br.errors).toEqual([]);
    const outside = br.requests.filter((u) => !(u.startsWith(`${srv.url}/`) || u.startsWith(`blob:${srv.url}/`) || u.startsWith('data:')));
    expect(outside).toEqual([]);
    expect(br.requests.some((u) => u.startsWith(`${srv.url}/api/logit-lens`))).toBe(true);
  });

  it('an over-long prompt gets a clear message (prompt bar and the server\'s own error inline)', async () => {
    await page.locator('[data-testid="tab-lens"]').click();
    const long = Array.from({ length: 40 }, (_v, i) => `word${i} and more`).join(' ');
    const n = (await tokensOf(long)).length;
    expect(n).toBeGreaterThan(128);
    await page.locator('[data-testid="prompt"]').fill(long);
    await page.locator('[data-testid="prompt"]').press('Enter');
    await expect.poll(() => page.locator('[data-testid="too-long"]').textContent(), { timeout: 20_000 })
      .toBe(`The prompt is ${n} tokens long; tiny reads at most n_ctx = 128 tokens. Shorten the prompt by ${n - 128} tokens.`);
    const ref = await api('/api/logit-lens', { prompt: long, topK: 5, targets: [' Mary', ' John'] });
    expect(ref.status).toBe(400);
    await expect.poll(() => page.locator('[data-testid="error"]').first().textContent(), { timeout: 20_000 }).toBe((ref.body as any).error);
    await shot('too-long');
    // the only console errors are the browser's notes on the 400 answers
    expect(br.errors.every((e) => /status of 400/.test(e))).toBe(true);
  });

  it('a model with another vocabulary (characters, like models/addition) loads from the picker, and the views start from its own example', async () => {
    const errorsBefore = br.errors.length;
    await page.goto(srv.url); // no prompt in the URL: the model's defaults apply
    await page.locator('[data-testid="model-select"]').selectOption('digits');
    await page.getByRole('button', { name: 'Load' }).click();
    await expect.poll(() => page.locator('[data-testid="model-info"]').textContent(), { timeout: 60_000 }).toContain('digits on cpu · 2 layers × 4 heads');
    const defaults = (await (await fetch(`${srv.url}/api/model`)).json()).defaults;
    expect(defaults.prompt).toBe('12345+67890=');
    expect(defaults.leadingSpace).toBe(false); // so the target fields offer no " 5" variant (a space is not in the vocabulary)
    await expect.poll(() => page.locator('[data-testid="prompt"]').inputValue(), { timeout: 20_000 }).toBe('12345+67890=');
    await expect.poll(() => page.locator('[data-testid="target"]').inputValue()).toBe(defaults.target);
    await expect.poll(() => page.locator('[data-testid="chips"] .chip').count(), { timeout: 20_000 }).toBe(13);
    expect((await page.locator('[data-testid="chips"] .chip').allTextContents()).slice(0, 3)).toEqual(['0<|endoftext|>', '11', '22']);
    await page.locator('[data-testid="tab-lens"]').click();
    const lens = await waitPlot('fig-lens', (d) => d[0].z[0].length === 13);
    expect(lens.layout.xaxis.ticktext[12]).toBe('12: =');
    await page.locator('[data-testid="tab-circuits"]').click();
    const top = await waitPlot('fig-top-copied', (d) => d[0].cells?.values?.[0]?.length === 6);
    expect(top.data[0].cells.values[0]).toEqual(['1', '2', '3', '4', '5', '+']); // the model's default source tokens: its example's
    await shot('character-model');
    expect(br.errors.slice(errorsBefore)).toEqual([]);
  });
});
