/**
 * End-to-end helpers: build the dashboard when ui/dist is stale, start the real server (createApp on 127.0.0.1:0) with a
 * random GPT-2-vocabulary checkpoint serving ui/dist, and drive Debian's Chromium through playwright-core.
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, rmSync } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import pino from 'pino';
import { chromium, type BrowserContext, type Download, type Page } from 'playwright-core';
import type { HookedTransformerConfig } from '../../hooks/config.ts';
import { createApp } from '../../server/app.ts';
import { uiIsStale } from '../../server/buildUi.ts';
import { validateConfig, type ServerConfigInput } from '../../server/config.ts';
import { ModelHost } from '../../server/host/ModelHost.ts';
import { gpt2Config, randomWeights } from '../../hooks/init.ts';
import { ADDITION_EOT_ID, ADDITION_VOCAB, additionTokenizerFiles } from '../../training/data/addition.ts';
import { writeHfCheckpoint } from '../helpers/checkpoints.ts';
import { writeTinyModel } from '../integration/server/helpers.ts';

export const ROOT = fileURLToPath(new URL('../../', import.meta.url));
export const UI_DIR = join(ROOT, 'ui');
export const UI_DIST = join(UI_DIR, 'dist');
export const ARTIFACTS = join(ROOT, 'tests', '.artifacts');
export const SCREENSHOTS = join(ARTIFACTS, 'screenshots');
export const CHROMIUM = process.env.LENSBOARD_CHROMIUM ?? '/usr/bin/chromium';

/** The e2e model: GPT-2's vocabulary (text prompts tokenize), 3 layers × 4 heads, n_ctx 128. */
export const E2E_MODEL: Partial<HookedTransformerConfig> = { n_layers: 3, d_model: 32, n_heads: 4, d_vocab: 50257, n_ctx: 128 };

/** Builds ui/ (vite build) when ui/dist is missing or older than the UI's sources or the figure builders; a lock keeps parallel test files from building twice. */
export async function ensureUiBuilt(): Promise<void> {
  const lock = join(tmpdir(), 'lensboard-ui-build.lock');
  for (let i = 0; ; i++) {
    try {
      mkdirSync(lock);
      break;
    } catch {
      if (i > 600) rmSync(lock, { recursive: true, force: true }); // a stale lock (a killed run) after 2 minutes
      await new Promise((r) => setTimeout(r, 200));
    }
  }
  try {
    if (!uiIsStale()) return;
    const vite = join(ROOT, 'node_modules', '.bin', 'vite');
    const r = spawnSync(vite, ['build', '--logLevel', 'warn'], { cwd: UI_DIR, encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`building the UI failed (vite build in ui/):\n${r.stdout}\n${r.stderr}`);
  } finally {
    rmSync(lock, { recursive: true, force: true });
  }
}

/**
 * A random tiny model with the addition model's character-level vocabulary (13 tokens: digits, '+', '=', end-of-text)
 * and its model card's example input (README.md front matter `widget`), as models/addition ships them.
 */
export async function writeTinyCharacterModel(dir: string, seed: number): Promise<HookedTransformerConfig> {
  const cfg = gpt2Config({ model_name: 'digits', n_layers: 2, d_model: 16, n_heads: 4, d_vocab: ADDITION_VOCAB, n_ctx: 20, bos_token_id: ADDITION_EOT_ID, eos_token_id: ADDITION_EOT_ID });
  await writeHfCheckpoint(dir, cfg, randomWeights(cfg, { seed, randomAffine: true, std: 0.2 }), { dtype: 'F32', prefix: false, buffers: false, lmHead: false });
  for (const [f, text] of Object.entries(additionTokenizerFiles(cfg.n_ctx))) await writeFile(join(dir, f), text);
  await writeFile(join(dir, 'README.md'), '---\nwidget:\n- text: "12345+67890="\n---\n# digits\n');
  return cfg;
}

export interface DashboardServer {
  url: string;
  cfg: HookedTransformerConfig;
  /** The loaded model's directory (its saes/ folder holds the SAEs the Features view lists). */
  modelDir: string;
  close(): Promise<void>;
}

/**
 * The real app on 127.0.0.1:0 with a model loaded and ui/dist served at /: the e2e model ('tiny', random weights) or
 * the shipped trained one ('embedded': 3 layers × 4 heads, n_ctx 128, with real induction heads; for screenshots);
 * `config` adds server configuration fields.
 */
export async function startDashboard(opts: { model?: 'tiny' | 'embedded'; config?: Partial<ServerConfigInput> } = {}): Promise<DashboardServer> {
  const tmp = await mkdtemp(join(tmpdir(), 'lensboard-e2e-'));
  const name = opts.model ?? 'tiny';
  const packageRoot = name === 'embedded' ? join(ROOT, 'models') : join(tmp, 'models');
  await mkdir(join(tmp, 'extra'), { recursive: true });
  const tiny = name === 'tiny' ? await writeTinyModel(join(packageRoot, 'tiny'), 7, E2E_MODEL) : null;
  if (name === 'tiny') await writeTinyCharacterModel(join(packageRoot, 'digits'), 8);
  const config = validateConfig({
    model: name, port: 0, threads: 1, offline: true, logLevel: 'silent', hfCacheDir: join(tmp, 'hf-cache'), cacheDir: join(tmp, 'cache'),
    modelRoots: [join(tmp, 'extra')], ...opts.config,
  });
  const host = await ModelHost.create(config, packageRoot);
  const info = await host.load(await host.resolve(name), { name, processing: { foldLn: true, centerWritingWeights: true, centerUnembed: true, foldValueBiases: true } });
  const cfg = tiny ?? (info.config as unknown as HookedTransformerConfig);
  const app = createApp(config, host, { log: pino({ level: 'silent' }), staticDir: UI_DIST });
  const server = await new Promise<Server>((resolve) => {
    const s = app.listen(0, '127.0.0.1', () => resolve(s));
  });
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    cfg,
    modelDir: join(packageRoot, name),
    close: async () => {
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
      await host.close();
      await rm(tmp, { recursive: true, force: true });
    },
  };
}

