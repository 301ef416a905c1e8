/**
 * `npm run bench:soak [-- --minutes 10] [-- --seconds 90]`: the server under mixed load, on loopback only, for a bounded
 * time (10 minutes by default), then stopped. It starts the real server (`server/index.ts`, the embedded model, port 0)
 * as a child process and, from several concurrent clients, sends every endpoint a mix of requests — JSON, CSV and SSE,
 * small jobs and the 132 KB IOI request, a few malformed bodies — while:
 *   - clients disconnect from a random share of their requests at a random moment,
 *   - a canceller DELETEs a random running job every few seconds,
 *   - the model's runner process is SIGKILLed once a minute (its pid from GET /api/health),
 *   - GET /api/health is timed twice a second, and the RSS of the server and of its runner sampled every 5 s.
 * At the end it sends SIGTERM and reports: requests served, by status; 5xx (target 0); server crashes (target 0); lost
 * answers (a request neither answered nor abandoned by its client; an SSE stream without its last event; target 0);
 * health latency p50 / p95 / max (target p95 < 100 ms); RSS over time, with the least-squares trend per minute of the
 * second half (no upward trend); shutdown time and exit code.
 */
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { Rng } from '../hooks/random.ts';

const args = process.argv.slice(2);
const flag = (name: string) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? Number(args[i + 1]) : undefined;
};
const DURATION_MS = (flag('seconds') ?? (flag('minutes') ?? 10) * 60) * 1000;
const CLIENTS = flag('clients') ?? 4;
const KILL_EVERY_MS = (flag('kill-every') ?? 60) * 1000;
const REQUEST_TIMEOUT_MS = 180_000;
const ROOT = new URL('..', import.meta.url).pathname;

const rng = new Rng(flag('seed') ?? 17);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const mib = (b: number) => b / 2 ** 20;

function rssOf(pid: number | null): number | null {
  if (!pid) return null;
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) * 1024 : null;
  } catch {
    return null;
  }
}

// ───────────────────────────── the request mix ─────────────────────────────

const PROMPT = 'When Mary and John went to the store, John gave a drink to';
const CORRUPTED = 'When Mary and John went to the store, Mary gave a drink to';
const LD = { kind: 'logit_diff', correct: ' Mary', incorrect: ' John' };
const IOI_TEXT = 'When Mary and John went to the store, '.repeat(12) + 'John gave a drink to';
const BIG_IOI = { prompts: Array.from({ length: 256 }, () => ({ text: IOI_TEXT, io: 'Mary', s: 'John' })) };

interface Req {
  name: string;
  method: 'GET' | 'POST';
  path: string;
  body?: unknown;
  /** A job endpoint: may be asked for SSE. */
  job?: boolean;
  /** Statuses that are a correct answer to this request (besides 200). */
  expect?: number[];
  weight: number;
}

