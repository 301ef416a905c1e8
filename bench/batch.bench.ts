/**
 * `npm run bench:batch`: the mean head-ablation sweep over IOI prompts (default 1,000, `--items N`) on the embedded
 * model, run by `lensboard batch` locally, then on a BullMQ queue with 1 and with 2 `lensboard worker` processes
 * (every run with one onnxruntime thread), on a redis-server this script starts on a free loopback port. Prints the
 * wall time of each run, the compute per shard (the workers' own timing), the queue's overhead per shard, and checks
 * that the three runs wrote the same aggregate.json. Each run is bounded (`--timeout S`, default 900 s).
 */
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { freePort, lens, startRedis, type Proc } from '../tests/helpers/processes.ts';

const { values } = parseArgs({ options: { items: { type: 'string' }, 'shard-size': { type: 'string' }, timeout: { type: 'string' } } });
const ITEMS = Number(values.items ?? 1000);
const SHARD = Number(values['shard-size'] ?? 50);
const TIMEOUT_MS = Number(values.timeout ?? 900) * 1000;
const SHARDS = Math.ceil(ITEMS / SHARD);

const dir = await mkdtemp(join(tmpdir(), 'lensboard-bench-batch-'));
const file = join(dir, 'experiment.json');
await writeFile(file, JSON.stringify({
  name: 'ioi-sweep', dataset: { kind: 'ioi', n: ITEMS, seed: 0 }, analysis: { kind: 'sweep', metric: { kind: 'logit_diff' } }, shardSize: SHARD,
}));
const procs: Proc[] = [];
const cleanup = async () => {
  for (const p of procs) p.kill('SIGKILL');
  await Promise.all(procs.map((p) => p.exited));
  await rm(dir, { recursive: true, force: true });
};
process.on('SIGINT', () => void cleanup().then(() => process.exit(130)));

/** Runs `lensboard batch`; returns its wall time of the run itself ("done: … in X s"), bounded by TIMEOUT_MS. */
async function batch(out: string, extra: string[] = []): Promise<number> {
  const p = lens(['batch', file, '--out', out, '--threads', '1', '--formats', 'json', ...extra]);
  procs.push(p);
  const timer = setTimeout(() => p.kill('SIGKILL'), TIMEOUT_MS);
  const code = await p.exited;
  clearTimeout(timer);
  if (code !== 0) throw new Error(`lensboard batch ${extra.join(' ')} exited ${code}:\n${p.stderr.slice(-2000)}`);
  const m = /done: \d+ shards in ([\d.]+) s/.exec(p.stderr);
  if (!m) throw new Error(`no timing line in:\n${p.stderr.slice(-2000)}`);
  return Number(m[1]);
}

/** Shard timings from worker logs ("shard done" lines: compute ms; timestamps of start and done). */
function shardTimes(w: Proc, from: number): { computeMs: number[]; first: number; last: number } {
  const lines = w.stdout.slice(from).split('\n').filter((l) => l.includes('"shard"')).map((l) => JSON.parse(l));
  const done = lines.filter((l) => l.msg === 'shard done');
  return {
    computeMs: done.map((l) => l.ms),
    first: Math.min(...lines.filter((l) => l.msg === 'shard started').map((l) => l.time)),
    last: Math.max(...done.map((l) => l.time)),
  };
}

const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
const ms = (s: number) => `${(s * 1000).toFixed(0)} ms`;

try {
  console.log(`bench:batch — mean head-ablation sweep over ${ITEMS} IOI prompts, embedded model, ${SHARDS} shards of ${SHARD}, one onnxruntime thread per process`);
  console.log(`load average before: ${loadavg().map((x) => x.toFixed(2)).join(', ')}`);
  const port = await freePort();
  const url = `redis://127.0.0.1:${port}`;
  const redis = await startRedis(port, join(dir, 'redis'));
  procs.push(redis);

  const local = await batch(join(dir, 'local'));
  console.log(`local:     ${local.toFixed(1)} s (model load included)`);

  const startWorker = async () => {
    const w = lens(['worker', '--redis', url, '--threads', '1', '--model', 'embedded']);
    procs.push(w);
    await w.waitFor(/"msg":"worker ready"/, 120_000);
    return w;
  };
  const w1 = await startWorker();
  const one = await batch(join(dir, 'one'), ['--redis', url]);
  const t1 = shardTimes(w1, 0);
  const compute = mean(t1.computeMs) / 1000;
  const span = (t1.last - t1.first) / 1000;
  const workerOverhead = (span - t1.computeMs.reduce((a, b) => a + b, 0) / 1000) / SHARDS;
  const endToEnd = (one - t1.computeMs.reduce((a, b) => a + b, 0) / 1000) / SHARDS;
  console.log(`1 worker:  ${one.toFixed(1)} s (model preloaded); compute per shard ${compute.toFixed(2)} s (${ms(compute / SHARD)} per item)`);
  console.log(`           queue overhead per shard: ${ms(workerOverhead)} on the worker (between shards), ${ms(endToEnd)} end to end (submitter included)`);

  const from = w1.stdout.length;
  const w2 = await startWorker();
  const two = await batch(join(dir, 'two'), ['--redis', url]);
  const split = [shardTimes(w1, from).computeMs.length, shardTimes(w2, 0).computeMs.length];
  console.log(`2 workers: ${two.toFixed(1)} s; shards per worker ${split.join(' + ')}; ${(local / two).toFixed(2)}× the local run, ${(one / two).toFixed(2)}× one worker`);

  const [a, b, c] = await Promise.all(['local', 'one', 'two'].map((d) => readFile(join(dir, d, 'aggregate.json'))));
  if (!a.equals(b) || !a.equals(c)) throw new Error('the runs wrote different aggregate.json files');
  console.log('aggregate.json: identical in all three runs');
  console.log(`load average after: ${loadavg().map((x) => x.toFixed(2)).join(', ')}`);
} finally {
  await cleanup();
}
