/**
 * Distributed dataset experiments on a real redis-server (Debian's, on a free loopback port, its own directory, no
 * persistence, a password; a key prefix of the tests' own), two `lensboard worker` processes (the password in the
 * URL) and `lensboard batch --redis` submitters (the password from LENSBOARD_REDIS_PASSWORD): the outputs equal the
 * local run's byte for byte, also when a worker is killed mid-shard, when the submitter is killed and restarted,
 * and when Redis stops mid-run and comes back (empty: every unfinished shard is queued again).
 */
import { mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { checkRedis, redisClient, validateSettings } from '../../../batch/queue.ts';
import { freePort, lens, lensRun, sleep, startRedis, type Proc } from '../../helpers/processes.ts';

const OUTPUTS = ['items.jsonl', 'aggregate.json', 'figures.json', 'ablation-sweep-logit_diff.csv'];
const EXPERIMENT = { dataset: { kind: 'ioi', n: 32, seed: 4 }, analysis: { kind: 'sweep', metric: { kind: 'logit_diff' } }, shardSize: 8 };
const SHARDS = 4;
const PASSWORD = 'test-secret';
const PREFIX = 'lbtest';

let dir: string;
let file: string;
let port: number;
let url: string;
let redis: Proc;
const workers: Proc[] = [];
let local: Buffer[];

/** A worker that loses its lock 1.5 s after it stops renewing it, checked every 0.5 s (defaults: 30 s, 10 s). */
async function startWorker(): Promise<Proc> {
  const w = lens(['worker', '--redis', url.replace('//', `//:${PASSWORD}@`), '--prefix', PREFIX, '--threads', '1', '--model', 'embedded', '--lock-duration', '1500', '--stalled-interval', '500']);
  await w.waitFor(/"msg":"worker ready"/, 120_000);
  return w;
}

const submit = (out: string) => lens(['batch', file, '--out', out, '--redis', url, '--prefix', PREFIX, '--threads', '1', '--formats', 'json,csv'], { LENSBOARD_REDIS_PASSWORD: PASSWORD });

async function shardsIn(out: string): Promise<number> {
  return (await readdir(join(out, 'shards')).catch(() => [])).filter((f) => /^\d{6}\.json$/.test(f)).length;
}

async function waitForShards(out: string, n: number, ms = 60_000): Promise<void> {
  const t0 = Date.now();
  while ((await shardsIn(out)) < n) {
    if (Date.now() - t0 > ms) throw new Error(`fewer than ${n} shards in ${out} after ${ms} ms`);
    await sleep(50);
  }
}

async function expectLocalOutputs(out: string): Promise<void> {
  for (let i = 0; i < OUTPUTS.length; i++) {
    const got = await readFile(join(out, OUTPUTS[i]));
    expect(got.equals(local[i]), `${OUTPUTS[i]} differs from the local run's`).toBe(true);
  }
  expect(await shardsIn(out)).toBe(SHARDS);
}

/** `lensboard worker`'s per-shard log lines (pino JSON on stdout) from `from` characters on. */
function shardLog(w: Proc, from = 0): { shard: number; msg: string; attempt: number }[] {
  return w.stdout.slice(from).split('\n').filter((l) => l.includes('"shard"')).map((l) => JSON.parse(l));
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'lensboard-batch-dist-'));
  file = join(dir, 'experiment.json');
  await writeFile(file, JSON.stringify(EXPERIMENT));
  port = await freePort();
  url = `redis://127.0.0.1:${port}`;
  redis = await startRedis(port, join(dir, 'redis'), PASSWORD);
  const reference = lensRun(['batch', file, '--out', join(dir, 'local'), '--threads', '1', '--formats', 'json,csv', '--quiet']);
  workers.push(...(await Promise.all([startWorker(), startWorker()])));
  const r = await reference;
  expect(r.code, r.stderr).toBe(0);
  local = await Promise.all(OUTPUTS.map((f) => readFile(join(dir, 'local', f))));
});

