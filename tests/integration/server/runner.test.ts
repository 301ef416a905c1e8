/**
 * The server survives every cancel, crash and shutdown (issue 17, findings 1, 2 and 8): the real 132 KB IOI request
 * cancelled 20 times in a row, by disconnect and by DELETE, many times while onnxruntime runs; cooperative cancels
 * land within 1 s; a runner killed (SIGKILL) or crashed (SIGABRT) is restarted with its queued jobs answered; SIGTERM
 * during a job answers it as cancelled and exits 0 with "stopped" logged.
 */
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { directLogitAttribution } from '../../../hooks/analysis/index.ts';
import { HookedTransformer } from '../../../hooks/HookedTransformer.ts';
import { Rng } from '../../../hooks/random.ts';
import { PACKAGE_MODELS_DIR } from '../../../server/config.ts';
import { captureLog, get, maxAbsDiff, post, startServer, type TestServer } from './helpers.ts';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const EMBEDDED = join(PACKAGE_MODELS_DIR, 'embedded');
/** The request of finding 1: 256 prompts of 114 tokens, 131 KB of JSON. */
const IOI_TEXT = 'When Mary and John went to the store, '.repeat(12) + 'John gave a drink to';
const IOI_BODY = { prompts: Array.from({ length: 256 }, () => ({ text: IOI_TEXT, io: 'Mary', s: 'John' })) };
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** An SSE job request read incrementally: its id once the `job` event arrived, its events so far, and its end. */
interface LiveJob {
  id: string;
  events: { event: string; data: any }[];
  progressCount(): number;
  done: Promise<{ event: string; data: any }[]>;
  abort(): void;
}

async function startSseJob(url: string, path: string, body: unknown): Promise<LiveJob> {
  const controller = new AbortController();
  const res = await fetch(url + path, {
    method: 'POST', signal: controller.signal,
    headers: { 'content-type': 'application/json', accept: 'text/event-stream' }, body: JSON.stringify(body),
  });
  const reader = res.body!.getReader();
  const decoder = new TextDecoder();
  const events: { event: string; data: any }[] = [];
  let buffer = '';
  let gotJob: (id: string) => void = () => {};
  const job = new Promise<string>((r) => (gotJob = r));
  const done = (async () => {
    try {
      for (;;) {
        const { value, done: end } = await reader.read();
        if (end) break;
        buffer += decoder.decode(value, { stream: true });
        let i: number;
        while ((i = buffer.indexOf('\n\n')) >= 0) {
          const frame = buffer.slice(0, i);
          buffer = buffer.slice(i + 2);
          const event = /^event: (.*)$/m.exec(frame)?.[1];
          const data = /^data: (.*)$/m.exec(frame)?.[1];
          if (!event || data === undefined) continue;
          events.push({ event, data: JSON.parse(data) });
          if (event === 'job') gotJob(events.at(-1)!.data.id);
        }
      }
    } catch {
      // aborted by the test
    }
    return events;
  })();
  const id = await Promise.race([job, done.then(() => { throw new Error(`stream ended before its job event: ${JSON.stringify(events)}`); })]);
  return { id, events, progressCount: () => events.filter((e) => e.event === 'progress').length, done, abort: () => controller.abort() };
}

async function waitFor(what: string, cond: () => Promise<boolean> | boolean, timeoutMs = 30_000): Promise<void> {
  const t0 = Date.now();
  while (!(await cond())) {
    if (Date.now() - t0 > timeoutMs) throw new Error(`timed out waiting for ${what}`);
    await sleep(20);
  }
}

/** The library's answer for the IOI prompt: per-prompt logit difference and per-head attribution (every prompt is the same). */
async function referenceIoi(): Promise<{ logitDiff: number; heads: Float32Array }> {
  const ref = await HookedTransformer.fromPretrained(EMBEDDED, { threads: 1 });
  try {
    const dla = await directLogitAttribution(ref, [ref.toTokens(IOI_TEXT)[0]], { correct: ref.toSingleToken(' Mary'), incorrect: ref.toSingleToken(' John') });
    return { logitDiff: dla.logitDiff.data[0], heads: dla.heads.data.slice() };
  } finally {
    await ref.dispose();
  }
}

