/** Jobs under load: 100 concurrent mixed requests, /api/health within 100 ms during a long job, cancel (DELETE or disconnect) within 1 s, a stuck job's runner killed and restarted. */
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEFAULT_PROCESSING } from '../../../hooks/config.ts';
import { HookedTransformer } from '../../../hooks/HookedTransformer.ts';
import type { HookName } from '../../../hooks/hookPoints.ts';
import { Rng } from '../../../hooks/random.ts';
import type { Tensor } from '../../../hooks/tensor.ts';
import { LimitsSchema } from '../../../services/limits.ts';
import { CancelledError } from '../../../server/errors.ts';
import { ModelRunner } from '../../../server/host/ModelRunner.ts';
import pino from 'pino';
import { get, maxAbsDiff, post, startServer, type JsonAnswer, type TestServer } from './helpers.ts';

let srv: TestServer;
let ref: HookedTransformer;
const api = (p: string) => `${srv.url}${p}`;
const LONG_ROWS = 400;

beforeAll(async () => {
  srv = await startServer({ limits: { maxBatch: LONG_ROWS, tokensPerStep: 64 } });
  ref = await HookedTransformer.fromPretrained(join(srv.packageRoot, 'tiny'), { threads: 1 });
});

afterAll(async () => {
  await srv?.close();
  await ref?.dispose();
});

/** 400 prompts of 64 random token ids: 400 forward steps of one prompt each (tokensPerStep = 64). */
function longPrompt(seed: number): number[][] {
  const rng = new Rng(seed);
  return Array.from({ length: LONG_ROWS }, () => Array.from({ length: 64 }, () => rng.int(0, 50257)));
}

/** Starts a long forward as SSE; resolves once its first progress event arrived, with its job id and the rest of the stream. */
async function startLongJob(seed: number): Promise<{ id: string; rest: Promise<string>; signal: AbortController }> {
  const signal = new AbortController();
  const res = await fetch(api('/api/forward'), {
    method: 'POST', signal: signal.signal,
    headers: { 'content-type': 'application/json', accept: 'text/event-stream' },
    body: JSON.stringify({ prompt: longPrompt(seed), topK: 1 }),
  });
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
  return { id, rest, signal };
}

describe('100 concurrent mixed requests', () => {
  it('all succeed with the library\'s results', async () => {
    const texts = Array.from({ length: 10 }, (_, i) => `prompt number ${i} about ${['cats', 'dogs', 'graphs', 'heads', 'circuits'][i % 5]}`);
    const expected = await Promise.all(texts.map(async (t) => {
      const logits = await ref.forward(t); // [1, pos, d_vocab]
      const [, cache] = await ref.runWithCache(t, { namesFilter: ['blocks.1.attn.hook_pattern', 'blocks.0.hook_resid_post'] as HookName[] });
      return { tokens: ref.toTokens(t)[0], logits, cache };
    }));
    const argmax = (logits: Tensor, p: number) => logits.index(0, 0).index(0, p).argmax().item();
    const requests = Array.from({ length: 100 }, (_, i) => {
      const t = i % 10;
      switch (i % 5) {
        case 0: return post(api('/api/tokenize'), { text: texts[t] }).then((r) => {
          expect(r.body.tokens[0]).toEqual(expected[t].tokens);
        });
        case 1: return post(api('/api/forward'), { prompt: texts[t], topK: 1 }).then((r) => {
          expect(r.status).toBe(200);
          r.body.top[0].forEach((c: { token: number }[], p: number) => expect(c[0].token).toBe(argmax(expected[t].logits, p)));
        });
        case 2: return post(api('/api/attention'), { prompt: texts[t], layers: [1] }).then((r) => {
          expect(maxAbsDiff(r.body.patterns[0].flat(2), expected[t].cache.get('blocks.1.attn.hook_pattern').data)).toBeLessThan(1e-6);
        });
        case 3: return post(api('/api/activations'), { prompt: texts[t], hook: 'blocks.0.hook_resid_post', select: { batch: 0 } }).then((r) => {
          expect(maxAbsDiff(r.body.values.flat(), expected[t].cache.get('blocks.0.hook_resid_post').data)).toBeLessThan(1e-5);
        });
        default: return get(i % 2 ? api('/api/health') : api('/api/model')).then((r) => {
          expect(r.status).toBe(200);
          expect(r.body.status ?? r.body.name).toBe(i % 2 ? 'ok' : 'tiny');
        });
      }
    });
    const results = await Promise.allSettled(requests);
    expect(results.filter((r) => r.status === 'rejected')).toEqual([]);
  });
});

