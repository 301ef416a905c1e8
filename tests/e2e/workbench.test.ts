/**
 * The dashboard as a researcher uses it, end to end on the shipped trained model (models/embedded: 3 layers × 4 heads,
 * n_ctx 128) in Debian's Chromium: each submit sends each request once; stale figures are marked and keep their own
 * labels; token fields show their tokenization and the leading-space variant; views that ignore the prompt hide it;
 * the text view at 128 tokens against the API; main-thread stalls while hovering at 128 tokens, measured with a
 * PerformanceObserver for long tasks; Back / Forward; the model picker after a failed load; exports without UI marks;
 * guides. Screenshots of every view (a 120-token prompt) go to tests/.artifacts/screenshots/ (and to docs/screenshots/
 * with LENSBOARD_DOCS_SCREENSHOTS=1).
 */
import { mkdirSync } from 'node:fs';
import type { Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  apiAt, downloadOf, ensureUiBuilt, openBrowser, plotOf, screenshot, SCREENSHOTS, startDashboard, waitPlotOn, type Browser, type DashboardServer,
} from './helpers.ts';

let srv: DashboardServer;
let br: Browser;
let page: Page;
const IOI = 'When Mary and John went to the store, John gave a drink to';
/** The opening of Tiny Shakespeare (public domain), on one line (the prompt is an <input>), its first line said again at the end. */
const SHAKESPEARE = 'First Citizen: Before we proceed any further, hear me speak. All: Speak, speak. First Citizen: You are all resolved rather '
  + 'to die than to famish? All: Resolved. resolved. First Citizen: First, you know Caius Marcius is chief enemy to the people. '
  + "All: We know't, we know't. First Citizen: Let us kill him, and we'll have corn at our own price. Is't a verdict? All: No more "
  + "talking on't; let it be done: away, away! Second Citizen: One word, good citizens. First Citizen: We are accounted poor "
  + 'citizens, the patricians good. First Citizen: Before we proceed any further, hear me speak.';
/** Prompts of exactly 120 and 128 tokens (BOS included; 128 = the model's n_ctx). */
let P120 = '';
let P128 = '';
/** Long-task maxima per hover, for the log (the report quotes them). */
/** [CPU ms, wall ms] of the longest main-thread task per hover, for the log (the report quotes them). */
const stalls: Record<string, number[]> = {};

const api = <T = any>(path: string, body?: unknown) => apiAt<T>(srv.url, path, body);
const waitPlot = (id: string, pred: (data: any[], layout: any) => boolean = () => true, timeout = 60_000) => waitPlotOn(page, id, pred, timeout);
const count = (sel: string) => page.locator(sel).count();

async function tokenCount(text: string): Promise<number> {
  return (await api('/api/tokenize', { text })).body.tokens[0].length;
}

/**
 * As much of SHAKESPEARE's start as fits, then its repeated first line: exactly `n` tokens with BOS (a word removed can
 * take two tokens with it: " good", one token, fills the gap before the repeat).
 */
async function promptOfLength(n: number): Promise<string> {
  const all = SHAKESPEARE.split(' ');
  const tail = all.slice(-9); // "First Citizen: Before we proceed any further, hear me speak."
  let head = all.slice(0, -9);
  while ((await tokenCount([...head, ...tail].join(' '))) > n) head = head.slice(0, -1);
  while ((await tokenCount([...head, ...tail].join(' '))) < n) head = [...head, 'good'];
  const text = [...head, ...tail].join(' ');
  if ((await tokenCount(text)) !== n) throw new Error(`could not build a ${n}-token prompt`);
  return text;
}

async function submit(prompt: string): Promise<void> {
  await page.locator('[data-testid="prompt"]').fill(prompt);
  await page.locator('[data-testid="prompt"]').press('Enter');
}

async function tab(view: string): Promise<void> {
  await page.locator(`[data-testid="tab-${view}"]`).click();
}

/** Waits until the page has been quiet long enough for trailing requests (a debounced token field: 250 ms) to have started and ended. */
const settle = () => br.idle(450);

/** The API calls since `from`, each as "METHOD path body". */
function apiCallsSince(from: number): string[] {
  return br.calls.slice(from).filter((c) => c.url.includes('/api/')).map((c) => `${c.method} ${new URL(c.url).pathname} ${c.body ?? ''}`);
}

function expectEachOnce(calls: string[], what: string): void {
  const seen = new Map<string, number>();
  for (const c of calls) seen.set(c, (seen.get(c) ?? 0) + 1);
  const twice = [...seen].filter(([, n]) => n > 1).map(([c, n]) => `${n}× ${c.slice(0, 160)}`);
  expect(twice, `${what}: requests sent more than once`).toEqual([]);
}