const MIX: Req[] = [
  { name: 'health', method: 'GET', path: '/api/health', weight: 3 },
  { name: 'models', method: 'GET', path: '/api/models', weight: 1 },
  { name: 'model', method: 'GET', path: '/api/model', weight: 1 },
  { name: 'jobs', method: 'GET', path: '/api/jobs', weight: 1 },
  { name: 'openapi', method: 'GET', path: '/api/openapi.json', weight: 1 },
  { name: 'dashboard', method: 'GET', path: '/', weight: 1, expect: [404] }, // 404 when ui/dist is not built
  { name: 'tokenize', method: 'POST', path: '/api/tokenize', body: { text: [PROMPT, 'Hello world'] }, job: true, weight: 3 },
  { name: 'forward', method: 'POST', path: '/api/forward', body: { prompt: [PROMPT, CORRUPTED], topK: 5 }, job: true, weight: 4 },
  { name: 'attention', method: 'POST', path: '/api/attention', body: { prompt: PROMPT, layers: [0, 1], scores: true }, job: true, weight: 3 },
  { name: 'activations', method: 'POST', path: '/api/activations', body: { prompt: PROMPT, hook: 'blocks.1.hook_resid_post', select: { batch: 0, pos: -1 } }, job: true, weight: 3 },
  { name: 'logit-lens', method: 'POST', path: '/api/logit-lens', body: { prompt: PROMPT, targets: [' Mary', ' John'], inclMid: true }, job: true, weight: 3 },
  { name: 'ablate', method: 'POST', path: '/api/ablate', body: { prompt: PROMPT, ablations: [{ kind: 'head', layer: 1, head: 2 }], metric: LD }, job: true, weight: 2 },
  { name: 'ablate/sweep', method: 'POST', path: '/api/ablate/sweep', body: { prompt: PROMPT, metric: LD, mode: 'mean' }, job: true, weight: 2 },
  { name: 'patch', method: 'POST', path: '/api/patch', body: { clean: PROMPT, corrupted: CORRUPTED, metric: LD, kinds: ['resid_pre', 'head_out_all_pos'] }, job: true, weight: 2 },
  { name: 'heads/detect', method: 'POST', path: '/api/heads/detect', body: { repeated: { seqLen: 20, batch: 4 } }, job: true, weight: 2 },
  { name: 'ioi', method: 'POST', path: '/api/ioi', body: { n: 40, seed: 3 }, job: true, weight: 2 },
  { name: 'ioi 132 KB', method: 'POST', path: '/api/ioi', body: BIG_IOI, job: true, weight: 1 },
  { name: 'composition', method: 'POST', path: '/api/circuits/composition', body: { mode: 'K', baselineSamples: 20 }, job: true, weight: 1 },
  { name: 'copying', method: 'POST', path: '/api/circuits/copying', body: {}, job: true, weight: 1 },
  { name: 'positional', method: 'POST', path: '/api/circuits/positional', body: { layer: 0, head: 2 }, job: true, weight: 1 },
  { name: 'top-copied', method: 'POST', path: '/api/circuits/top-copied', body: { layer: 1, head: 0, tokens: [' Mary', ' cat'] }, job: true, weight: 1 },
  { name: 'malformed', method: 'POST', path: '/api/forward', body: { prompt: 5, topk: 3 }, expect: [400], weight: 1 },
];
const TOTAL_WEIGHT = MIX.reduce((a, r) => a + r.weight, 0);

function pick(): Req {
  let x = rng.next() * TOTAL_WEIGHT;
  for (const r of MIX) if ((x -= r.weight) < 0) return r;
  return MIX[0];
}

// ───────────────────────────── accounting ─────────────────────────────

interface Outcome {
  name: string;
  /** HTTP status, 'aborted' (by this client, on purpose), or 'lost' (no answer, a broken SSE stream, a timeout, a reset). */
  status: number | 'aborted' | 'lost';
  detail?: string;
  ms: number;
}
const outcomes: Outcome[] = [];
const healthMs: number[] = [];
const rss: { t: number; server: number | null; runner: number | null }[] = [];
let kills = 0;
let deletes = 0;
let crashed = false;

// ───────────────────────────── the server ─────────────────────────────

console.log(`load average at start: ${loadavg().map((x) => x.toFixed(1)).join(', ')} on ${cpus().length} cores (other processes share them)`);
console.log(`soak: ${DURATION_MS / 1000} s, ${CLIENTS} clients, a runner kill every ${KILL_EVERY_MS / 1000} s`);
const server = spawn(process.execPath, ['--import', 'tsx', 'server/index.ts', '--model', 'embedded', '--port', '0', '--host', '127.0.0.1'], {
  cwd: ROOT, env: { ...process.env, LENSBOARD_MODEL: '' }, stdio: ['ignore', 'pipe', 'pipe'],
});
let serverLog = '';
server.stdout.on('data', (d) => (serverLog = (serverLog + d).slice(-200_000)));
server.stderr.on('data', (d) => (serverLog = (serverLog + d).slice(-200_000)));
let stopping = false;
const exited = new Promise<{ code: number | null; signal: string | null }>((r) => server.on('exit', (code, signal) => {
  if (!stopping) crashed = true;
  r({ code, signal });
}));

let url = '';
for (let i = 0; i < 1200 && !url; i++) {
  const line = serverLog.split('\n').find((l) => l.includes('Lensboard API listening'));
  if (line) url = JSON.parse(line).url.replace(/\/$/, '');
  else await sleep(50);
}
if (!url) throw new Error(`the server did not start:\n${serverLog}`);
const t0 = Date.now();
const elapsed = () => Date.now() - t0;
const running = () => elapsed() < DURATION_MS && !crashed;

async function health(): Promise<any> {
  const s = performance.now();
  const r = await fetch(`${url}/api/health`);
  const body = await r.json();
  healthMs.push(performance.now() - s);
  return body;
}

