/**
 * A distributed run's submitter: puts the experiment's pending shards on the BullMQ queue (one job per shard, its
 * id derived from the experiment's fingerprint, so a restarted submitter finds its jobs instead of adding them
 * twice), accepts each finished shard once into the output directory, and removes its job. It also checks the queue
 * itself: at start, every few seconds, and whenever Redis comes back after an outage (jobs lost with Redis are
 * queued again), so a missed event never loses a shard.
 */
import { Queue, QueueEvents, type Job } from 'bullmq';
import {
  checkRedis, connectionOptions, QUEUE_NAME, redactUrl, shardJobId, shardOfJobId, watchRedis, type RedisSettings, type ShardJobData, type ShardReturn,
} from './queue.ts';
import type { RunReporter } from './report.ts';
import { shardTask } from './runShard.ts';
import { BatchError } from './errors.ts';
import type { ExperimentStore } from './store.ts';

/** A shard failed for good (its item is refused, or every attempt failed). */
export class ShardFailed extends BatchError {}

const JOB_OPTIONS = { attempts: 3, backoff: { type: 'exponential', delay: 2000 }, removeOnComplete: false, removeOnFail: false } as const;
const CHECK_EVERY_MS = 3000;

export async function runDistributed(store: ExperimentStore, settings: RedisSettings, report: RunReporter, say: (line: string) => void): Promise<void> {
  const { prepared } = store;
  const where = redactUrl(settings.url);
  await checkRedis(settings);
  const connection = connectionOptions(settings);
  const queue = new Queue<ShardJobData, ShardReturn, string>(QUEUE_NAME, { connection, prefix: settings.prefix });
  const events = new QueueEvents(QUEUE_NAME, { connection, prefix: settings.prefix });

  const inFlight = new Map<number, number>(); // shard → its items done so far
  let duplicates = 0;
  let failure: Error | null = null;
  let down = false;
  let recheckAll = false;
  let wake: () => void = () => {};
  const showProgress = () => report.progress([...inFlight.values()].reduce((a, b) => a + b, 0));
  const ignore = () => {}; // connection errors: the watcher below says them once
  queue.on('error', ignore);
  events.on('error', ignore);

  const unwatch = watchRedis(settings, (reason) => {
    down = true;
    const msg = `lost the connection to Redis at ${where} (${reason}); waiting for it to come back. Finished shards are safe in ${store.dir}`;
    say(`\n${msg}`);
    report.setState('waiting', msg);
  }, () => {
    down = false;
    recheckAll = true;
    say(`Redis at ${where} is back; checking the queue (shards lost with Redis are queued again)`);
    report.setState('running');
    wake();
  });

  /** Accepts a finished shard's return value (once), then removes its job. */
  const collecting = new Set<number>();
  async function collect(index: number, value: ShardReturn | string | undefined, jobId: string): Promise<void> {
    if (collecting.has(index)) return; // the event and a check saw the same job
    collecting.add(index);
    try {
      await accept(index, value, jobId);
    } finally {
      collecting.delete(index);
    }
  }
  async function accept(index: number, value: ShardReturn | string | undefined, jobId: string): Promise<void> {
    if (!store.done.has(index) && value !== undefined) {
      const r: ShardReturn = typeof value === 'string' ? JSON.parse(value) : value;
      if (await store.accept(index, r.text)) report.workers[r.worker] = (report.workers[r.worker] ?? 0) + 1;
      else duplicates++;
    } else if (value !== undefined) duplicates++;
    inFlight.delete(index);
    showProgress();
    await queue.remove(jobId).catch(() => {});
    if (store.complete) wake();
  }

  /** A failed job: at start a failure from an earlier run is retried; during the run it ends the run. */
  async function failed(job: Job<ShardJobData, ShardReturn, string>, atStart: boolean): Promise<void> {
    const index = shardOfJobId(prepared.fingerprint, job.id)!;
    if (atStart) {
      say(`shard ${index} had failed in an earlier run (${job.failedReason}); queueing it again`);
      await job.retry('failed');
      return;
    }
    failure = new ShardFailed(`shard ${index} failed on ${job.processedBy ?? 'a worker'} after ${job.attemptsMade} attempt(s): ${job.failedReason}`);
    wake();
  }

  /**
   * Collects finished shards and looks at failed ones; with `all`, also queues every pending shard that has no job
   * (the first check, and after Redis came back without its data).
   */
  async function check(all: boolean, atStart = false): Promise<void> {
    for (const state of ['completed', 'failed'] as const) {
      const jobs = await queue.getJobs([state], 0, -1, true);
      for (const job of jobs) {
        const index = shardOfJobId(prepared.fingerprint, job?.id);
        if (index === null || !job) continue;
        if (state === 'completed') await collect(index, job.returnvalue, job.id!);
        else if (store.done.has(index)) await queue.remove(job.id!).catch(() => {});
        else await failed(job, atStart);
      }
    }
    if (!all) return;
    const missing = [];
    for (const s of store.pending()) {
      const id = shardJobId(prepared.fingerprint, s.index);
      if (!(await queue.getJob(id))) missing.push({ name: `${prepared.spec.name}#${s.index}`, data: shardTask(prepared, s), opts: { ...JOB_OPTIONS, jobId: id } });
    }
    for (let i = 0; i < missing.length; i += 100) await queue.addBulk(missing.slice(i, i + 100));
    if (missing.length) say(`queued ${missing.length} shard(s) on ${where} (prefix ${settings.prefix})`);
  }

  events.on('completed', ({ jobId, returnvalue }) => {
    const index = shardOfJobId(prepared.fingerprint, jobId);
    if (index !== null) void collect(index, returnvalue as unknown as string, jobId).catch((e) => { failure = e; wake(); });
  });
  events.on('progress', ({ jobId, data }) => {
    const index = shardOfJobId(prepared.fingerprint, jobId);
    const done = (data as { done?: number } | undefined)?.done;
    if (index !== null && typeof done === 'number' && !store.done.has(index)) {
      inFlight.set(index, done);
      showProgress();
    }
  });
  events.on('stalled', ({ jobId }) => {
    const index = shardOfJobId(prepared.fingerprint, jobId);
    if (index === null) return;
    inFlight.delete(index);
    say(`\nshard ${index} stalled: its worker stopped renewing its lock (killed or cut off); BullMQ queued it again`);
  });
  events.on('failed', () => wake()); // retried or failed for good: the next check tells which

  try {
    await events.waitUntilReady();
    if ((await queue.getWorkersCount()) === 0) say(`no worker is connected to ${where} (prefix ${settings.prefix}) yet; shards wait for one: lensboard worker --redis URL`);
    await check(true, true);
    report.progress(0);
    let lastCheck = Date.now();
    while (!store.complete) {
      if (failure) throw failure;
      await new Promise<void>((resolve) => {
        wake = resolve;
        setTimeout(resolve, 1000);
      });
      if (failure) throw failure;
      if (down || store.complete) continue;
      if (recheckAll || Date.now() - lastCheck >= CHECK_EVERY_MS) {
        const all = recheckAll;
        recheckAll = false;
        await check(all).catch((e) => {
          if (all) recheckAll = true; // Redis went away again during the check
          if (!down) throw e;
        });
        lastCheck = Date.now();
      }
    }
    if (duplicates) say(`${duplicates} repeated result(s) of shards already accepted were ignored`);
  } finally {
    unwatch();
    await Promise.all([events.close(), queue.close()]).catch(() => {});
  }
}