describe('long jobs', () => {
  it('/api/health answers within 100 ms while a long job runs and 20 more wait; DELETE stops it within 1 s; the queue then runs correctly', async () => {
    const long = await startLongJob(1);
    const queued = Array.from({ length: 20 }, (_, i) => post(api('/api/forward'), { prompt: [50256, 100 + i, 200 + i], topK: 1 }));
    try {
      await testHealthAndCancel(long, queued);
    } finally {
      await fetch(api(`/api/jobs/${long.id}`), { method: 'DELETE' });
    }
  });

  async function testHealthAndCancel(long: Awaited<ReturnType<typeof startLongJob>>, queued: Promise<JsonAnswer>[]): Promise<void> {
    while ((await get(api('/api/jobs'))).body.jobs.length < 21) await new Promise((r) => setTimeout(r, 10));
    const times: number[] = [];
    for (let i = 0; i < 20; i++) {
      const h = await get(api('/api/health'));
      times.push(h.ms);
      expect(h.body.jobs.running).toBe(1);
      await new Promise((r) => setTimeout(r, 20));
    }
        expect(Math.max(...times)).toBeLessThan(100);
    const jobs = (await get(api('/api/jobs'))).body.jobs;
    expect(jobs[0]).toMatchObject({ id: long.id, kind: 'forward', state: 'running', progress: { total: LONG_ROWS } });
    expect(jobs[0].progress.done).toBeLessThan(LONG_ROWS);
    expect(jobs.length).toBe(21);

    const cancel = await fetch(api(`/api/jobs/${long.id}`), { method: 'DELETE' });
    const outcome = await cancel.json();
    expect(outcome).toMatchObject({ id: long.id, outcome: 'cancelled', how: 'flag' });
    expect(outcome.stoppedInMs).toBeLessThan(1000);
    const stream = await long.rest;
    expect(stream).toContain('event: cancelled');
    expect(stream).not.toContain('event: result');

    // the 20 queued forwards then run, with the library's answers
    const answers = await Promise.all(queued);
    for (const [i, r] of answers.entries()) {
      expect(r.status).toBe(200);
      const logits = await ref.forward([50256, 100 + i, 200 + i]);
      r.body.top[0].forEach((c: { token: number }[], p: number) => expect(c[0].token).toBe(logits.index(0, 0).index(0, p).argmax().item()));
    }
  }

  it('a client that disconnects cancels its job within 1 s; a queued job can be cancelled too', async () => {
    const long = await startLongJob(2);
    const behind = fetch(api('/api/forward'), { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ prompt: longPrompt(3), topK: 1 }) });
    let queuedId: string | undefined;
    for (let i = 0; i < 50 && !queuedId; i++) {
      queuedId = (await get(api('/api/jobs'))).body.jobs.find((j: { state: string }) => j.state === 'queued')?.id;
      if (!queuedId) await new Promise((r) => setTimeout(r, 20));
    }
    const dq = await (await fetch(api(`/api/jobs/${queuedId}`), { method: 'DELETE' })).json();
    expect(dq).toMatchObject({ id: queuedId, outcome: 'cancelled', how: 'dequeued' });
    const again = await (await fetch(api(`/api/jobs/${queuedId}`), { method: 'DELETE' })).json();
    expect(again).toEqual({ id: queuedId, outcome: 'cancelled', how: null, stoppedInMs: 0 });
    const behindAnswer = await behind;
    expect(behindAnswer.status).toBe(409);
    expect((await behindAnswer.json()).error).toBe(`job ${queuedId} was cancelled`);

    const t0 = performance.now();
    long.signal.abort();
    await long.rest.catch(() => undefined);
    let left = 1;
    while (left > 0 && performance.now() - t0 < 3000) {
      left = (await get(api('/api/jobs'))).body.jobs.length;
      if (left > 0) await new Promise((r) => setTimeout(r, 10));
    }
    expect(left).toBe(0);
    expect(performance.now() - t0).toBeLessThan(1000);
    expect((await get(api('/api/health'))).body).toMatchObject({ modelState: 'ready', jobs: { running: 0, queued: 0 } });
  });

  it('DELETE of an unknown job → 404 JSON', async () => {
    const r = await fetch(api('/api/jobs/nope'), { method: 'DELETE' });
    expect(r.status).toBe(404);
    expect((await r.json()).error).toContain('no running, queued or recently ended job "nope"');
  });

  it('DELETE of a job that has already ended answers how it ended (a cancel racing the result is not an error)', async () => {
    const res = await fetch(api('/api/forward'), {
      method: 'POST', headers: { 'content-type': 'application/json', accept: 'text/event-stream' },
      body: JSON.stringify({ prompt: [50256, 7, 8], topK: 1 }),
    });
    const text = await res.text(); // the whole stream: the job has ended
    expect(text).toContain('event: result');
    const id = JSON.parse(/event: job\ndata: (.*)\n/.exec(text)![1]).id as string;
    const r = await fetch(api(`/api/jobs/${id}`), { method: 'DELETE' });
    expect(r.status).toBe(200);
    expect(await r.json()).toEqual({ id, outcome: 'finished', how: null, stoppedInMs: 0 });
  });
});

