/**
 * The dashboard's Experiments view end to end: the real server started with --experiments-dir, real `lensboard batch`
 * runs writing into it (one finished, one running while the page watches, then stopped), Debian's Chromium through
 * playwright-core. The figure on the page is the run's aggregate; the progress moves while the run runs.
 */
import { mkdirSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { lens, lensRun, sleep, type Proc } from '../helpers/processes.ts';
import { ensureUiBuilt, openBrowser, plotOf, SCREENSHOTS, startDashboard, type Browser, type DashboardServer } from './helpers.ts';

let dir: string;
let srv: DashboardServer;
let br: Browser;
let page: Page;
let running: Proc | null = null;

async function experiment(name: string, n: number, shardSize: number): Promise<string> {
  const file = join(dir, `${name}.json`);
  await writeFile(file, JSON.stringify({ name, dataset: { kind: 'ioi', n, seed: 1 }, analysis: { kind: 'sweep', metric: { kind: 'logit_diff' } }, shardSize }));
  return file;
}

/** Polls `read` until `ok` holds (the page's CSP forbids evaluating strings, so no waitForFunction). */
async function until<T>(read: () => Promise<T>, ok: (v: T) => boolean, what: string, ms = 60_000): Promise<T> {
  const t0 = Date.now();
  let last: T | undefined;
  for (;;) {
    last = await read().catch(() => undefined as T);
    if (last !== undefined && ok(last)) return last;
    if (Date.now() - t0 > ms) throw new Error(`${what}: not reached in ${ms} ms (last: ${JSON.stringify(last)})`);
    await sleep(200);
  }
}

const text = (testid: string) => page.locator(`[data-testid="${testid}"]`).innerText();

beforeAll(async () => {
  mkdirSync(SCREENSHOTS, { recursive: true });
  dir = await mkdtemp(join(tmpdir(), 'lensboard-e2e-experiments-'));
  const runs = join(dir, 'runs');
  const [, done] = await Promise.all([
    ensureUiBuilt(),
    lensRun(['batch', await experiment('finished', 6, 3), '--out', join(runs, 'finished'), '--threads', '1', '--formats', 'json']),
  ]);
  expect(done.code, done.stderr).toBe(0);
  srv = await startDashboard({ config: { experimentsDir: runs } });
  br = await openBrowser();
  page = br.page;
});

afterAll(async () => {
  running?.kill('SIGKILL');
  await br?.close();
  await srv?.close();
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe('dashboard: Experiments view', () => {
  it("lists the experiments and draws a finished one's aggregate figure", async () => {
    await page.goto(`${srv.url}/?view=experiments&exp=finished`);
    await until(() => text('exp-state-finished'), (t) => t === 'done', 'finished row');
    expect(await text('exp-progress-finished')).toBe('6/6 items · 2/2 shards');
    const aggregate = JSON.parse(await readFile(join(dir, 'runs', 'finished', 'aggregate.json'), 'utf8'));
    const fig = await until(() => plotOf(page, 'fig-exp-ablation-sweep-logit_diff'), (f) => f.data.length > 0, 'the sweep figure');
    expect(fig.data[0].z).toEqual(aggregate.mean.delta); // the page draws the aggregate's mean
    expect(fig.layout.title.text).toMatch(/when one head is zero-ablated .*\(mean over 6 items\)/);
    expect(await text('exp-detail')).toMatch(/sweep over 6 ioi items, model embedded, 2 shards of 3, local/);
    await sleep(300);
    await page.screenshot({ path: join(SCREENSHOTS, 'experiments-finished.png'), fullPage: true });
  });

  it('shows a running experiment and its progress moving, then its end when stopped', async () => {
    running = lens(['batch', await experiment('live', 400, 10), '--out', join(dir, 'runs', 'live'), '--threads', '1', '--formats', 'json']);
    const itemsDone = async () => {
      if ((await text('exp-state-live')) !== 'running') return -1;
      return Number(/^(\d+)\/400 items/.exec(await text('exp-progress-live'))?.[1] ?? -1);
    };
    const first = await until(itemsDone, (n) => n >= 10, 'the live run running with progress', 120_000);
    await until(itemsDone, (n) => n > first, 'its progress moving', 60_000);
    await page.locator('[data-testid="exp-row-live"] button.name').click();
    await until(() => text('exp-detail'), (t) => t.includes('sweep over 400 ioi items') && t.includes('figures appear here when the run is done'), 'the live detail');
    await page.locator('[data-testid="exp-row-live"] .bar').waitFor();
    await page.screenshot({ path: join(SCREENSHOTS, 'experiments.png'), fullPage: true });
    running.kill('SIGTERM');
    expect(await running.exited).toBe(130);
    await until(() => text('exp-state-live'), (t) => t === 'failed', 'the stopped run');
    await until(() => text('exp-detail'), (t) => t.includes('stopped by SIGTERM; run the same command again to resume'), 'its message');
    expect(br.errors).toEqual([]);
  });

  it('the API: the list, CSV, unknown and escaping ids', async () => {
    const list = await (await fetch(`${srv.url}/api/experiments`)).json();
    expect(list.configured).toBe(true);
    expect(list.experiments.map((e: { id: string }) => e.id).sort()).toEqual(['finished', 'live']);
    const csv = await (await fetch(`${srv.url}/api/experiments?format=csv`)).text();
    expect(csv.split('\r\n')[0]).toBe('id,name,analysis,dataset,model,state,items_done,items,shards_done,shards,updated_at');
    for (const id of ['nope', '..', '.hidden', '..%2F..%2Fetc']) {
      const r = await fetch(`${srv.url}/api/experiments/${id}`);
      expect(r.status, id).toBe(404);
      expect((await r.json()).error, id).toMatch(/no experiment|not found|Cannot GET|no route/i);
    }
  });
});
