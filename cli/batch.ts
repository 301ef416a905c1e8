/**
 * `lensboard batch EXPERIMENT.json` (a dataset experiment, here or on a BullMQ queue with --redis) and
 * `lensboard worker --redis URL` (a queue worker). Exit codes as the other commands: 0 done, 1 failed, 2 bad input.
 */
import { resolve } from 'node:path';
import { z } from 'zod';
import { DEVICES } from '../hooks/devices.ts';
import { UserError } from '../services/context.ts';
import { UsageError } from './errors.ts';
import { flagHelp, parseFlags, type FlagDef } from './flags.ts';
import { FORMATS } from './output.ts';

const REDIS_FLAGS: FlagDef[] = [
  { flag: 'redis', type: 'string', path: 'redis', help: 'redis://[user:password@]HOST:PORT[/DB] (rediss:// for TLS); or LENSBOARD_REDIS_URL. The password may come from LENSBOARD_REDIS_PASSWORD instead' },
  { flag: 'prefix', type: 'string', path: 'prefix', help: 'BullMQ key prefix (default lensboard): submitters and workers of one prefix share a queue' },
  { flag: 'tls-ca', type: 'string', path: 'tlsCa', help: "a PEM file of the CA of Redis's TLS certificate (implies TLS)" },
];
const MODEL_FLAGS: FlagDef[] = [
  { flag: 'device', type: 'string', path: 'device', help: 'cpu | cuda | webgpu | auto (default cpu)' },
  { flag: 'threads', type: 'int', path: 'threads', help: 'onnxruntime threads per model (default 0: one per core)' },
  { flag: 'quiet', type: 'bool', path: 'quiet', help: 'no progress bar / per-shard log lines' },
];

const BATCH_FLAGS: FlagDef[] = [
  { flag: 'out', type: 'string', path: 'out', help: 'output directory (or "out" in the experiment file); a re-run resumes there' },
  { flag: 'model', type: 'string', path: 'model', help: "the model (overrides the file's; default embedded)" },
  { flag: 'shard-size', type: 'int', path: 'shardSize', help: "items per shard (overrides the file's; default 50)" },
  { flag: 'formats', type: 'list', path: 'formats', help: `figure files to write: ${FORMATS.join(',')} (default all; items.jsonl, aggregate.json and figures.json always)` },
  ...REDIS_FLAGS,
  ...MODEL_FLAGS,
];

const WORKER_FLAGS: FlagDef[] = [
  ...REDIS_FLAGS,
  { flag: 'model', type: 'string', path: 'model', help: 'a model to load at start (shards load the models they name, cached between shards)' },
  { flag: 'concurrency', type: 'int', path: 'concurrency', help: 'shards at once, each on its own thread with its own copy of the model (default 1)' },
  { flag: 'lock-duration', type: 'int', path: 'lockDuration', help: "ms a shard's lock lasts without renewal; a worker silent that long loses its shard to another (default 30000)" },
  { flag: 'stalled-interval', type: 'int', path: 'stalledInterval', help: 'ms between checks for shards whose worker stopped (default 10000)' },
  { flag: 'max-stalled', type: 'int', path: 'maxStalled', help: 'times a shard may be taken back from a stopped worker before it fails (default 5)' },
  ...MODEL_FLAGS,
];

const Common = {
  redis: z.string().min(1).optional(),
  prefix: z.string().default('lensboard'),
  tlsCa: z.string().min(1).optional(),
  device: z.enum(DEVICES).default('cpu'),
  threads: z.number().int().min(0).default(0),
  quiet: z.boolean().default(false),
};
const BatchOptions = z.strictObject({
  ...Common,
  out: z.string().min(1).optional(),
  model: z.string().min(1).optional(),
  shardSize: z.number().int().min(1).optional(),
  formats: z.array(z.enum(FORMATS)).min(1).default([...FORMATS]),
});
const WorkerOptions = z.strictObject({
  ...Common,
  model: z.string().min(1).optional(),
  concurrency: z.number().int().min(1).max(64).default(1),
  lockDuration: z.number().int().min(1000).default(30_000),
  stalledInterval: z.number().int().min(500).default(10_000),
  maxStalled: z.number().int().min(1).default(5),
});

export const BATCH_SUMMARY = 'a dataset experiment: an analysis over every item of a dataset, here or on a queue (--redis)';
export const WORKER_SUMMARY = 'a queue worker for dataset experiments: runs shards from Redis (--redis URL)';

function usage(name: 'batch' | 'worker'): string {
  return name === 'batch'
    ? `Usage: lensboard batch EXPERIMENT.json [flags]\n${BATCH_SUMMARY}\n\nFlags:\n${flagHelp(BATCH_FLAGS)}`
    : `Usage: lensboard worker --redis URL [flags]\n${WORKER_SUMMARY}\n\nFlags:\n${flagHelp(WORKER_FLAGS)}`;
}