/** One request; with probability pAbort the client walks away at a random moment. */
async function send(req: Req, pAbort: number): Promise<void> {
  const sse = req.job && rng.next() < 0.25;
  const csv = !sse && req.job && rng.next() < 0.15;
  const abortAt = rng.next() < pAbort ? rng.int(0, 3000) : null;
  const controller = new AbortController();
  let abortedByUs = false;
  const timers = [
    abortAt === null ? null : setTimeout(() => ((abortedByUs = true), controller.abort()), abortAt),
    setTimeout(() => controller.abort(), REQUEST_TIMEOUT_MS),
  ];
  const start = performance.now();
  const record = (status: Outcome['status'], detail?: string) => outcomes.push({ name: req.name, status, detail, ms: performance.now() - start });
  try {
    const res = await fetch(`${url}${req.path}${csv ? '?format=csv' : ''}`, {
      method: req.method, signal: controller.signal,
      headers: { ...(req.body ? { 'content-type': 'application/json' } : {}), ...(sse ? { accept: 'text/event-stream' } : {}) },
      body: req.body ? JSON.stringify(req.body) : undefined,
    });
    const text = await res.text();
    if (sse && res.status === 200) {
      const last = [...text.matchAll(/^event: (\w+)$/gm)].at(-1)?.[1];
      if (last === 'result' || last === 'cancelled') record(200);
      else if (last === 'error') {
        const status = Number(/"status":(\d+)/.exec(text.slice(text.lastIndexOf('event: error')))?.[1] ?? 500);
        record(status, text.slice(text.lastIndexOf('event: error'), text.lastIndexOf('event: error') + 300));
      } else record('lost', `SSE stream ended after '${last}'`);
    } else record(res.status, res.status >= 400 ? text.slice(0, 300) : undefined);
  } catch (e) {
    if (abortedByUs) record('aborted');
    else record('lost', (e as Error).message);
  } finally {
    for (const t of timers) if (t) clearTimeout(t);
  }
}

async function client(): Promise<void> {
  while (running()) await send(pick(), 0.15);
}

async function canceller(): Promise<void> {
  while (running()) {
    await sleep(rng.int(2000, 5000));
    try {
      const jobs = (await (await fetch(`${url}/api/jobs`)).json()).jobs as { id: string }[];
      if (jobs.length === 0) continue;
      const r = await fetch(`${url}/api/jobs/${jobs[rng.int(0, jobs.length)].id}`, { method: 'DELETE' });
      await r.text();
      deletes++;
      if (r.status >= 500) outcomes.push({ name: 'DELETE /api/jobs/:id', status: r.status, ms: 0 });
    } catch (e) {
      outcomes.push({ name: 'DELETE /api/jobs/:id', status: 'lost', detail: (e as Error).message, ms: 0 });
    }
  }
}

async function killer(): Promise<void> {
  while (running()) {
    await sleep(KILL_EVERY_MS);
    if (!running()) break;
    const pid = (await health()).runner?.pid;
    if (pid) {
      process.kill(pid, 'SIGKILL');
      kills++;
    }
  }
}

async function observer(): Promise<void> {
  let n = 0;
  while (running()) {
    let runnerPid: number | null = null;
    try {
      runnerPid = (await health()).runner?.pid ?? null;
    } catch (e) {
      outcomes.push({ name: 'health probe', status: 'lost', detail: (e as Error).message, ms: 0 });
    }
    if (n++ % 10 === 0) rss.push({ t: elapsed() / 60_000, server: rssOf(server.pid!), runner: rssOf(runnerPid) });
    await sleep(500);
  }
}

async function reloader(): Promise<void> {
  // POST /api/models/load too, twice in a run: the active model is replaced by a fresh load of the same one.
  for (const at of [0.35, 0.7]) {
    while (running() && elapsed() < at * DURATION_MS) await sleep(1000);
    if (!running()) return;
    const start = performance.now();
    try {
      const r = await fetch(`${url}/api/models/load?stream=0`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ name: 'embedded' }) });
      await r.text();
      outcomes.push({ name: 'models/load', status: r.status, ms: performance.now() - start });
    } catch (e) {
      outcomes.push({ name: 'models/load', status: 'lost', detail: (e as Error).message, ms: performance.now() - start });
    }
  }
}

await Promise.all([...Array.from({ length: CLIENTS }, client), canceller(), killer(), observer(), reloader()]);

// ───────────────────────────── stop and report ─────────────────────────────

const finalHealth = crashed ? null : await health().catch(() => null);
stopping = true;
const s0 = Date.now();
server.kill('SIGTERM');
const exit = await Promise.race([exited, sleep(10_000).then(() => null)]);
const shutdownMs = Date.now() - s0;
if (!exit) server.kill('SIGKILL');