/** Waits until the text of `sel` matches `re`; the error names the last text seen. */
async function waitText(sel: string, re: RegExp, timeout = 30_000): Promise<string> {
  const until = Date.now() + timeout;
  let last: string | null = null;
  for (;;) {
    last = (await page.locator(sel).count()) ? await page.locator(sel).first().textContent() : null;
    if (last !== null && re.test(last)) return last;
    if (Date.now() > until) throw new Error(`${sel} never matched ${re} in ${timeout} ms (last: ${JSON.stringify(last)})`);
    await page.waitForTimeout(100);
  }
}

/** The data-value of every token of the text view ('' where a token has no value). */
function textValues(): Promise<string[]> {
  return page.locator('[data-testid="text-tokens"] .t').evaluateAll((els) => els.map((e) => (e as HTMLElement).dataset.value ?? ''));
}

/**
 * A screenshot of the viewport (1280 × 800). With LENSBOARD_DOCS_SCREENSHOTS=1 also a copy for the README in
 * docs/screenshots/, as a 256-colour PNG (sharp, installed with @huggingface/transformers) to stay small in the repository.
 */
async function shot(name: string): Promise<void> {
  await page.waitForTimeout(200);
  await screenshot(page, name);
}

/** Starts recording long tasks (main-thread tasks over 50 ms of wall time) in the page. */
async function watchLongTasks(): Promise<void> {
  await page.evaluate(() => {
    const w = window as unknown as { __longTasks: number[]; __observing?: boolean };
    w.__longTasks = [];
    if (w.__observing) return;
    w.__observing = true;
    new PerformanceObserver((list) => {
      for (const e of list.getEntries()) w.__longTasks.push(e.duration);
    }).observe({ type: 'longtask' });
  });
}

interface Stall {
  /** The most CPU time one task of the page's main thread took (Chromium's trace: thread time of each RunTask). */
  cpu: number;
  /** The longest task in wall time, as the PerformanceObserver reports it (0: none over 50 ms). */
  wall: number;
}

/**
 * The longest main-thread task while `act` runs, both as the page's own work (CPU time, from a Chromium trace of the
 * renderer's main thread) and as wall time (the PerformanceObserver's long tasks). On a machine whose other processes
 * hold the CPU (this suite runs files in parallel on 2 cores; during development other jobs kept the load average at
 * 10–15) a task waits for the CPU too, so wall time reports the machine's load; the CPU time is what the page costs.
 */
async function stallOf(label: string, act: () => Promise<void>): Promise<Stall> {
  const cdp = await br.context.newCDPSession(page);
  const events: { ph: string; name: string; pid: number; tid: number; dur?: number; tdur?: number; args?: { name?: string } }[] = [];
  cdp.on('Tracing.dataCollected', (e) => events.push(...(e.value as unknown as typeof events)));
  const complete = new Promise((r) => cdp.once('Tracing.tracingComplete', r));
  await cdp.send('Tracing.start', { categories: 'toplevel,devtools.timeline', transferMode: 'ReportEvents' });
  await page.evaluate(() => {
    (window as unknown as { __longTasks: number[] }).__longTasks = [];
  });
  await act();
  await page.waitForTimeout(300); // tasks still running when the last hover ended
  const longTasks = await page.evaluate(() => (window as unknown as { __longTasks: number[] }).__longTasks);
  await cdp.send('Tracing.end');
  await complete;
  await cdp.detach();
  const main = new Set(events.filter((e) => e.ph === 'M' && e.name === 'thread_name' && e.args?.name === 'CrRendererMain').map((e) => `${e.pid}:${e.tid}`));
  const tasks = events.filter((e) => e.ph === 'X' && (e.name === 'RunTask' || e.name === 'ThreadControllerImpl::RunTask') && main.has(`${e.pid}:${e.tid}`));
  expect(tasks.filter((t) => t.tdur !== undefined).length, 'the trace has thread times').toBeGreaterThan(10);
  const stall = { cpu: Math.max(0, ...tasks.map((t) => (t.tdur ?? 0) / 1000)), wall: Math.max(0, ...longTasks) };
  stalls[label] = [Math.round(stall.cpu), Math.round(stall.wall)];
  return stall;
}

/** Hovers each `every`-th element matching `sel`, moving the mouse straight to its centre (no per-hover lookups). */
async function hoverEach(sel: string, every: number): Promise<void> {
  const boxes = await page.locator(sel).evaluateAll((els) => els.map((e) => {
    const r = e.getBoundingClientRect();
    return [r.left + r.width / 2, r.top + r.height / 2];
  }));
  for (let i = 0; i < boxes.length; i += every) await page.mouse.move(boxes[i][0], boxes[i][1]);
}

/** Moves the mouse across a box in `steps` steps along its diagonal (each step a hover). */
async function sweepMouse(sel: string, steps: number): Promise<void> {
  const box = await page.locator(sel).first().boundingBox();
  if (!box) throw new Error(`nothing to hover at ${sel}`);
  await page.mouse.move(box.x + 2, box.y + 2);
  for (let i = 1; i <= steps; i++) await page.mouse.move(box.x + (box.width - 4) * (i / steps) + 2, box.y + (box.height - 4) * (i / steps) + 2);
}