function parse<T extends z.ZodType>(name: 'batch' | 'worker', argv: readonly string[], defs: FlagDef[], schema: T): z.infer<T> {
  const flags = parseFlags(argv, defs, `Run 'lensboard ${name} --help' for its flags.`);
  const r = schema.safeParse(flags);
  if (!r.success) {
    const flagOf = (path: string) => defs.find((d) => d.path === path)?.flag ?? path;
    throw new UsageError(`invalid flags:\n${r.error.issues.map((i) => `  --${flagOf(String(i.path[0]))}: ${i.message}`).join('\n')}`);
  }
  return r.data;
}

function redisSettings(o: { redis?: string; prefix: string; tlsCa?: string }) {
  const url = o.redis ?? process.env.LENSBOARD_REDIS_URL;
  if (!url) return null;
  const password = process.env.LENSBOARD_REDIS_PASSWORD || undefined;
  return { url, prefix: o.prefix, ...(password ? { password } : {}), ...(o.tlsCa ? { tlsCa: o.tlsCa } : {}) };
}

async function batch(argv: readonly string[]): Promise<number> {
  const [file, ...rest] = argv;
  if (file === undefined || file.startsWith('-')) throw new UsageError('give the experiment file first: lensboard batch EXPERIMENT.json [flags]');
  const o = parse('batch', rest, BATCH_FLAGS, BatchOptions);
  const settings = redisSettings({ redis: o.redis, prefix: o.prefix, tlsCa: o.tlsCa });

  const { loadExperiment } = await import('../batch/experiment.ts');
  const { ExperimentStore } = await import('../batch/store.ts');
  const { RunReporter } = await import('../batch/report.ts');
  const { writeOutputs } = await import('../batch/outputs.ts');
  const { progressBar } = await import('./progress.ts');
  const prepared = await loadExperiment(file, { model: o.model, shardSize: o.shardSize, out: o.out });
  if (!prepared.out) throw new UsageError('an output directory is required: pass --out DIR (or "out" in the experiment file)');
  if (settings) {
    const { checkRedis, validateSettings } = await import('../batch/queue.ts');
    validateSettings(settings);
    await checkRedis(settings); // unreachable or too old: said before anything is written
  }
  const out = resolve(prepared.out);
  const store = await ExperimentStore.open(out, prepared);
  const say = (line: string) => {
    if (!o.quiet) process.stderr.write(`${line}\n`);
  };
  const { spec, items, shards } = prepared;
  say(`${spec.name}: ${spec.analysis.kind} over ${items.length} ${spec.dataset.kind} items in ${shards.length} shards of ${spec.shardSize}, model ${spec.model}` +
    (store.done.size ? `; resuming: ${store.done.size} of ${shards.length} shards already done in ${out}` : ''));
  const report = new RunReporter(store, settings ? 'distributed' : 'local', { quiet: o.quiet });
  const stop = (signal: string) => {
    void report.finish('failed', `stopped by ${signal}; run the same command again to resume`).finally(() => process.exit(130));
  };
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
  try {
    const t0 = performance.now();
    if (settings) {
      const { runDistributed } = await import('../batch/submit.ts');
      await runDistributed(store, settings, report, say);
    } else {
      const { runLocal } = await import('../batch/local.ts');
      await runLocal(store, report, { device: o.device, threads: o.threads });
    }
    const s = (performance.now() - t0) / 1000;
    await report.finish('running', 'writing the outputs');
    const files = await writeOutputs(store, o.formats, progressBar('figures', { enabled: !o.quiet }));
    await report.finish('done');
    say(`done: ${shards.length} shards in ${s.toFixed(1)} s (this run); outputs in ${out}`);
    process.stdout.write(`${files.join('\n')}\n`);
    return 0;
  } catch (e) {
    await report.finish('failed', (e as Error).message);
    throw e;
  } finally {
    process.off('SIGINT', stop);
    process.off('SIGTERM', stop);
  }
}

async function worker(argv: readonly string[]): Promise<number> {
  const o = parse('worker', argv, WORKER_FLAGS, WorkerOptions);
  const settings = redisSettings(o);
  if (!settings) throw new UsageError('--redis URL is required (or LENSBOARD_REDIS_URL): the Redis server the submitters queue shards on');
  const { validateSettings } = await import('../batch/queue.ts');
  validateSettings(settings);
  const { runWorker } = await import('../batch/worker.ts');
  await runWorker(settings, o);
  return 0;
}

/** Runs `batch` or `worker` with their arguments; returns the exit code. */
export async function batchCli(name: 'batch' | 'worker', argv: readonly string[]): Promise<number> {
  if (argv.includes('--help') || argv.includes('-h')) {
    process.stdout.write(`${usage(name)}\n`);
    return 0;
  }
  try {
    return await (name === 'batch' ? batch(argv) : worker(argv));
  } catch (e) {
    const { BatchError } = await import('../batch/errors.ts');
    if (e instanceof UsageError || e instanceof UserError) {
      process.stderr.write(`lensboard ${name}: ${e.message}\n`);
      return 2;
    }
    if (e instanceof BatchError) {
      process.stderr.write(`lensboard ${name}: ${e.message}\n`);
      return 1;
    }
    process.stderr.write(`lensboard ${name}: ${(e as Error).stack ?? String(e)}\n`);
    return 1;
  }
}