/** The flags a root, offline machine needs (playwright adds --headless and the user data dir). */
export const CHROMIUM_ARGS = [
  '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run',
];

export interface Browser {
  context: BrowserContext;
  page: Page;
  /** Every URL the page requested. */
  requests: string[];
  /** Every request with its method and body (to count requests). */
  calls: { method: string; url: string; body: string | null }[];
  /** Console errors and uncaught page errors. */
  errors: string[];
  /** Resolves once no request has been in flight for `quietMs` (a debounced field, a follow-up job would have started). */
  idle(quietMs?: number): Promise<void>;
  close(): Promise<void>;
}

/** Chromium at 1280×800 with a fresh profile, recording requests and console errors. */
export async function openBrowser(): Promise<Browser> {
  const profile = await mkdtemp(join(tmpdir(), 'lensboard-chromium-'));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    args: CHROMIUM_ARGS,
    viewport: { width: 1280, height: 800 },
    acceptDownloads: true,
  });
  const requests: string[] = [];
  const calls: Browser['calls'] = [];
  const errors: string[] = [];
  let inflight = 0;
  let lastActivity = Date.now();
  context.on('request', (r) => {
    requests.push(r.url());
    calls.push({ method: r.method(), url: r.url(), body: r.postData() });
    inflight++;
    lastActivity = Date.now();
  });
  const done = () => {
    inflight = Math.max(0, inflight - 1);
    lastActivity = Date.now();
  };
  context.on('requestfinished', done);
  context.on('requestfailed', done);
  const watch = (page: Page) => {
    page.on('console', (m) => {
      if (m.type() === 'error') errors.push(m.location().url ? `${m.text()} (${m.location().url})` : m.text());
    });
    page.on('pageerror', (e) => errors.push(`pageerror: ${e.message}`));
  };
  context.on('page', watch);
  const page = context.pages()[0] ?? (await context.newPage());
  watch(page);
  return {
    context, page, requests, calls, errors,
    idle: async (quietMs = 400) => {
      const until = Date.now() + 60_000;
      while ((inflight > 0 || Date.now() - lastActivity < quietMs) && Date.now() < until) await new Promise((r) => setTimeout(r, 50));
    },
    close: async () => {
      await context.close();
      await rm(profile, { recursive: true, force: true });
    },
  };
}