beforeAll(async () => {
  mkdirSync(SCREENSHOTS, { recursive: true });
  await ensureUiBuilt();
  srv = await startDashboard({ model: 'embedded' });
  br = await openBrowser();
  page = br.page;
  [P120, P128] = [await promptOfLength(120), await promptOfLength(128)];
});

afterAll(async () => {
  if (Object.keys(stalls).length) console.log(`longest main-thread task while hovering at 128 tokens, [CPU ms, wall ms]: ${JSON.stringify(stalls)}`);
  await br?.close();
  await srv?.close();
});

describe('workbench', () => {
  it('the page load and each submit send each request once', async () => {
    const start = br.calls.length;
    await page.goto(`${srv.url}/?prompt=${encodeURIComponent(IOI)}`);
    await waitPlot('fig-lens');
    await settle();
    const load = apiCallsSince(start);
    expectEachOnce(load, 'page load');
    expect(load.filter((c) => c.startsWith('POST /api/logit-lens'))).toHaveLength(1);

    const ready: Record<string, (n: number) => Promise<unknown>> = {
      lens: (n) => waitPlot('fig-lens', (d) => d[0].z[0].length === n),
      attention: (n) => waitPlot('fig-attention-head', (d) => d[0].z.length === n),
      text: (n) => expect.poll(() => count('[data-testid="text-tokens"] .t'), { timeout: 30_000 }).toBe(n),
      ablation: (n) => expect.poll(() => count('[data-testid="chips"] .chip'), { timeout: 30_000 }).toBe(n),
    };
    const endpoint: Record<string, string | null> = { lens: '/api/logit-lens', attention: '/api/attention', text: '/api/attention', ablation: null };
    for (const [i, view] of Object.keys(ready).entries()) {
      await tab(view);
      await settle();
      const prompt = `${IOI} and then ${['Mary', 'John', 'the cat', 'the king'][i]} left`;
      const n = await tokenCount(prompt);
      const from = br.calls.length;
      await submit(prompt);
      await ready[view](n);
      await expect.poll(() => count('[data-testid="stale"]')).toBe(0);
      await settle();
      const calls = apiCallsSince(from);
      expectEachOnce(calls, `a submit on ${view}`);
      expect(calls.filter((c) => c.startsWith('POST /api/tokenize'))).toHaveLength(1); // the prompt; the target tokens are known
      if (endpoint[view]) expect(calls.filter((c) => c.startsWith(`POST ${endpoint[view]}`))).toHaveLength(1);
      else expect(calls).toHaveLength(1); // the ablation sweep runs on its button only
    }
  });

  it('a figure whose controls changed is marked stale and keeps its own labels until re-run; a cancelled run too', async () => {
    await submit(IOI);
    await tab('ablation');
    await page.locator('[data-testid="run-sweep"]').click();
    const first = await waitPlot('fig-ablation-sweep', (_d, l) => /zero-ablated/.test(l.title.text));
    expect(first.layout.title.text).toMatch(/^Δ logit\(" Mary"\) − logit\(" John"\)/);
    expect(await count('[data-testid="fig-ablation-sweep"] [data-testid="stale"]')).toBe(0);

    await page.locator('[data-testid="abl-metric"]').selectOption('loss');
    const marker = page.locator('[data-testid="fig-ablation-sweep"] [data-testid="stale"]');
    await expect.poll(() => marker.textContent()).toMatch(/^Stale: metric changed since this ran/);
    await page.locator('[data-testid="abl-mode"]').selectOption('mean');
    await expect.poll(() => marker.textContent()).toMatch(/^Stale: metric, ablation mode changed since this ran; it shows its own run — press Sweep/);
    // the figure still says what it shows: the zero-ablation logit-difference run
    const stale = await plotOf(page, 'fig-ablation-sweep');
    expect(stale.layout.title.text).toBe(first.layout.title.text);
    expect(stale.data[0].z).toEqual(first.data[0].z);
    // the export is the figure without the marker
    const svg = (await downloadOf(page, () => page.locator('[data-testid="fig-ablation-sweep"]').getByRole('button', { name: 'SVG' }).click())).bytes.toString('utf8');
    expect(svg.includes('zero-ablated')).toBe(true);
    expect(/stale/i.exec(svg)?.[0] ?? null).toBeNull();

    await page.locator('[data-testid="run-sweep"]').click();
    const rerun = await waitPlot('fig-ablation-sweep', (_d, l) => /mean-ablated/.test(l.title.text));
    expect(rerun.layout.title.text).toMatch(/^Δ mean next-token loss/);
    await expect.poll(() => marker.count()).toBe(0);
    const ref = (await api('/api/ablate/sweep', { prompt: IOI, metric: { kind: 'loss' }, mode: 'mean' })).body;
    for (let l = 0; l < 3; l++) for (let h = 0; h < 4; h++) expect(Math.abs(rerun.data[0].z[l][h] - ref.delta[l][h])).toBeLessThan(1e-5);

    // a run cancelled before it answers (held back at the network so the cancel always comes first)
    await page.route('**/api/ablate/sweep', async (route) => {
      await new Promise((r) => setTimeout(r, 3000));
      await route.continue().catch(() => {});
    });
    try {
      await page.locator('[data-testid="abl-mode"]').selectOption('resample');
      await page.locator('[data-testid="run-sweep"]').click();
      await expect.poll(() => marker.textContent()).toMatch(/^Updating \(ablation mode changed\)/);
      await page.locator('[data-testid="cancel"]').first().click();
      await expect.poll(() => marker.textContent()).toMatch(/^Stale: the new run was cancelled; this is the previous run, labelled with its own settings/);
      const kept = await plotOf(page, 'fig-ablation-sweep');
      expect(kept.layout.title.text).toBe(rerun.layout.title.text); // "mean-ablated", not "resample-ablated"
      expect(kept.data[0].z).toEqual(rerun.data[0].z);
    } finally {
      await page.unroute('**/api/ablate/sweep');
    }
    await page.locator('[data-testid="abl-mode"]').selectOption('zero');
    await page.locator('[data-testid="abl-metric"]').selectOption('logit_diff');
  });

  it('token fields show how their text tokenizes and offer the leading-space variant with both next-token ranks', async () => {
    await tab('lens');
    await submit(IOI);
    const field = page.locator('[data-testid="target"]');
    await field.fill('Paris');
    const own = (await api('/api/tokenize', { text: 'Paris', prependBos: false })).body;
    const spaced = (await api('/api/tokenize', { text: ' Paris', prependBos: false })).body;
    expect(own.tokens[0]).toHaveLength(1);
    expect(spaced.tokens[0]).toHaveLength(1);
    await expect.poll(() => page.locator('[data-testid="target-chips"] .chip').allTextContents()).toEqual(['Paris']);
    const lens = (await api('/api/logit-lens', { prompt: IOI, targets: [own.tokens[0][0], spaced.tokens[0][0]], topK: 1 })).body;
    const [last, pos] = [lens.labels.length - 1, lens.positions.length - 1];
    const [rankOwn, rankSpaced] = lens.targets.map((t: any) => Number(t.rank[last][pos]).toLocaleString('en-US'));
    const offer = page.locator('[data-testid="target-space"]');
    await expect.poll(() => offer.textContent(), { timeout: 20_000 }).toMatch(new RegExp(`use ␣Paris \\(next-token rank ${rankSpaced}; Paris: ${rankOwn}\\)`));
    await offer.click();
    await expect.poll(() => page.url()).toContain('target=+Paris');
    await expect.poll(() => page.locator('[data-testid="target-chips"] .chip').allTextContents()).toEqual(['␣Paris']);
    expect(await field.inputValue()).toBe(' Paris');
    await expect.poll(() => page.locator('[data-testid="lens-of"] option[value="target"]').textContent()).toBe('target " Paris"');

    // several tokens, or nothing: explained, not applied
    const multi = (await api('/api/tokenize', { text: 'Eiffel Tower', prependBos: false })).body.strTokens[0] as string[];
    expect(multi.length).toBeGreaterThan(1);
    await field.fill('Eiffel Tower');
    await field.press('Enter');
    await expect.poll(() => page.locator('[data-testid="target-note"]').textContent()).toBe(`${multi.length} tokens: not applied (still " Paris"); pick a single token`);
    await expect.poll(() => page.locator('[data-testid="target-chips"] .chip').allTextContents()).toEqual(multi.map((t) => t.replace(/ /g, '␣')));
    expect(page.url()).toContain('target=+Paris');
    await field.fill('');
    await field.press('Enter');
    await expect.poll(() => page.locator('[data-testid="target-note"]').textContent()).toBe('empty: nothing applied (still " Paris")');
    await field.fill(' Mary');
    await field.press('Enter');
    await expect.poll(() => page.url()).not.toContain('target=');

    // the other token fields: circuits' source tokens, patching's own metric tokens
    await tab('circuits');
    // (the server runs one job at a time: these tokenizations queue behind the view's circuit jobs)
    await expect.poll(() => page.locator('[data-testid="circ-token-chips"] .chips').allTextContents(), { timeout: 60_000 })
      .toEqual(['␣Mary', '␣John', '␣the', '␣cat', '␣Paris', '␣1']);
    await tab('ioi');
    await expect.poll(() => page.locator('[data-testid="patch-correct-chips"] .chip').allTextContents(), { timeout: 60_000 }).toEqual(['␣Mary']);
    await expect.poll(() => page.locator('[data-testid="patch-incorrect-chips"] .chip').allTextContents(), { timeout: 60_000 }).toEqual(['␣John']);
    expect(await page.locator('[data-testid="patch-metric"]').textContent()).toMatch(/metric: logit difference at the last position/);
  });

  it('views that do not read the prompt hide it (and its Run); an empty prompt is an explained no-op', async () => {
    for (const v of ['induction', 'ioi', 'circuits']) {
      await tab(v);
      expect(await count('[data-testid="prompt"]')).toBe(0);
      expect(await count('[data-testid="run"]')).toBe(0);
      expect(await page.locator('[data-testid="no-prompt"]').textContent()).toMatch(/does not read the prompt: it runs on /);
    }
    await tab('lens');
    await waitPlot('fig-lens');
    await settle();
    const from = br.calls.length;
    await page.locator('[data-testid="prompt"]').fill('   ');
    await page.locator('[data-testid="prompt"]').press('Enter');
    await expect.poll(() => page.locator('[data-testid="prompt-empty"]').textContent()).toMatch(/The prompt is empty, so nothing was run: the views still show "When Mary/);
    await settle();
    expect(apiCallsSince(from)).toEqual([]);
    expect(page.url()).not.toContain('prompt=');
  });

  it('the text view colours the tokens of a 128-token prompt by attention, loss and the logit lens, as the API computes them', async () => {
    expect(await tokenCount(P128)).toBe(128);
    await submit(P128);
    await tab('text');
    const toks = page.locator('[data-testid="text-tokens"] .t');
    await expect.poll(() => toks.count(), { timeout: 30_000 }).toBe(128);
    // no prompt-bar strip here: the text is the one token strip
    expect(await count('[data-testid="chips"]')).toBe(0);
    await page.locator('[data-testid="text-layer"]').selectOption('1');
    await page.locator('[data-testid="text-head"]').selectOption('3');
    await waitText('[data-testid="text-title"]', /^L1H3: attention from token 127:/);
    const pat = (await api('/api/attention', { prompt: P128, layers: [1], heads: [3] })).body.patterns[0][0] as number[][];
    let v = await textValues();
    v.forEach((x, k) => expect(Math.abs(Number(x) - pat[127][k])).toBeLessThan(1e-6));
    // the darkest token is the one with the most attention
    const best = pat[127].indexOf(Math.max(...pat[127]));
    expect(await toks.nth(best).evaluate((e) => getComputedStyle(e).backgroundColor)).toBe('rgb(8, 48, 107)');
    // choose token 60: its row; later tokens have no value (grey)
    await toks.nth(60).click();
    await page.mouse.move(5, 5);
    await waitText('[data-testid="text-title"]', /^L1H3: attention from token 60:/);
    expect(page.url()).toContain('text.pos=60');
    v = await textValues();
    v.forEach((x, k) => (k <= 60 ? expect(Math.abs(Number(x) - pat[60][k])).toBeLessThan(1e-6) : expect(x).toBe('')));
    expect(await toks.nth(100).evaluate((e) => getComputedStyle(e).backgroundColor)).toBe('rgb(238, 238, 238)');
    await page.locator('[data-testid="text-by"]').selectOption('attn-to');
    await waitText('[data-testid="text-title"]', /^L1H3: attention to token 60:/);
    v = await textValues();
    v.forEach((x, q) => (q >= 60 ? expect(Math.abs(Number(x) - pat[q][60])).toBeLessThan(1e-6) : expect(x).toBe('')));

    await page.locator('[data-testid="text-by"]').selectOption('loss');
    await waitText('[data-testid="text-title"]', /^Loss of predicting each token/);
    const fwd = (await api('/api/forward', { prompt: P128, topK: 3 })).body;
    v = await textValues();
    expect(v[0]).toBe('');
    v.slice(1).forEach((x, i) => expect(Math.abs(Number(x) - fwd.lossPerToken[0][i])).toBeLessThan(1e-4));

    await page.locator('[data-testid="text-by"]').selectOption('lens-rank');
    await waitText('[data-testid="text-title"]', /^Logit lens at final: rank \(0 = top\) of " Mary"/);
    const ids = (await api('/api/tokenize', { text: [' Mary', ' John'], prependBos: false })).body.tokens.map((t: number[]) => t[0]);
    const ll = (await api('/api/logit-lens', { prompt: P128, targets: ids, topK: 1 })).body;
    v = await textValues();
    v.forEach((x, p) => expect(Number(x)).toBe(Number(ll.targets[0].rank[ll.labels.length - 1][p])));
    await page.locator('[data-testid="text-by"]').selectOption('attn-from');
  });

  it('hovering at 128 tokens never holds the main thread for 100 ms (each task\'s CPU time, from a Chromium trace)', async () => {
    await watchLongTasks();
    await tab('attention');
    await waitPlot('fig-attention-grid', (d) => d.length === 12 && d[0].z.length === 43); // 128 positions pooled 3 × 3
    await waitPlot('fig-attention-head', (d) => d[0].z.length === 128);
    await page.waitForTimeout(500);
    const grid = await stallOf('attention grid (12 heads)', async () => {
      for (let i = 1; i <= 12; i++) {
        const ax = i === 1 ? '' : String(i);
        await page.locator(`[data-testid="fig-attention-grid"] .nsewdrag[data-subplot="x${ax}y${ax}"]`).hover();
        await page.waitForTimeout(60);
      }
    });
    await page.getByRole('button', { name: 'all rows' }).click(); // every token in view
    // the preview is the hovered head's pattern: the last query's row, pixel by pixel, in Plotly's Viridis
    await page.locator('[data-testid="fig-attention-grid"] .nsewdrag[data-subplot="x6y6"]').hover(); // L1H1
    await expect.poll(() => page.locator('[data-testid="head-preview"]').getAttribute('data-head')).toBe('L1H1');
    const row = await page.locator('[data-testid="head-preview"] canvas').evaluate((c) => {
      const cv = c as HTMLCanvasElement;
      return [...cv.getContext('2d')!.getImageData(0, cv.height - 1, cv.width, 1).data];
    });
    const pat = (await api('/api/attention', { prompt: P128, layers: [1], heads: [1] })).body.patterns[0][0][127] as number[];
    const viridis = ['440154', '48186a', '472d7b', '424086', '3b528b', '33638d', '2c728e', '26828e', '21918c', '1fa088', '28ae80', '3fbc73', '5ec962', '84d44b', 'addc30', 'd8e219', 'fde725']
      .map((h) => [0, 2, 4].map((i) => parseInt(h.slice(i, i + 2), 16)));
    pat.forEach((v, k) => {
      const x = v * 16;
      const i = Math.min(15, Math.floor(x));
      const want = [0, 1, 2].map((c) => viridis[i][c] + (viridis[i + 1][c] - viridis[i][c]) * (x - i));
      for (let c = 0; c < 3; c++) expect(Math.abs(row[k * 4 + c] - want[c])).toBeLessThanOrEqual(1);
    });
    await page.mouse.move(5, 5);
    const chips = await stallOf('token strip (focus)', () => hoverEach('[data-testid="chips"] .chip', 2));
    const head = await stallOf('attention head heatmap', () => sweepMouse('[data-testid="fig-attention-head"] .nsewdrag', 40));
    await tab('lens');
    await waitPlot('fig-lens', (d) => d[0].z[0].length === 128);
    await page.waitForTimeout(500);
    const lens = await stallOf('logit lens', () => sweepMouse('[data-testid="fig-lens"] .nsewdrag', 40));
    await tab('text');
    await expect.poll(() => count('[data-testid="text-tokens"] .t')).toBe(128);
    const text = await stallOf('text view (preview attention)', () => hoverEach('[data-testid="text-tokens"] .t', 2));
    for (const [what, st] of Object.entries({ grid, chips, head, lens, text })) expect(st.cpu, `${what}: CPU time of the longest main-thread task`).toBeLessThan(100);
    // one token strip: the attention view has none of its own
    expect(await count('[data-testid="focus-tokens"]')).toBe(0);
  });

  it('views and runs are history entries: Back and Forward restore them, from kept results', async () => {
    const A = IOI;
    const B = 'The cat sat on the mat because it was warm';
    await page.goto(`${srv.url}/?prompt=${encodeURIComponent(A)}`);
    await waitPlot('fig-lens');
    const nA = await tokenCount(A);
    const nB = await tokenCount(B);
    await tab('attention');
    await waitPlot('fig-attention-head', (d) => d[0].z.length === nA);
    await submit(B);
    await waitPlot('fig-attention-head', (d) => d[0].z.length === nB);
    await tab('ablation');
    await page.locator('[data-testid="run-sweep"]').click();
    const sweep = await waitPlot('fig-ablation-sweep', (_d, l) => /logit/.test(l.title.text));
    await page.locator('[data-testid="abl-metric"]').selectOption('loss');
    await expect.poll(() => count('[data-testid="stale"]')).toBe(1);
    await settle();

    const from = br.calls.length;
    await page.goBack(); // the metric change
    await expect.poll(() => page.locator('[data-testid="abl-metric"]').inputValue()).toBe('logit_diff');
    await expect.poll(() => count('[data-testid="stale"]')).toBe(0);
    expect((await plotOf(page, 'fig-ablation-sweep')).data[0].z).toEqual(sweep.data[0].z);
    await page.goBack(); // the sweep
    await expect.poll(() => count('[data-testid="fig-ablation-sweep"]')).toBe(0);
    await page.goBack(); // the ablation tab
    await waitPlot('fig-attention-head', (d) => d[0].z.length === nB);
    expect(await page.locator('[data-testid="prompt"]').inputValue()).toBe(B);
    await page.goBack(); // prompt B
    await waitPlot('fig-attention-head', (d) => d[0].z.length === nA);
    await expect.poll(() => page.locator('[data-testid="prompt"]').inputValue()).toBe(A);
    await page.goBack(); // the attention tab
    await waitPlot('fig-lens', (d) => d[0].z[0].length === nA);

    for (let i = 0; i < 4; i++) await page.goForward();
    await waitPlot('fig-ablation-sweep');
    await expect.poll(() => page.locator('[data-testid="abl-metric"]').inputValue()).toBe('logit_diff');
    expect(await count('[data-testid="stale"]')).toBe(0);
    await page.goForward(); // the metric change again: the same figure, marked stale
    await expect.poll(() => page.locator('[data-testid="abl-metric"]').inputValue()).toBe('loss');
    await expect.poll(() => count('[data-testid="stale"]')).toBe(1);
    await settle();
    // every step redrew from kept results and kept tokenizations
    expect(apiCallsSince(from)).toEqual([]);
  });

  it('exports carry no UI marks: no hint, no lock box, no focus outline; a wide logit lens exports every position', async () => {
    await submit(P128);
    await tab('attention');
    await waitPlot('fig-attention-grid', (d) => d.length === 12 && d[0].z.length === 43);
    await page.locator('[data-testid="fig-attention-grid"] .nsewdrag[data-subplot="x8y8"]').click(); // L1H3
    await expect.poll(() => page.locator('[data-testid="locked-head"]').textContent()).toBe('L1H3');
    await page.locator('[data-testid="chips"] .chip').nth(40).hover();
    await waitPlot('fig-attention-head', (_d, l) => l.shapes?.length === 2 && l.title.text === 'Attention pattern L1H3');
    const onScreen = await plotOf(page, 'fig-attention-grid');
    expect(onScreen.layout.shapes.some((s: any) => s.line?.color === '#e6550d')).toBe(true); // the lock box is on screen
    const grid = (await downloadOf(page, () => page.locator('[data-testid="fig-attention-grid"]').getByRole('button', { name: 'SVG' }).click())).bytes.toString('utf8');
    expect(grid.includes('All heads (3×3 positions a cell)')).toBe(true);
    expect(/rgb\(230, 85, 13\)|#e6550d|hover|click|lock/i.exec(grid)?.[0] ?? null).toBeNull();
    const headSvg = (await downloadOf(page, () => page.locator('[data-testid="fig-attention-head"]').getByRole('button', { name: 'SVG' }).click())).bytes.toString('utf8');
    expect(headSvg.includes('Attention pattern L1H3')).toBe(true);
    expect(/rgb\(230, 85, 13\)|#e6550d/.exec(headSvg)?.[0] ?? null).toBeNull();

    await tab('lens');
    await waitPlot('fig-lens', (d) => d[0].z[0].length === 128);
    const png = (await downloadOf(page, () => page.locator('[data-testid="fig-lens"]').getByRole('button', { name: 'PNG' }).click())).bytes;
    expect(png.readUInt32BE(16)).toBe((128 * 54 + 250) * 2); // IHDR width: every position at 54 px, at 2× scale
    const svg = (await downloadOf(page, () => page.locator('[data-testid="fig-lens"]').getByRole('button', { name: 'SVG' }).click())).bytes.toString('utf8');
    const ticks = [...svg.matchAll(/class="xtick"><text[^>]*>([^<]*)</g)].map((m) => m[1]);
    expect(ticks).toHaveLength(128);
    expect(ticks[127]).toMatch(/^127: /);
    await page.mouse.move(5, 5);
  });

  it('each view explains itself, defines its scores and links its notebook', async () => {
    const expected: Record<string, RegExp> = {
      lens: /accumulated_resid/, attention: /hook_pattern/, text: /CircuitsVis/, ablation: /attn\.hook_z/,
      induction: /ceiling/, ioi: /indirect object/, circuits: /z-score against random matrices/,
    };
    for (const [view, re] of Object.entries(expected)) {
      await tab(view);
      const guide = page.locator('[data-testid="guide"]');
      expect(await guide.textContent()).toMatch(re);
      const href = await guide.locator('[data-testid="notebook-link"]').first().getAttribute('href');
      const nb = await fetch(new URL(href!, page.url()).href);
      expect(nb.status).toBe(200);
      expect(Array.isArray(((await nb.json()) as { cells: unknown[] }).cells)).toBe(true);
    }
    await tab('induction');
    await waitPlot('fig-scores-induction');
    expect(await page.locator('[data-testid="guide"]').textContent()).toMatch(/perfect induction head scores span \/ \(2·span \+ 1\) = 0\.49 here/);
    expect(await page.locator('[data-testid="def-previous_token"]').textContent()).toMatch(/attention-based; not the Circuits view's positional score/);
    await tab('circuits');
    const copying = await waitPlot('fig-copying');
    expect(copying.layout.annotations.map((a: any) => a.text)).toContain('0.7: mostly copying');
    const comp = await waitPlot('fig-composition');
    expect(comp.data[0].colorbar.title.text).toBe('K-composition, z vs random');
    expect((await waitPlot('fig-positional')).layout.title.text).toMatch(/positional previous-token score/);
  });

  it('screenshots of every view on a 120-token prompt', async () => {
    const strTokens = (await api('/api/tokenize', { text: P120 })).body.strTokens[0] as string[];
    expect(strTokens).toHaveLength(120);
    const hear = strTokens.lastIndexOf(' hear'); // in the repeated first line: an induction head looks at " me" after the first " hear"
    await tab('lens');
    await submit(P120);
    await waitPlot('fig-lens', (d) => d[0].z[0].length === 120);
    await page.mouse.move(5, 5);
    await shot('view-logit-lens');
    await tab('attention');
    await waitPlot('fig-attention-grid', (d) => d[0].z.length === 40); // 120 positions pooled 3 × 3
    if ((await page.locator('[data-testid="locked-head"]').textContent().catch(() => null)) !== 'L1H3') {
      await page.locator('[data-testid="fig-attention-grid"] .nsewdrag[data-subplot="x8y8"]').click();
    }
    await page.locator('[data-testid="chips"] .chip').nth(hear).hover();
    await waitPlot('fig-attention-head', (d, l) => d[0].z.length === 120 && l.shapes?.length === 2 && l.title.text === 'Attention pattern L1H3');
    await shot('view-attention');
    await tab('text');
    await page.locator('[data-testid="text-by"]').selectOption('attn-from');
    await page.locator('[data-testid="text-layer"]').selectOption('1');
    await page.locator('[data-testid="text-head"]').selectOption('3');
    await expect.poll(() => count('[data-testid="text-tokens"] .t'), { timeout: 30_000 }).toBe(120);
    await page.locator('[data-testid="text-tokens"] .t').nth(hear).click();
    await page.mouse.move(5, 5);
    await waitText('[data-testid="text-title"]', new RegExp(`^L1H3: attention from token ${hear}: " hear"`));
    await shot('view-text');
    await tab('ablation');
    await page.locator('[data-testid="abl-metric"]').selectOption('logit_diff');
    await page.locator('[data-testid="run-sweep"]').click();
    await waitPlot('fig-ablation-sweep', (_d, l) => /^Δ logit/.test(l.title.text));
    await expect.poll(() => count('[data-testid="stale"]'), { timeout: 60_000 }).toBe(0); // the sweep on this prompt has landed
    await shot('view-ablation');
    await tab('induction');
    await page.waitForFunction(() => document.querySelectorAll('[data-testid^="fig-attention-L"] .js-plotly-plot').length === 4, null, { timeout: 60_000 });
    await shot('view-induction');
    await tab('ioi');
    await page.locator('[data-testid="run-patch"]').click();
    await waitPlot('fig-patch-resid_pre');
    await shot('view-ioi');
    await tab('circuits');
    await page.locator('select[aria-label="layer"]').selectOption('1');
    await page.locator('select[aria-label="head"]').selectOption('3');
    await waitPlot('fig-positional', (_d, l) => /L1H3/.test(l.title.text));
    await waitPlot('fig-top-copied', (_d, l) => /L1H3/.test(l.title.text));
    await waitPlot('fig-composition');
    await shot('view-circuits');
  });

  it('after a failed load the model picker still shows the active model', async () => {
    const errorsBefore = br.errors.length;
    const select = page.locator('[data-testid="model-select"]');
    expect(await select.inputValue()).toBe('embedded');
    await select.selectOption('gpt2'); // offline and not in the cache: the load fails
    await page.locator('[data-testid="load"]').click();
    await expect.poll(() => page.locator('[data-testid="model-error"]').textContent(), { timeout: 30_000 }).toMatch(/gpt2/);
    await expect.poll(() => select.inputValue()).toBe('embedded');
    expect(await page.locator('[data-testid="model-info"]').textContent()).toMatch(/^\s*embedded on cpu/);
    expect(page.url()).toContain('model=embedded');
    // the browser notes the refused load; nothing else
    const fresh = br.errors.splice(errorsBefore);
    expect(fresh.every((e) => /status of 4\d\d/.test(e) && e.includes('/api/models/load')), fresh.join('\n')).toBe(true);
    await page.locator('[data-testid="model-error-close"]').click();
    expect(await count('[data-testid="model-error"]')).toBe(0);
  });

  it('no page errors and no console errors', () => {
    expect(br.errors).toEqual([]);
  });
});