describe('the 132 KB IOI request, cancelled 20 times in a row', () => {
  // The cheapest faithful setup: the request runs as finding 1 ran it, one onnxruntime run over all 256 prompts
  // (tokensPerPass unbounded here; 1,024 tokens by default), and the grace is 100 ms (1 s by default), so a cancel that
  // lands inside that run outlasts the grace and the runner is killed there, on any machine — about half a minute in all.
  let srv: TestServer;
  let expected: Awaited<ReturnType<typeof referenceIoi>>;
  const { log, lines } = captureLog();

  beforeAll(async () => {
    srv = await startServer({ model: 'embedded', limits: { cancelGraceMs: 100, tokensPerPass: 1_000_000 } }, { packageRoot: PACKAGE_MODELS_DIR, log });
    expected = await referenceIoi();
  });
  afterAll(async () => srv?.close());

  it('by disconnect and by DELETE at many points, half of them inside onnxruntime: the server stays healthy and answers the next job', async () => {
    expect(JSON.stringify(IOI_BODY).length).toBeGreaterThan(130_000);
    const rng = new Rng(17);
    const ids: string[] = [];
    const inside: string[] = [];
    for (let i = 0; i < 20; i++) {
      const job = await startSseJob(srv.url, '/api/ioi', IOI_BODY);
      ids.push(job.id);
      // Half right away (queued behind a restart, or tokenizing); the other half 300–500 ms after the job started
      // running: past the tokenizer, inside the onnxruntime run. Each half by disconnect and by DELETE alternately.
      if (i % 4 >= 2) {
        await waitFor(`job ${job.id} to run`, async () => (await get(`${srv.url}/api/jobs`)).body.jobs.some((j: { id: string; state: string }) => j.id === job.id && j.state === 'running'));
        await sleep(rng.int(300, 500));
        inside.push(job.id);
      }
      if (i % 2 === 0) {
        job.abort();
        await waitFor(`job ${job.id} to stop`, async () => !(await get(`${srv.url}/api/jobs`)).body.jobs.some((j: { id: string }) => j.id === job.id));
      } else {
        const r = await fetch(`${srv.url}/api/jobs/${job.id}`, { method: 'DELETE' });
        expect(r.status).toBe(200);
        expect(await r.json()).toMatchObject({ id: job.id, outcome: 'cancelled' });
        expect((await job.done).map((e) => e.event)).toContain('cancelled');
      }
      const health = await get(`${srv.url}/api/health`);
      expect(health.status).toBe(200);
      expect(health.body).toMatchObject({ status: 'ok', model: 'embedded' });
      expect(['ready', 'restarting']).toContain(health.body.modelState);
    }
    // The next job is answered, with the library's values.
    const r = await post(`${srv.url}/api/ioi`, { prompts: IOI_BODY.prompts.slice(0, 3) });
    expect(r.status, JSON.stringify(r.body)).toBe(200);
    for (const p of r.body.prompts) expect(Math.abs(p.logitDiff - expected.logitDiff)).toBeLessThan(1e-3);
    expect(maxAbsDiff(r.body.headAttribution.flat(), expected.heads)).toBeLessThan(1e-3);

    // Every cancel is logged with its job id, endpoint and duration; those sent inside the onnxruntime run were
    // stopped by killing the runner there (before this fix, by terminating a thread inside it: the process aborted).
    const cancels = lines.filter((l) => l.msg === 'job cancelled' && ids.includes(l.jobId));
    expect(cancels.map((l) => l.jobId).sort()).toEqual([...ids].sort());
    for (const l of cancels) expect(l).toMatchObject({ endpoint: 'POST /api/ioi', durationMs: expect.any(Number) });
    const killedInside = cancels.filter((l) => l.how === 'terminated' && inside.includes(l.jobId)).length;
    expect(killedInside).toBeGreaterThanOrEqual(8); // of 10
    const killed = cancels.filter((l) => l.how === 'terminated').length;
    const health = (await get(`${srv.url}/api/health`)).body;
    expect(health.runner.restarts).toBe(killed);
    expect(health.runner.lastRestart.reason).toContain('still running 100 ms after it was cancelled');
    expect(lines.filter((l) => l.msg === 'model runner restarted').length).toBe(killed);
    console.log(`IOI cancel storm: ${cancels.length} cancels, ${killed} runner kills (${killedInside} of ${inside.length} sent inside the onnxruntime run), ` +
      `${cancels.length - killed} by the flag or from the queue`);
  }, 300_000);
});

