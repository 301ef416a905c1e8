/** Long analysis jobs on a wider random checkpoint (4 layers × 16 heads): sweep progress over SSE, cancel (DELETE or disconnect) within 1 s, the sweep-size limit. */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Rng } from '../../../hooks/random.ts';
import { get, post, startServer, writeTinyModel, type TestServer } from './helpers.ts';

let srv: TestServer;
let root: string;
const api = (p: string) => `${srv.url}${p}`;
const SWEEP_LIMIT = 3000;

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'lensboard-analysis-'));
  await writeTinyModel(join(root, 'wide'), 2, { n_layers: 4, n_heads: 16, d_model: 64 });
  srv = await startServer({ model: 'wide', limits: { maxSweepTokens: SWEEP_LIMIT } }, { packageRoot: root });
});

afterAll(async () => {
  await srv?.close();
  if (root) await rm(root, { recursive: true, force: true });
});

const prompt = (n: number) => {
  const rng = new Rng(n);
  return [50256, ...Array.from({ length: n - 1 }, () => rng.int(0, 50256))];
};

/** A 64-head sweep, one head per forward pass, as SSE; resolves after its first progress event. */
async function startSweep(): Promise<{ id: string; rest: Promise<string>; abort: AbortController }> {
  const abort = new AbortController();
  const res = await fetch(api('/api/ablate/sweep'), {
    method: 'POST', signal: abort.signal,
    headers: { 'content-type': 'application/json', accept: 'text/event-stream' },
    body: JSON.stringify({ prompt: prompt(40), metric: { kind: 'loss' }, chunkSize: 1 }),
  });
  expect(res.status).toBe(200);
  const reader = res.body!.getReader();
  const decoder = new TextDecoder();
  let text = '';
  while (!text.includes('event: progress')) {
    const { value, done } = await reader.read();
    if (done) throw new Error(`stream ended early: ${text}`);
    text += decoder.decode(value, { stream: true });
  }
  const id = JSON.parse(/event: job\ndata: (.*)\n/.exec(text)![1]).id as string;
  const rest = (async () => {
    let more = text;
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return more;
      more += decoder.decode(value, { stream: true });
    }
  })();
  return { id, rest, abort };
}

describe('a long head sweep', () => {
  it('reports progress per pass, shows in /api/jobs, and stops within 1 s of DELETE (by its cancel check)', async () => {
    const sweep = await startSweep();
    const jobs = (await get(api('/api/jobs'))).body.jobs;
    expect(jobs[0]).toMatchObject({ id: sweep.id, kind: 'ablateSweep', state: 'running', progress: { total: 64 } });
    expect(jobs[0].progress.done).toBeLessThan(64);
    const health = await get(api('/api/health'));
    expect(health.body.jobs.running).toBe(1);
    const outcome = await (await fetch(api(`/api/jobs/${sweep.id}`), { method: 'DELETE' })).json();
    expect(outcome).toMatchObject({ id: sweep.id, outcome: 'cancelled', how: 'flag' });
    expect(outcome.stoppedInMs).toBeLessThan(1000);
    const stream = await sweep.rest;
    expect(stream).toContain('event: cancelled');
    expect(stream).not.toContain('event: result');
  });

  it('a client that disconnects cancels it within 1 s; the model then answers a small sweep in full', async () => {
    const sweep = await startSweep();
    const t0 = performance.now();
    sweep.abort.abort();
    await sweep.rest.catch(() => undefined);
    let left = 1;
    while (left > 0 && performance.now() - t0 < 3000) {
      left = (await get(api('/api/jobs'))).body.jobs.length;
      if (left > 0) await new Promise((r) => setTimeout(r, 10));
    }
    expect(left).toBe(0);
    expect(performance.now() - t0).toBeLessThan(1000);
    const small = await post(api('/api/ablate/sweep'), { prompt: prompt(8), metric: { kind: 'loss' }, layers: [3] });
    expect(small.status).toBe(200);
    expect(small.body.values.length).toBe(1);
    expect(small.body.values[0].length).toBe(16);
    expect(small.body.values[0].every((v: unknown) => typeof v === 'number' && Number.isFinite(v))).toBe(true);
  });
});

describe('the sweep-size limit (maxSweepTokens)', () => {
  it('a sweep or patch over the limit → 400 stating the limit and the request\'s size', async () => {
    const sweep = await post(api('/api/ablate/sweep'), { prompt: prompt(60), metric: { kind: 'loss' } });
    expect(sweep.status).toBe(400);
    expect(sweep.body.error).toBe(
      `the sweep is too large: 64 runs × 60 tokens = 3840 token positions; the limit is ${SWEEP_LIMIT} (maxSweepTokens): sweep fewer layers or use a shorter prompt`,
    );
    const ok = await post(api('/api/ablate/sweep'), { prompt: prompt(60), metric: { kind: 'loss' }, layers: [0] });
    expect(ok.status).toBe(200);
    const patch = await post(api('/api/patch'), { clean: prompt(20), corrupted: prompt(21).slice(1), metric: { kind: 'logit_diff', correct: 5, incorrect: 6 }, kinds: ['head_out_by_pos'] });
    expect(patch.status).toBe(400);
    expect(patch.body.error).toContain(`1280 runs × 20 tokens = 25600 token positions; the limit is ${SWEEP_LIMIT} (maxSweepTokens)`);
  });
});
