/**
 * A memory budget per job and bounded answers (issue 17, finding 3): the 132 KB IOI request runs in steps that fit the
 * budget — the runner's measured peak RSS stays under it — and its answer equals the library's; the runner gives the
 * memory back (recycled when it keeps too much); a job whose smallest step cannot fit, or whose answer would be too
 * large, is refused with a 400 stating the estimate and the limit.
 */
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { directLogitAttribution } from '../../../hooks/analysis/index.ts';
import { HookedTransformer } from '../../../hooks/HookedTransformer.ts';
import { PACKAGE_MODELS_DIR } from '../../../server/config.ts';
import { get, maxAbsDiff, post, startServer, type TestServer } from './helpers.ts';

const MiB = 2 ** 20;
const IOI_TEXT = 'When Mary and John went to the store, '.repeat(12) + 'John gave a drink to';
const IOI_BODY = { prompts: Array.from({ length: 256 }, () => ({ text: IOI_TEXT, io: 'Mary', s: 'John' })) };
const BUDGET = 128 * MiB;

let srv: TestServer;
const api = (p: string) => `${srv.url}${p}`;

beforeAll(async () => {
  // The budget decides the step size here: tokensPerPass no longer bounds it. Recycling after any job that keeps 1 MiB.
  srv = await startServer(
    { model: 'embedded', limits: { maxJobMemoryBytes: BUDGET, tokensPerPass: 1_000_000 }, recycleRssBytes: MiB },
    { packageRoot: PACKAGE_MODELS_DIR },
  );
});
afterAll(async () => srv?.close());

describe('the 132 KB IOI request under a 128 MiB budget', () => {
  it('runs in steps whose measured peak stays under the budget, equals the library, and the memory is given back', async () => {
    const before = (await get(api('/api/health'))).body.runner;
    const r = await post(api('/api/ioi'), IOI_BODY);
    expect(r.status, JSON.stringify(r.body).slice(0, 300)).toBe(200);
    const ref = await HookedTransformer.fromPretrained(join(PACKAGE_MODELS_DIR, 'embedded'), { threads: 1 });
    const dla = await directLogitAttribution(ref, [ref.toTokens(IOI_TEXT)[0]], { correct: ref.toSingleToken(' Mary'), incorrect: ref.toSingleToken(' John') });
    await ref.dispose();
    expect(r.body.prompts).toHaveLength(256);
    expect(maxAbsDiff(r.body.prompts.map((p: { logitDiff: number }) => p.logitDiff), new Array(256).fill(dla.logitDiff.data[0]))).toBeLessThan(1e-3);
    expect(maxAbsDiff(r.body.headAttribution.flat(), dla.heads.data)).toBeLessThan(1e-3);

    let health = (await get(api('/api/health'))).body;
    for (let i = 0; i < 200 && health.runner.restarts === 0; i++) {
      await new Promise((res) => setTimeout(res, 50));
      health = (await get(api('/api/health'))).body;
    }
    const job = health.runner.lastJob;
    expect(job.peak - job.before).toBeGreaterThan(0);
    expect(job.peak - job.before).toBeLessThan(BUDGET);
    // It kept more than recycleRss (1 MiB here: the job's onnxruntime session alone is more), so the runner was
    // restarted: its memory is the system's again.
    const kept = job.after - before.rssBytes;
    expect(kept, JSON.stringify({ loaded: before.rssBytes, job })).toBeGreaterThan(MiB);
    expect(health.runner.restarts).toBe(1);
    expect(health.runner.lastRestart.reason).toMatch(/^recycled: its RSS after a job was \d+ MiB/);
    for (let i = 0; i < 600 && health.modelState !== 'ready'; i++) {
      await new Promise((res) => setTimeout(res, 50));
      health = (await get(api('/api/health'))).body;
    }
    expect(health.modelState).toBe('ready');
    expect(health.runner.pid).not.toBe(before.pid);
    console.log(`IOI 132 KB under a 128 MiB budget: runner RSS ${(job.before / MiB).toFixed(0)} MiB before, peak ${(job.peak / MiB).toFixed(0)}, ` +
      `after ${(job.after / MiB).toFixed(0)} (after recycling: ${(health.runner.rssBytes / MiB).toFixed(0)})`);
  }, 120_000);
});