/** The data and layout Plotly holds for the figure card `id` (its first plot). */
export async function plotOf(page: Page, id: string): Promise<{ data: any[]; layout: any }> {
  return page.evaluate((sel) => {
    const el = document.querySelector(`[data-testid="${sel}"] .js-plotly-plot`) as any;
    if (!el || !el.data) throw new Error(`no plot in ${sel}`);
    return { data: JSON.parse(JSON.stringify(el.data)), layout: JSON.parse(JSON.stringify(el.layout)) };
  }, id);
}

/** Waits until the figure card `id` holds a plot whose data and layout satisfy `pred` (polled from here: the page's CSP forbids eval). */
export async function waitPlotOn(
  page: Page, id: string, pred: (data: any[], layout: any) => boolean = () => true, timeout = 60_000,
): Promise<{ data: any[]; layout: any }> {
  const until = Date.now() + timeout;
  let last: unknown = null;
  for (;;) {
    try {
      const f = await plotOf(page, id);
      if (f.data.length > 0 && pred(f.data, f.layout)) return f;
      last = f.layout?.title?.text;
    } catch (e) {
      last = e;
    }
    if (Date.now() > until) throw new Error(`figure ${id} did not reach the expected state in ${timeout} ms (last: ${String(last)})`);
    await new Promise((r) => setTimeout(r, 150));
  }
}

/** The file a click downloads: its suggested name and bytes. */
export async function downloadOf(page: Page, click: () => Promise<void>): Promise<{ name: string; bytes: Buffer }> {
  const [d] = await Promise.all([page.waitForEvent('download') as Promise<Download>, click()]);
  const path = await d.path();
  return { name: d.suggestedFilename(), bytes: readFileSync(path) };
}

/** A JSON request to the API at `base` (POST when there is a body). */
export async function apiAt<T = any>(base: string, path: string, body?: unknown): Promise<{ status: number; body: T }> {
  const res = await fetch(`${base}${path}`, body === undefined ? {} : { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  return { status: res.status, body: (await res.json()) as T };
}

/** Clicks the centre of cell (row, col) of a heatmap with rows top→bottom and cols left→right in an nRows × nCols grid. */
export async function clickCellOn(page: Page, id: string, row: number, col: number, nRows: number, nCols: number, subplot = 'xy'): Promise<void> {
  const box = await page.locator(`[data-testid="${id}"] .nsewdrag[data-subplot="${subplot}"]`).boundingBox();
  if (!box) throw new Error(`no drag box in ${id}`);
  await page.mouse.click(box.x + ((col + 0.5) / nCols) * box.width, box.y + ((row + 0.5) / nRows) * box.height);
}

/**
 * A screenshot of the viewport into tests/.artifacts/screenshots/; with LENSBOARD_DOCS_SCREENSHOTS=1 also a copy for the
 * README in docs/screenshots/, as a 256-colour PNG (sharp, installed with @huggingface/transformers) to stay small in
 * the repository.
 */
export async function screenshot(page: Page, name: string): Promise<void> {
  const path = join(SCREENSHOTS, `${name}.png`);
  await page.screenshot({ path });
  if (process.env.LENSBOARD_DOCS_SCREENSHOTS === '1') {
    const docs = join(ROOT, 'docs', 'screenshots');
    mkdirSync(docs, { recursive: true });
    const sharp = (await import('sharp')).default;
    await sharp(path).png({ palette: true, colours: 256, compressionLevel: 9, effort: 10 }).toFile(join(docs, `${name}.png`));
  }
}