describe('cooperative cancellation with the default steps', () => {
  let srv: TestServer;
  beforeAll(async () => {
    srv = await startServer({ model: 'embedded' }, { packageRoot: PACKAGE_MODELS_DIR });
  });
  afterAll(async () => srv?.close());

  it('DELETE of the 132 KB IOI request lands at a cancel check within 1 s, at every step it is tried at', async () => {
    const latencies: number[] = [];
    // Steps as fractions of the job's own step count, all in its first half: on a fast machine the last steps
    // follow each other so closely that a DELETE sent there can arrive after the job finished.
    for (const fraction of [0, 0.1, 0.2, 0.35, 0.5]) {
      const job = await startSseJob(srv.url, '/api/ioi', IOI_BODY);
      // Progress messages are throttled (≤ 20 a second): wait on the latest one's `done`, not on their count.
      const latest = () => job.events.filter((e) => e.event === 'progress').at(-1)?.data as { done: number; total: number } | undefined;
      await waitFor('first progress', () => latest() !== undefined);
      const total = latest()!.total;
      expect(total).toBeGreaterThanOrEqual(100);
      await waitFor(`progress ${fraction}`, () => latest()!.done >= fraction * total);
      const outcome = await (await fetch(`${srv.url}/api/jobs/${job.id}`, { method: 'DELETE' })).json();
      expect(outcome).toMatchObject({ id: job.id, outcome: 'cancelled', how: 'flag' });
      expect(outcome.stoppedInMs).toBeLessThan(1000);
      latencies.push(outcome.stoppedInMs);
      await job.done;
    }
    expect((await get(`${srv.url}/api/health`)).body.runner.restarts).toBe(0);
    console.log(`cooperative cancel latencies of the IOI request (ms): ${latencies.join(', ')}`);
  }, 120_000);
});

