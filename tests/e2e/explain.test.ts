/**
 * The Attribution, Graph and Neurons views end to end on the shipped trained model (models/embedded) in Debian's
 * Chromium, each figure checked against the API's own answer to the same request: the attribution bars (the largest
 * terms, the rest summed, the total; all of them adding up to the model's logit difference) and the heads grid; the
 * graph's nodes and edges at the slider's threshold (moving it prunes edges to what the API returns there) and a click
 * on a head node opening its attention pattern; the top neurons, a neuron page (activation per token, corpus examples,
 * output tokens) and ablating / patching it. Screenshots on a typed sentence go to tests/.artifacts/screenshots/ (and
 * docs/screenshots/ with LENSBOARD_DOCS_SCREENSHOTS=1). No page or console errors.
 */
import { mkdirSync } from 'node:fs';
import type { Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pruneFlowGraph } from '../../hooks/analysis/flowGraph.ts';
import { apiAt, ensureUiBuilt, openBrowser, screenshot, SCREENSHOTS, startDashboard, waitPlotOn, type Browser, type DashboardServer } from './helpers.ts';

let srv: DashboardServer;
let br: Browser;
let page: Page;
/** A sentence typed as a user would (the embedded model was trained on Tiny Shakespeare): it predicts " lord", then " heart". */
const SENTENCE = 'I will not speak with him, nor shall he see my';

const api = <T = any>(path: string, body?: unknown) => apiAt<T>(srv.url, path, body);
const waitPlot = (id: string, pred: (data: any[], layout: any) => boolean = () => true, timeout = 60_000) => waitPlotOn(page, id, pred, timeout);
const tok = async (s: string): Promise<number> => (await api('/api/tokenize', { text: s, prependBos: false })).body.tokens[0][0];

async function shot(name: string): Promise<void> {
  await page.mouse.move(5, 5);
  await page.waitForTimeout(300);
  await screenshot(page, name);
}

/** Clicks the point at data coordinates (x, y) of the figure card `id` (its axes' ranges read from Plotly's layout). */
async function clickAt(id: string, x: number, y: number, yCategories?: number): Promise<void> {
  const { layout } = await waitPlot(id);
  const box = await page.locator(`[data-testid="${id}"] .nsewdrag[data-subplot="xy"]`).boundingBox();
  if (!box) throw new Error(`no plot area in ${id}`);
  const [x0, x1] = layout.xaxis.range;
  const [y0, y1] = yCategories === undefined ? layout.yaxis.range : [-0.5, yCategories - 0.5];
  await page.mouse.click(box.x + ((x - x0) / (x1 - x0)) * box.width, box.y + (1 - (y - y0) / (y1 - y0)) * box.height);
}

const close = (a: number, b: number, tol = 1e-4) => Math.abs(a - b) <= tol * Math.max(1, Math.abs(b));

beforeAll(async () => {
  mkdirSync(SCREENSHOTS, { recursive: true });
  await ensureUiBuilt();
  srv = await startDashboard({ model: 'embedded' });
  br = await openBrowser();
  page = br.page;
  await page.goto(`${srv.url}/?view=attribution&prompt=${encodeURIComponent(SENTENCE)}&target=${encodeURIComponent(' lord')}&contrast=${encodeURIComponent(' heart')}`);
});

afterAll(async () => {
  await br?.close();
  await srv?.close();
});