afterAll(async () => {
  for (const w of workers) w.kill('SIGKILL');
  redis?.kill('SIGKILL');
  await Promise.all([...workers.map((w) => w.exited), redis?.exited]);
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe('lensboard batch --redis with two lensboard worker processes', () => {
  it("equals the local run byte for byte, the shards shared by both workers", async () => {
    const out = join(dir, 'plain');
    const sub = submit(out);
    expect(await sub.exited, sub.stderr).toBe(0);
    expect(sub.stderr).toMatch(new RegExp(`queued ${SHARDS} shard\\(s\\) on redis://127\\.0\\.0\\.1:${port} \\(prefix ${PREFIX}\\)`));
    await expectLocalOutputs(out);
    const status = JSON.parse(await readFile(join(out, 'status.json'), 'utf8'));
    expect(status).toMatchObject({ state: 'done', mode: 'distributed', shardsDone: SHARDS });
    expect(Object.values(status.workers as Record<string, number>).reduce((a, b) => a + b, 0)).toBe(SHARDS);
    const client = redisClient({ url, prefix: PREFIX, password: PASSWORD });
    const keys = await client.keys('*');
    client.disconnect();
    expect(keys.length).toBeGreaterThan(0);
    expect(keys.filter((k) => !k.startsWith(`${PREFIX}:shards:`))).toEqual([]); // every key under the prefix
    expect(keys.filter((k) => /:\w{32}-\d+$/.test(k))).toEqual([]); // the collected jobs were removed
  });

  it('the submitter killed (SIGKILL) and started again resumes: finished shards are kept, the rest collected from the queue', async () => {
    const out = join(dir, 'killed-submitter');
    const first = submit(out);
    await waitForShards(out, 1);
    first.kill('SIGKILL');
    await first.exited;
    const kept = await shardsIn(out);
    expect(kept).toBeLessThan(SHARDS);
    const second = submit(out);
    expect(await second.exited, second.stderr).toBe(0);
    expect(second.stderr).toMatch(new RegExp(`resuming: ${kept} of ${SHARDS} shards already done`));
    expect(second.stderr).not.toMatch(/queued \d+ shard/); // its jobs were still on the queue: none added twice
    await expectLocalOutputs(out);
  });

  it('Redis stopped mid-run: the submitter says so and waits; when Redis is back (empty) it queues the lost shards again and finishes', async () => {
    const out = join(dir, 'redis-restart');
    const sub = submit(out);
    await waitForShards(out, 1);
    redis.kill('SIGTERM');
    await redis.exited;
    await sub.waitFor(new RegExp(`lost the connection to Redis at redis://127\\.0\\.0\\.1:${port} \\(ECONNREFUSED\\); waiting for it to come back\\. Finished shards are safe in`));
    await sleep(600); // status.json is written at most twice a second
    expect(JSON.parse(await readFile(join(out, 'status.json'), 'utf8')).state).toBe('waiting');
    redis = await startRedis(port, join(dir, 'redis'), PASSWORD);
    expect(await sub.exited, sub.stderr).toBe(0);
    expect(sub.stderr).toMatch(/Redis at redis:\/\/127\.0\.0\.1:\d+ is back; checking the queue/);
    await expectLocalOutputs(out);
    for (const w of workers) expect(w.running).toBe(true); // the workers waited Redis out
    expect(workers.map((w) => /"msg":"lost Redis; retrying until it is back/.test(w.stdout))).toEqual([true, true]);
  });

  it('a worker killed (SIGKILL) mid-shard: the shard goes back to the queue and the other worker runs it; each shard counted once', async () => {
    const out = join(dir, 'killed-worker');
    const [victim, survivor] = workers;
    const from = [victim.stdout.length, survivor.stdout.length];
    const sub = submit(out);
    await victim.waitFor(/"msg":"shard started"/, 60_000, from[0]);
    await sleep(100);
    victim.kill('SIGKILL');
    expect(await sub.exited, sub.stderr).toBe(0);
    const started = shardLog(victim, from[0]).filter((l) => l.msg === 'shard started').map((l) => l.shard);
    const finished = shardLog(victim, from[0]).filter((l) => l.msg === 'shard done').map((l) => l.shard);
    const lost = started.filter((s) => !finished.includes(s));
    expect(lost).toHaveLength(1); // killed inside that shard
    expect(sub.stderr).toMatch(new RegExp(`shard ${lost[0]} stalled: its worker stopped renewing its lock`));
    expect(shardLog(survivor, from[1]).filter((l) => l.msg === 'shard done').map((l) => l.shard)).toContain(lost[0]);
    await expectLocalOutputs(out); // items.jsonl: every item once, in order
    const status = JSON.parse(await readFile(join(out, 'status.json'), 'utf8'));
    expect(Object.values(status.workers as Record<string, number>).reduce((a, b) => a + b, 0)).toBe(SHARDS);
  });

  it('Redis unreachable, too old, or a bad URL: a clear error before anything is queued', async () => {
    const nobody = await freePort();
    const batch = await lensRun(['batch', file, '--out', join(dir, 'never'), '--redis', `redis://127.0.0.1:${nobody}`]);
    expect(batch.code).toBe(1);
    expect(batch.stderr).toMatch(new RegExp(`lensboard batch: cannot reach Redis at redis://127\\.0\\.0\\.1:${nobody} \\(ECONNREFUSED\\): is redis-server running there`));
    await expect(stat(join(dir, 'never'))).rejects.toThrow(/ENOENT/); // nothing written
    await expect(checkRedis({ url: `redis://:secret@127.0.0.1:${nobody}`, prefix: 'lensboard' }))
      .rejects.toThrow(new RegExp(`^cannot reach Redis at redis://:\\*\\*\\*@127\\.0\\.0\\.1:${nobody} \\(ECONNREFUSED\\)`)); // the password is not printed

    // An old Redis: a server speaking RESP that says it is 5.0.7.
    const old: Server = createServer((socket) => {
      socket.on('data', (d) => {
        for (const cmd of d.toString().split('*').slice(1)) {
          const name = cmd.split('\r\n')[2]?.toUpperCase();
          const info = '# Server\r\nredis_version:5.0.7\r\nloading:0\r\n';
          socket.write(name === 'INFO' ? `$${info.length}\r\n${info}\r\n` : '+OK\r\n');
        }
      });
    });
    await new Promise<void>((r) => old.listen(0, '127.0.0.1', r));
    const oldPort = (old.address() as { port: number }).port;
    await expect(checkRedis({ url: `redis://127.0.0.1:${oldPort}`, prefix: 'lensboard' }))
      .rejects.toThrow(`Redis at redis://127.0.0.1:${oldPort} is version 5.0.7; Lensboard's queue (BullMQ) needs Redis 6.2.0 or newer (Debian 12 ships 7.0)`);
    old.close();
    await expect(checkRedis({ url, prefix: PREFIX, password: PASSWORD })).resolves.toMatch(/^\d+\.\d+\.\d+$/);
    for (const password of [undefined, 'wrong']) {
      await expect(checkRedis({ url, prefix: PREFIX, ...(password ? { password } : {}) }))
        .rejects.toThrow(new RegExp(`^Redis at redis://127\\.0\\.0\\.1:${port} refused the connection's credentials \\((NOAUTH|WRONGPASS)`));
    }

    expect(() => validateSettings({ url: 'http://127.0.0.1:6379', prefix: 'lensboard' })).toThrow('--redis: the URL must start with redis:// or rediss:// (TLS); got http://');
    expect(() => validateSettings({ url: 'redis://h:1', prefix: 'a b' })).toThrow("--prefix: 'a b' must be 1..64 letters, digits, _ . or -");
    expect(() => validateSettings({ url: 'redis://h:1', prefix: 'p', tlsCa: join(dir, 'no-ca.pem') })).toThrow(/--tls-ca: cannot read '.*no-ca\.pem': ENOENT/);
  });
});