describe('a job that does not check the cancel flag', () => {
  it('is stopped by killing its runner process after cancelGraceMs; the runner is restarted and answers correctly', async () => {
    const limits = LimitsSchema.parse({ cancelGraceMs: 20, maxBatch: 1000 });
    const source = { kind: 'dir' as const, name: 'tiny', dir: join(srv.packageRoot, 'tiny'), root: srv.packageRoot };
    const worker = await ModelRunner.start(
      { source, options: { device: 'cpu', roots: srv.host.roots, threads: 1, processing: { ...DEFAULT_PROCESSING }, offline: true }, limits },
      { log: pino({ level: 'silent' }), recycleRssBytes: 2 ** 30 },
    );
    const pid = worker.health.pid;
    try {
      // tokenizing ~1.2 MB of text is one long synchronous step with no cancel check in it
      const job = worker.submit('tokenize', { text: 'lorem ipsum '.repeat(100_000) });
      const after = worker.submit('forward', { prompt: [50256, 7, 8], topK: 1 });
      while (worker.jobs()[0]?.state !== 'running') await new Promise((r) => setTimeout(r, 1));
      await new Promise((r) => setTimeout(r, 100)); // let the worker get into the tokenizer (it takes seconds)
      const outcome = await worker.cancel(job.id)!;
      expect(outcome).toMatchObject({ outcome: 'cancelled', how: 'terminated' });
      expect(outcome.stoppedInMs).toBeLessThan(1000);
      await expect(job.result).rejects.toBeInstanceOf(CancelledError);
      const r = await after.result; // runs on the restarted runner
      const logits = await ref.forward([50256, 7, 8]);
      r.top[0].forEach((c, p) => expect(c[0].token).toBe(logits.index(0, 0).index(0, p).argmax().item()));
      expect(worker.state).toBe('ready');
      expect(worker.health).toMatchObject({ restarts: 1, lastRestart: { reason: expect.stringContaining(`killed to stop job ${job.id}`) } });
      expect(worker.health.pid).not.toBe(pid);
    } finally {
      await worker.close();
    }
  });
});