describe('explaining a prompt', () => {
  it('attribution: the bars and the heads grid are the API\'s components; they add up to the logit difference', async () => {
    const body = { prompt: SENTENCE, target: await tok(' lord'), vs: await tok(' heart'), position: -1, topNeurons: 12 };
    const r = (await api('/api/attribution', body)).body;
    const terms = r.components.filter((c: any) => c.kind !== 'neuron');
    const sum = terms.reduce((a: number, c: any) => a + c.value, 0);
    expect(Math.abs(sum - r.total)).toBeLessThan(1e-3);
    const fig = await waitPlot('fig-attribution', (d) => d[0].y.includes('total'));
    const bars = new Map<string, number>(fig.data[0].y.map((label: string, i: number) => [label, fig.data[0].x[i]]));
    const largest = [...terms].sort((a: any, b: any) => Math.abs(b.value) - Math.abs(a.value)).slice(0, 24);
    for (const c of largest) expect(close(bars.get(c.label)!, c.value), c.label).toBe(true);
    const other = terms.filter((c: any) => !largest.includes(c)).reduce((a: number, c: any) => a + c.value, 0);
    if (terms.length > 24) expect(close(bars.get(`other ${terms.length - 24}`)!, other)).toBe(true);
    expect(bars.size).toBe(Math.min(terms.length, 25) + 1);
    expect(close(bars.get('total')!, r.total)).toBe(true);
    // The bars (total left out) add up to the total.
    expect(Math.abs([...bars].filter(([k]) => k !== 'total').reduce((a, [, v]) => a + v, 0) - r.total)).toBeLessThan(1e-3);
    expect(fig.layout.title.text.replace(/<br>/g, ' ')).toContain('logit(" lord") − logit(" heart")');
    expect(await page.locator('[data-testid="attr-total"]').textContent()).toBe(r.total.toFixed(3));
    const heads = await waitPlot('fig-attribution-heads');
    const z = heads.data[0].z as number[][];
    for (const c of terms.filter((t: any) => t.kind === 'head')) expect(close(z[c.layer][c.head], c.value), c.label).toBe(true);
    const neurons = await page.locator('[data-testid="attr-neuron"]').allTextContents();
    expect(neurons).toEqual(r.components.filter((c: any) => c.kind === 'neuron').map((c: any) => c.label));
    await shot('view-attribution');

    // Explaining logit(target) alone: the figure updates to its own run.
    await page.locator('[data-testid="attr-mode"]').selectOption('single');
    const single = (await api('/api/attribution', { ...body, vs: undefined })).body;
    const f2 = await waitPlot('fig-attribution', (_d, l) => !l.title.text.includes('heart'));
    expect(close(f2.data[0].x[f2.data[0].y.indexOf('total')], single.total)).toBe(true);
    await page.locator('[data-testid="attr-mode"]').selectOption('diff');
  });

  it('graph: nodes and edges are the API\'s at the threshold; the slider prunes edges; clicking a head opens its attention', async () => {
    await page.locator('[data-testid="tab-graph"]').click();
    const edgesOf = (data: any[]) => data.filter((t) => t.mode === 'lines').reduce((a, t) => a + t.x.filter((v: number | null) => v === null).length, 0);
    const nodesOf = (data: any[]) => new Set(data.filter((t) => t.mode === 'markers').flatMap((t) => t.customdata as string[]));
    const at = async (threshold: number) => (await api('/api/graph', { prompt: SENTENCE, position: -1, threshold })).body;
    const g04 = await at(0.04);
    let fig = await waitPlot('fig-graph', (_d, l) => /edges above 0\.04/.test(l.title.text));
    expect(edgesOf(fig.data)).toBe(g04.edges.length);
    expect(nodesOf(fig.data)).toEqual(new Set(g04.nodes.map((n: any) => n.id)));
    expect(fig.layout.title.text.replace(/<br>/g, ' ')).toContain(`${g04.edges.length} edges`);
    // The tokens coloured by the share of the prediction reaching them: a distribution over the tokens the routes reach.
    const shares = async () => page.locator('[data-testid="fig-graph-tokens"] .t').evaluateAll((els) => els.map((e) => Number((e as HTMLElement).dataset.value || 0)));
    let sh = await shares();
    expect(sh).toHaveLength(g04.tokens.length);
    const sum = sh.reduce((a, b) => a + b, 0);
    expect(sum).toBeLessThanOrEqual(1 + 1e-6);
    const title = (await page.locator('[data-testid="fig-graph-tokens"] [data-testid="text-title"]').textContent())!;
    const stops = /; ([\d.]+) % stops at/.exec(title);
    expect(Math.abs(sum + (stops ? Number(stops[1]) / 100 : 0) - 1), title).toBeLessThan(1e-3);
    const reached = new Set(g04.nodes.filter((n: any) => n.kind === 'embed').map((n: any) => n.position));
    sh.forEach((v, i) => expect(v > 0, `token ${i}`).toBe(reached.has(i)));
    await shot('view-graph');

    // The slider at 0.2: the graph the API builds at 0.2 (fewer edges), pruned in the page without a request.
    const calls = br.calls.length;
    await page.locator('[data-testid="graph-threshold"]').fill('0.2');
    const g20 = await at(0.2);
    fig = await waitPlot('fig-graph', (_d, l) => /edges above 0\.2 /.test(l.title.text));
    expect(g20.edges.length).toBeLessThan(g04.edges.length);
    expect(edgesOf(fig.data)).toBe(g20.edges.length);
    expect(nodesOf(fig.data)).toEqual(new Set(g20.nodes.map((n: any) => n.id)));
    expect(br.calls.slice(calls).filter((c) => c.url.includes('/api/graph')).length).toBe(0);
    // ... and the library's pruning of the 0.02 graph the page holds agrees.
    const g02 = await at(0.02);
    expect(pruneFlowGraph(g02, 0.2).edges.length).toBe(g20.edges.length);
    expect(page.url()).toContain('graph.t=0.2');
    sh = await shares();
    const reached20 = new Set(g20.nodes.filter((n: any) => n.kind === 'embed').map((n: any) => n.position));
    sh.forEach((v, i) => expect(v > 0, `token ${i}`).toBe(reached20.has(i)));

    // Click a head node: the Attention view opens on that head.
    const heads = fig.data.find((t) => t.mode === 'markers' && t.name === 'attention head');
    expect(heads, 'a head survives at 0.2').toBeTruthy();
    const id = heads.customdata[0] as string;
    const [, layer, head] = /^H(\d+)\.(\d+)_/.exec(id)!;
    await clickAt('fig-graph', heads.x[0], heads.y[0]);
    await expect.poll(() => page.url(), { timeout: 10_000 }).toContain('view=attention');
    expect(page.url()).toContain(`att.l=${layer}`);
    expect(await page.locator('[data-testid="locked-head"]').textContent()).toBe(`L${layer}H${head}`);
    await page.goBack();
    await waitPlot('fig-graph');

    // Click an MLP node: the Neurons view opens on that layer's neurons.
    const mlps = (await waitPlot('fig-graph')).data.find((t) => t.mode === 'markers' && t.name === 'MLP');
    const mlpLayer = Number(/^M(\d+)_/.exec(mlps.customdata[0])![1]);
    await clickAt('fig-graph', mlps.x[0], mlps.y[0]);
    await expect.poll(() => page.url(), { timeout: 10_000 }).toContain('view=neurons');
    expect(page.url()).toContain(`nrn.layer=${mlpLayer}`);
    const ofLayer = (await api('/api/neurons/top', { prompt: SENTENCE, k: 15, target: await tok(' lord'), vs: await tok(' heart'), layer: mlpLayer })).body;
    const byAct = await waitPlot('fig-neurons-activation', (d) => d[0].y.every((l: string) => l.startsWith(`L${mlpLayer}N`)));
    expect([...byAct.data[0].y].reverse()).toEqual(ofLayer.byActivation.map((n: any) => `L${n.layer}N${n.neuron}`));
    await page.locator('[data-testid="nrn-layer"]').selectOption('all');
  });

  it('neurons: the top lists are the API\'s; a neuron page shows its activations, corpus examples and output tokens; ablate and patch it', async () => {
    await page.locator('[data-testid="tab-neurons"]').click();
    const top = (await api('/api/neurons/top', { prompt: SENTENCE, k: 15, target: await tok(' lord'), vs: await tok(' heart') })).body;
    const byAttr = await waitPlot('fig-neurons-attribution');
    expect([...byAttr.data[0].y].reverse()).toEqual(top.byAttribution.neurons.map((n: any) => `L${n.layer}N${n.neuron}`));
    [...byAttr.data[0].x].reverse().forEach((v: number, i: number) => expect(close(v, top.byAttribution.neurons[i].value)).toBe(true));
    const byAct = await waitPlot('fig-neurons-activation');
    expect([...byAct.data[0].y].reverse()).toEqual(top.byActivation.map((n: any) => `L${n.layer}N${n.neuron}`));

    // Click the top neuron by attribution (the top bar).
    const first = top.byAttribution.neurons[0];
    const n = byAttr.data[0].y.length;
    await clickAt('fig-neurons-attribution', first.value / 2, n - 1, n);
    await expect.poll(() => page.url(), { timeout: 10_000 }).toContain(`nrn.n=${first.neuron}`);
    expect(await page.locator('[data-testid="neuron-page"]').textContent()).toContain(`L${first.layer}N${first.neuron}`);

    const acts = (await api('/api/neurons/activations', { prompt: SENTENCE, layer: first.layer, neuron: first.neuron })).body;
    await expect.poll(() => page.locator('[data-testid="fig-neuron-text"] .t').count(), { timeout: 30_000 }).toBe(acts.tokens.length);
    const values = await page.locator('[data-testid="fig-neuron-text"] .t').evaluateAll((els) => els.map((e) => Number((e as HTMLElement).dataset.value)));
    values.forEach((v, i) => expect(close(v, acts.activations[i]), `position ${i}`).toBe(true));

    // The corpus examples: harvested once (the first request of the page), read from the cache by the API's request.
    await expect.poll(() => page.locator('[data-testid="fig-neuron-examples"] .t').count(), { timeout: 180_000 }).toBeGreaterThan(8);
    const ex = (await api('/api/neurons/examples', { layer: first.layer, neuron: first.neuron, k: 8, before: 12, after: 4 })).body;
    expect(ex.fromCache).toBe(true);
    expect(await page.locator('[data-testid="neuron-examples-source"]').textContent()).toMatch(/harvested by this request/);
    const shown = await page.locator('[data-testid="fig-neuron-examples"] .t').evaluateAll((els) => els.map((e) => (e as HTMLElement).dataset.value ?? ''));
    const want = ex.examples.flatMap((e: any) => ['', ...e.activations.map(String), '']);
    expect(shown.length).toBe(want.length);
    shown.forEach((v, i) => expect(v === '' ? want[i] === '' : close(Number(v), Number(want[i])), `token ${i}`).toBe(true));
    expect(await page.locator('[data-testid="fig-neuron-examples"] [data-testid="text-title"]').textContent()).toMatch(/top 8 activating examples in tinyshakespeare\.txt/);

    const out = (await api('/api/neurons/output', { layer: first.layer, neuron: first.neuron, k: 8 })).body;
    const outFig = await waitPlot('fig-neuron-output');
    const xs = outFig.data[0].x;
    [...out.top, ...[...out.bottom].reverse()].forEach((t: any, i: number) => expect(close(xs[i], t.value)).toBe(true));

    // Ablate it, then patch it in from a sentence of the same length.
    await page.locator('[data-testid="nrn-ablate"]').click();
    const abl = (await api('/api/ablate', {
      prompt: SENTENCE, metric: { kind: 'logit_diff', correct: await tok(' lord'), incorrect: await tok(' heart') }, ablations: [{ kind: 'neuron', layer: first.layer, neuron: first.neuron }],
    })).body;
    const ablFig = await waitPlot('fig-neuron-ablate');
    expect(close(ablFig.data[0].x[0], abl.ablated)).toBe(true);
    expect(close(ablFig.data[0].x[1], abl.clean)).toBe(true);
    const SOURCE = 'I will not speak with her, nor shall she see my';
    await page.locator('[data-testid="nrn-source"]').fill(SOURCE);
    await page.locator('[data-testid="nrn-source"]').press('Enter');
    await page.locator('[data-testid="nrn-patch"]').click();
    const patched = (await api('/api/neurons/patch', {
      prompt: SENTENCE, source: SOURCE, layer: first.layer, neuron: first.neuron, metric: { kind: 'logit_diff', correct: await tok(' lord'), incorrect: await tok(' heart') },
    })).body;
    const pFig = await waitPlot('fig-neuron-patch');
    expect(close(pFig.data[0].x[0], patched.patched)).toBe(true);
    expect(await page.locator('[data-testid="fig-neuron-patch"] [data-testid="stale"]').count()).toBe(0);
    // Another source: the figure keeps its own run, marked stale until Patch is pressed.
    await page.locator('[data-testid="nrn-source"]').fill('I will not speak with them, nor shall they see my');
    await page.locator('[data-testid="nrn-source"]').press('Enter');
    await expect.poll(() => page.locator('[data-testid="fig-neuron-patch"] [data-testid="stale"]').textContent(), { timeout: 10_000 }).toMatch(/source prompt changed.*press Patch/);
    await page.locator('[data-testid="nrn-patch"]').click();
    await expect.poll(() => page.locator('[data-testid="fig-neuron-patch"] [data-testid="stale"]').count(), { timeout: 30_000 }).toBe(0);
    await waitPlot('fig-neuron-patch'); // the new run's figure, not an error
    await page.evaluate(() => window.scrollTo(0, 0));
    await shot('view-neurons');
    await page.locator('[data-testid="neuron-page"]').evaluate((e) => window.scrollTo(0, e.getBoundingClientRect().top + window.scrollY - 120));
    await shot('view-neuron-page');
  });

  it('no page errors and no console errors', () => {
    expect(br.errors).toEqual([]);
  });
});