describe('refusals', () => {
  it('a step that cannot fit the budget → 400 stating the estimate, its parts and the budget', async () => {
    const prompt = Array.from({ length: 128 }, (_, i) => (i * 7) % 50257);
    const r = await post(api('/api/forward'), { prompt, topK: 1 });
    expect(r.status).toBe(400);
    expect(r.body.error).toMatch(/^this request needs an estimated 1\d\d\.\d MiB of memory for its smallest step \(one row\) \(/);
    expect(r.body.error).toContain('logits and log-probabilities 128 × 50257 floats ×2 per prompt: 49.1 MiB');
    expect(r.body.error).toContain('the per-job memory budget is 128.0 MiB (--max-job-memory): use shorter prompts');
  });

  it('saliency of the loss over 128 tokens (one forward and backward pass whose logits and gradient are dense) → 400 stating the estimate', async () => {
    const prompt = Array.from({ length: 128 }, (_, i) => (i * 7) % 50257);
    const r = await post(api('/api/saliency'), { prompt, metric: { kind: 'loss' } });
    expect(r.status).toBe(400);
    expect(r.body.error).toMatch(/^this request needs an estimated 1\d\d\.\d MiB of memory for its smallest step \(one row\) \(/);
    expect(r.body.error).toContain('logits and their gradient 2 × 128 × 50257 floats (the loss reads every position): 49.1 MiB');
    expect(r.body.error).toContain('onnxruntime working memory of a forward and backward pass over 128 tokens');
    // a logit difference reads two logits: it fits
    const ok = await post(api('/api/saliency'), { prompt, metric: { kind: 'logit_diff', correct: 5, incorrect: 6 } });
    expect(ok.status, JSON.stringify(ok.body).slice(0, 300)).toBe(200);
  });

  it('the 17 KB forward of 32 × 128 ids with topK 100 (33.5 MB of JSON before) → 400 stating the size and the limit', async () => {
    const prompt = Array.from({ length: 32 }, (_, r) => Array.from({ length: 128 }, (_, i) => (r * 131 + i) % 50257));
    expect(JSON.stringify({ prompt, topK: 100 }).length).toBeLessThan(20_000);
    const r = await post(api('/api/forward'), { prompt, topK: 100 });
    expect(r.status).toBe(400);
    expect(r.body.error).toBe(
      'the answer would be about 29.4 MiB of JSON (32 prompts × 128 positions × top 100); the limit is 16.0 MiB (maxResponseBytes): ask for a smaller topK, fewer prompts or shorter ones',
    );
  });
});

describe('the last guard on answer size', () => {
  let small: TestServer;
  beforeAll(async () => {
    small = await startServer({ limits: { maxResponseBytes: 65_536 } });
  });
  afterAll(async () => small?.close());

  it('an answer over maxResponseBytes once serialised → 400 (JSON), an SSE error event, or 400 for CSV', async () => {
    const text = Array.from({ length: 3000 }, (_, i) => `w${i}`).join(' '); // ~6000 tokens: ~90 KB of JSON
    const r = await post(`${small.url}/api/tokenize`, { text });
    expect(r.status).toBe(400);
    expect(r.body.error).toMatch(/^the answer is 0\.\d MiB of JSON; the limit is 0\.1 MiB \(maxResponseBytes\)/);
    const csv = await post(`${small.url}/api/tokenize?format=csv`, { text });
    expect(csv.status).toBe(400);
    expect(csv.body.error).toMatch(/^the answer is 0\.\d MiB of CSV/);
    const sse = await fetch(`${small.url}/api/tokenize`, { method: 'POST', headers: { 'content-type': 'application/json', accept: 'text/event-stream' }, body: JSON.stringify({ text }) });
    const body = await sse.text();
    expect(body).toContain('event: error');
    expect(body).toContain('"status":400');
    expect((await post(`${small.url}/api/tokenize`, { text: 'fits easily' })).status).toBe(200);
  });
});