const pct = (xs: number[], p: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? s[Math.min(s.length - 1, Math.floor(p * s.length))] : NaN;
};
/** Least-squares slope (MiB per minute) of y over t. */
function slope(points: { t: number; y: number }[]): number {
  const n = points.length;
  if (n < 2) return NaN;
  const mt = points.reduce((a, p) => a + p.t, 0) / n;
  const my = points.reduce((a, p) => a + p.y, 0) / n;
  const num = points.reduce((a, p) => a + (p.t - mt) * (p.y - my), 0);
  const den = points.reduce((a, p) => a + (p.t - mt) ** 2, 0);
  return num / den;
}
const byStatus = new Map<string, number>();
for (const o of outcomes) byStatus.set(String(o.status), (byStatus.get(String(o.status)) ?? 0) + 1);
const served = outcomes.filter((o) => typeof o.status === 'number').length;
const fiveXX = outcomes.filter((o) => typeof o.status === 'number' && o.status >= 500);
const lost = outcomes.filter((o) => o.status === 'lost');
const unexpected4xx = outcomes.filter((o) => typeof o.status === 'number' && o.status >= 400 && o.status < 500 && o.status !== 409 && !MIX.find((m) => m.name === o.name)?.expect?.includes(o.status));
const half = rss.filter((r) => r.t >= DURATION_MS / 120_000);
const trend = (key: 'server' | 'runner') => slope(half.filter((r) => r[key] !== null).map((r) => ({ t: r.t, y: mib(r[key]!) })));
const minuteMeans = (key: 'server' | 'runner') => {
  const out: string[] = [];
  for (let m = 0; m < Math.ceil(DURATION_MS / 60_000); m++) {
    const ys = rss.filter((r) => r.t >= m && r.t < m + 1 && r[key] !== null).map((r) => mib(r[key]!));
    out.push(ys.length ? (ys.reduce((a, b) => a + b, 0) / ys.length).toFixed(0) : '–');
  }
  return out.join(' ');
};

console.log('\n## Soak result\n');
console.log(`| | |\n|---|---|`);
console.log(`| duration | ${(elapsed() / 60_000).toFixed(1)} min, ${CLIENTS} clients, load average at the end ${loadavg().map((x) => x.toFixed(1)).join(', ')} |`);
console.log(`| requests sent | ${outcomes.length} (served ${served}; abandoned by their client on purpose ${byStatus.get('aborted') ?? 0}) |`);
console.log(`| answers by status | ${[...byStatus].filter(([k]) => k !== 'aborted' && k !== 'lost').sort().map(([k, v]) => `${k}: ${v}`).join(', ')} |`);
console.log(`| DELETEs of running jobs | ${deletes} |`);
console.log(`| runner kills (SIGKILL) | ${kills}; restarts seen by health: ${finalHealth?.runner?.restarts ?? '?'} (since the last model load) |`);
console.log(`| 5xx | ${fiveXX.length} |`);
console.log(`| unexpected 4xx | ${unexpected4xx.length} |`);
console.log(`| server crashes | ${crashed ? 1 : 0} |`);
console.log(`| lost answers | ${lost.length} |`);
console.log(`| GET /api/health | ${healthMs.length} probes: p50 ${pct(healthMs, 0.5).toFixed(1)} ms, p95 ${pct(healthMs, 0.95).toFixed(1)} ms, max ${Math.max(...healthMs).toFixed(0)} ms |`);
console.log(`| server RSS per minute (MiB) | ${minuteMeans('server')}; trend over the second half ${trend('server').toFixed(2)} MiB/min |`);
console.log(`| runner RSS per minute (MiB) | ${minuteMeans('runner')}; trend over the second half ${trend('runner').toFixed(2)} MiB/min |`);
console.log(`| shutdown (SIGTERM) | exit ${exit ? (exit.code ?? exit.signal) : 'none within 10 s'} after ${shutdownMs} ms; "stopped" logged: ${serverLog.includes('"msg":"stopped"')} |`);
const problems = [...fiveXX, ...lost, ...unexpected4xx];
if (problems.length) {
  console.log('\nProblems (first 20):');
  for (const p of problems.slice(0, 20)) console.log(`  ${p.name}: ${p.status} ${p.detail ?? ''}`);
}
const ok = !crashed && fiveXX.length === 0 && lost.length === 0 && exit?.code === 0;
process.exit(ok ? 0 : 1);
