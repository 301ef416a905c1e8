/**
 * `lensboard worker`: takes shards from the BullMQ queue on Redis and runs them on compute threads (one per
 * --concurrency slot, each with its own copy of the models), returning each shard's result to the queue. The main
 * thread only talks to Redis, so locks are renewed however long a forward pass blocks its thread; a worker that
 * dies loses its locks, and BullMQ's stalled-job check gives its shards to another worker.
 */
import { hostname } from 'node:os';
import { Worker as Thread } from 'node:worker_threads';
import { UnrecoverableError, Worker, type Job } from 'bullmq';
import pino from 'pino';
import type { Device } from '../hooks/engine/runtime.ts';
import { checkRedis, connectionOptions, QUEUE_NAME, redactUrl, watchRedis, type RedisSettings, type ShardJobData, type ShardReturn } from './queue.ts';
import type { FromSlot, SlotData, ToSlot } from './slotProtocol.ts';

export interface WorkerOptions {
  model?: string;
  device: Device;
  threads: number;
  concurrency: number;
  lockDuration: number;
  stalledInterval: number;
  maxStalled: number;
  quiet: boolean;
}

type WithoutId<T> = T extends unknown ? Omit<T, 'id'> : never;

const BOOT = new URL('./slotBoot.mjs', import.meta.url);

/** A compute thread and the one request it may be running. */
class Slot {
  readonly thread: Thread;
  private seq = 0;
  private waiting = new Map<number, { resolve: (m: FromSlot) => void; reject: (e: Error) => void; onProgress?: (done: number, total: number) => void }>();

  constructor(data: SlotData) {
    this.thread = new Thread(BOOT, { workerData: data });
    this.thread.on('message', (m: FromSlot) => {
      const w = this.waiting.get(m.id);
      if (!w) return;
      if (m.type === 'progress') {
        w.onProgress?.(m.done, m.total);
        return;
      }
      this.waiting.delete(m.id);
      w.resolve(m);
    });
    this.thread.on('error', (e) => {
      for (const w of this.waiting.values()) w.reject(e);
      this.waiting.clear();
    });
  }

  request(msg: WithoutId<ToSlot>, onProgress?: (done: number, total: number) => void): Promise<FromSlot> {
    const id = ++this.seq;
    return new Promise((resolve, reject) => {
      this.waiting.set(id, { resolve, reject, onProgress });
      this.thread.postMessage({ ...msg, id } as ToSlot);
    });
  }
}

export async function runWorker(settings: RedisSettings, o: WorkerOptions): Promise<void> {
  const log = pino({ level: o.quiet ? 'warn' : 'info', base: undefined });
  const name = `${hostname()}:${process.pid}`;
  const where = redactUrl(settings.url);
  const version = await checkRedis(settings);

  const slots = Array.from({ length: o.concurrency }, () => new Slot({ device: o.device, threads: o.threads }));
  const free = [...slots];
  const waitingForSlot: ((s: Slot) => void)[] = [];
  const acquire = () => new Promise<Slot>((resolve) => {
    const s = free.pop();
    if (s) resolve(s);
    else waitingForSlot.push(resolve);
  });
  const release = (s: Slot) => {
    const next = waitingForSlot.shift();
    if (next) next(s);
    else free.push(s);
  };
  if (o.model) {
    log.info({ model: o.model, slots: slots.length }, 'loading the model');
    for (const r of await Promise.all(slots.map((s) => s.request({ type: 'preload', model: o.model! })))) {
      if (r.type === 'error') throw new Error(`--model: ${r.message}`);
    }
  }

  async function processShard(job: Job<ShardJobData, ShardReturn>): Promise<ShardReturn> {
    const task = job.data;
    const tag = { job: job.id, shard: task.shard, items: task.items.length, model: task.model, analysis: task.analysis.kind, attempt: job.attemptsStarted };
    log.info(tag, 'shard started');
    const slot = await acquire();
    try {
      const r = await slot.request({ type: 'run', task }, (done, total) => {
        job.updateProgress({ done, total }).catch(() => {}); // never wait on Redis for progress
      });
      if (r.type === 'result') {
        log.info({ ...tag, ms: Math.round(r.ms) }, 'shard done');
        return { text: r.text, ms: r.ms, worker: name };
      }
      const message = r.type === 'error' ? r.message : `unexpected answer ${r.type}`;
      log.warn({ ...tag, error: message }, 'shard failed');
      if (r.type === 'error' && r.user) throw new UnrecoverableError(message);
      throw new Error(message);
    } finally {
      release(slot);
    }
  }

  const worker = new Worker<ShardJobData, ShardReturn, string>(QUEUE_NAME, processShard, {
    connection: connectionOptions(settings),
    prefix: settings.prefix,
    concurrency: o.concurrency,
    lockDuration: o.lockDuration,
    stalledInterval: o.stalledInterval,
    maxStalledCount: o.maxStalled,
    name,
    autorun: false,
  });
  worker.on('error', (e) => log.debug({ error: e.message }, 'worker error')); // connection errors are told once by the watcher below
  const unwatch = watchRedis(
    settings,
    (reason) => log.warn({ redis: where, error: reason }, 'lost Redis; retrying until it is back (its submitter queues again what Redis lost)'),
    () => log.info({ redis: where }, 'Redis is back'),
  );

  let stopping = false;
  const stop = async (signal: string) => {
    if (stopping) {
      log.warn(`${signal} again: exiting now (unfinished shards go back to the queue when their locks expire)`);
      globalThis.process.exit(1);
    }
    stopping = true;
    log.info({ signal }, 'stopping: finishing the shards in hand (send it again to exit now)');
    await worker.close();
    unwatch();
    await Promise.all(slots.map((s) => s.thread.terminate()));
    globalThis.process.exit(0);
  };
  globalThis.process.on('SIGINT', () => void stop('SIGINT'));
  globalThis.process.on('SIGTERM', () => void stop('SIGTERM'));

  log.info({ redis: where, redisVersion: version, prefix: settings.prefix, queue: QUEUE_NAME, worker: name, concurrency: o.concurrency, device: o.device, threads: o.threads }, 'worker ready');
  await worker.run();
}