describe('a runner that dies', () => {
  let srv: TestServer;
  let ref: HookedTransformer;
  const { log, lines } = captureLog();
  const LONG = Array.from({ length: 40 }, (_, r) => Array.from({ length: 64 }, (_, i) => (r * 131 + i * 17) % 50257));

  beforeAll(async () => {
    srv = await startServer({ limits: { maxBatch: 100, tokensPerStep: 64 } }, { log });
    ref = await HookedTransformer.fromPretrained(join(srv.packageRoot, 'tiny'), { threads: 1 });
  });
  afterAll(async () => {
    await srv?.close();
    await ref?.dispose();
  });

  const small = (i: number) => [50256, 100 + i, 200 + i];
  async function expectLibraryTop(answer: { status: number; body: any }, prompt: number[]): Promise<void> {
    expect(answer.status, JSON.stringify(answer.body)).toBe(200);
    const logits = await ref.forward(prompt);
    answer.body.top[0].forEach((c: { token: number }[], p: number) => expect(c[0].token).toBe(logits.index(0, 0).index(0, p).argmax().item()));
  }
  const health = async () => (await get(`${srv.url}/api/health`)).body;

  it('SIGKILL while a job runs and 3 wait: the runner restarts, the interrupted job runs again, every job is answered', async () => {
    const long = await startSseJob(srv.url, '/api/forward', { prompt: LONG, topK: 1 });
    const queued = [0, 1, 2].map((i) => post(`${srv.url}/api/forward`, { prompt: small(i), topK: 1 }));
    await waitFor('progress', () => long.progressCount() >= 2);
    const { pid } = (await health()).runner;
    process.kill(pid, 'SIGKILL');
    const events = await long.done;
    expect(events.at(-1)!.event, JSON.stringify(events.at(-1))).toBe('result');
    expect(events.at(-1)!.data.top.length).toBe(LONG.length);
    for (const [i, a] of (await Promise.all(queued)).entries()) await expectLibraryTop(a, small(i));
    const h = await health();
    expect(h).toMatchObject({ status: 'ok', modelState: 'ready', runner: { restarts: 1 } });
    expect(h.runner.pid).not.toBe(pid);
    expect(h.runner.lastRestart.reason).toContain('killed by SIGKILL');
    expect(lines.some((l) => l.msg.startsWith('the runner died under a job') && l.jobId === long.id && l.endpoint === 'POST /api/forward')).toBe(true);
  });

  it('a crash (SIGABRT, as onnxruntime aborts) while idle: restarted, health says why, the next job is answered', async () => {
    const { pid } = (await health()).runner;
    process.kill(pid, 'SIGABRT');
    await waitFor('the restart', async () => (await health()).runner.restarts === 2 && (await health()).modelState === 'ready');
    expect((await health()).runner.lastRestart.reason).toContain('killed by SIGABRT (it crashed)');
    await expectLibraryTop(await post(`${srv.url}/api/forward`, { prompt: small(7), topK: 1 }), small(7));
  });

  it('a job under which the runner dies twice fails with a 500 that says so; the model keeps serving', async () => {
    const long = await startSseJob(srv.url, '/api/forward', { prompt: LONG, topK: 1 });
    await waitFor('progress', () => long.progressCount() >= 1);
    const first = (await health()).runner.pid;
    process.kill(first, 'SIGKILL');
    let second = 0;
    await waitFor('the job to run again on a new runner', async () => {
      const h = await health();
      const jobs = (await get(`${srv.url}/api/jobs`)).body.jobs;
      second = h.runner.pid;
      return h.modelState === 'ready' && second !== null && second !== first && jobs[0]?.id === long.id && jobs[0]?.state === 'running';
    });
    process.kill(second, 'SIGKILL');
    const events = await long.done;
    expect(events.at(-1)).toMatchObject({ event: 'error', data: { status: 500 } });
    expect(events.at(-1)!.data.error).toContain(`the model runner died twice while running job ${long.id}`);
    await waitFor('the restart', async () => (await health()).modelState === 'ready' && (await health()).runner.pid !== null);
    await expectLibraryTop(await post(`${srv.url}/api/forward`, { prompt: small(9), topK: 1 }), small(9));
    expect((await health()).runner.restarts).toBe(4);
    expect(lines.some((l) => l.msg === 'job failed' && l.jobId === long.id && l.status === 500)).toBe(true);
  });
});

describe('SIGTERM during a job', () => {
  it('the running IOI request answers "cancelled", the queued one 409, "stopped" is logged, exit 0 within 5 s, no runner left', async () => {
    const child = spawn(process.execPath, ['--import', 'tsx', 'server/index.ts', '--model', 'embedded', '--port', '0', '--threads', '1'], {
      cwd: ROOT, env: { ...process.env, LENSBOARD_MODEL: '' },
    });
    let text = '';
    child.stdout.on('data', (d) => (text += d));
    child.stderr.on('data', (d) => (text += d));
    const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
    try {
      await waitFor('listening', () => text.includes('Lensboard API listening'), 60_000);
      const url = JSON.parse(text.split('\n').find((l) => l.includes('Lensboard API listening'))!).url.replace(/\/$/, '');
      const runnerPid = (await get(`${url}/api/health`)).body.runner.pid;
      const running = await startSseJob(url, '/api/ioi', IOI_BODY);
      const queued = post(`${url}/api/forward`, { prompt: [50256, 1, 2], topK: 1 });
      await waitFor('a step of the IOI job', () => running.progressCount() >= 1);
      const t0 = Date.now();
      child.kill('SIGTERM');
      const code = await exited;
      const ms = Date.now() - t0;
      expect(code).toBe(0);
      expect(ms).toBeLessThan(5000);
      expect(text).toContain('"msg":"stopped"');
      expect((await running.done).map((e) => e.event)).toContain('cancelled');
      const q = await queued;
      expect(q.status).toBe(409);
      expect(q.body.error).toContain('the server is shutting down');
      expect(() => process.kill(runnerPid, 0)).toThrow(); // the runner is gone too
    } finally {
      if (child.exitCode === null) child.kill('SIGKILL');
    }
  }, 120_000);
});
