/**
 * One loaded model on its own worker thread (onnxruntime runs synchronously on the thread that calls it, so the
 * event loop stays free), with a FIFO job queue: one job at a time, progress, and cancellation. A running job is
 * cancelled through a shared flag it checks between steps; one that has not stopped after cancelGraceMs is stopped
 * by terminating the worker, which is then restarted with the same model.
 */
import { randomUUID } from 'node:crypto';
import { Worker } from 'node:worker_threads';
import type { ProgressEvent } from '../../hooks/loading/progress.ts';
import type { Limits } from '../config.ts';
import { CancelledError, HttpError, unavailable } from '../errors.ts';
import type { JobKind, JobPayload, JobResult } from '../worker/jobs.ts';
import type { FromWorker, LoadOptions, ModelInfo, ModelSource, ToWorker, WorkerData } from './protocol.ts';

const BOOT_URL = new URL('../worker/boot.mjs', import.meta.url);

export interface JobProgress {
  done: number;
  total: number;
  message?: string;
}

export interface JobSummary {
  id: string;
  kind: string;
  model: string;
  state: 'queued' | 'running';
  createdAt: string;
  startedAt: string | null;
  progress: JobProgress | null;
}

/** How many ended jobs a worker remembers for cancel requests that arrive after the end. */
export const RECENT_JOBS = 1024;

export interface CancelOutcome {
  id: string;
  /**
   * cancelled: stopped (or removed from the queue); finished: it completed before it could be stopped.
   * A job that had already ended answers how it ended, with `how` null and stoppedInMs 0.
   */
  outcome: 'cancelled' | 'finished';
  /** How the running job stopped: it saw the flag ('flag'), its worker was terminated ('terminated'), or it never started ('dequeued'). */
  how: 'flag' | 'terminated' | 'dequeued' | null;
  stoppedInMs: number;
}

export interface JobHandle<R> {
  readonly id: string;
  readonly result: Promise<R>;
  onProgress(listener: (p: JobProgress) => void): void;
}

interface Job {
  id: string;
  seq: number;
  kind: string;
  payload: unknown;
  state: 'queued' | 'running';
  createdAt: Date;
  startedAt: Date | null;
  progress: JobProgress | null;
  listeners: ((p: JobProgress) => void)[];
  resolve: (r: unknown) => void;
  reject: (e: Error) => void;
  cancel?: { at: number; timer: NodeJS.Timeout; done: (o: CancelOutcome) => void };
}

interface Spawned {
  worker: Worker;
  info: ModelInfo;
}

/** Starts a worker and loads the model in it; `signal` aborts the load (terminating the worker). */
function spawn(
  source: ModelSource,
  options: LoadOptions,
  data: WorkerData,
  onProgress: (e: ProgressEvent) => void,
  signal?: AbortSignal,
): Promise<Spawned> {
  return new Promise((resolve, reject) => {
    const worker = new Worker(BOOT_URL, { workerData: data, name: `model:${source.name}` });
    let settled = false;
    const finish = (err: Error | null, info?: ModelInfo) => {
      if (settled) return;
      settled = true;
      worker.off('message', onMessage);
      signal?.removeEventListener('abort', onAbort);
      if (err) {
        void worker.terminate();
        reject(err);
      } else resolve({ worker, info: info! });
    };
    const onMessage = (m: FromWorker) => {
      if (m.type === 'loadProgress') onProgress(m.event);
      else if (m.type === 'loaded') finish(null, m.info);
      else if (m.type === 'loadError') finish(new HttpError(m.error.status, m.error.message));
    };
    const onAbort = () => finish(new CancelledError(`load:${source.name}`));
    worker.on('message', onMessage);
    worker.once('error', (e) => finish(new Error(`model worker failed while loading ${source.name}: ${e.message}`)));
    worker.once('exit', (code) => finish(new Error(`model worker exited (code ${code}) while loading ${source.name}`)));
    if (signal?.aborted) onAbort();
    else signal?.addEventListener('abort', onAbort);
    worker.postMessage({ type: 'load', source, options } satisfies ToWorker);
  });
}

export class ModelWorker {
  private worker: Worker;
  private readonly flag: Int32Array;
  private readonly queue: Job[] = [];
  private running: Job | null = null;
  /** How the last RECENT_JOBS jobs ended, by id, so that cancelling one that just ended is not an error. */
  private readonly ended = new Map<string, CancelOutcome['outcome']>();
  private seq = 0;
  private restarting: Promise<void> | null = null;
  private closed = false;
  /** Set when the worker died and could not be restarted; every later job fails with it. */
  private failure: Error | null = null;

  private constructor(
    spawned: Spawned,
    private readonly source: ModelSource,
    private readonly options: LoadOptions,
    private readonly data: WorkerData,
    private readonly limits: Limits,
  ) {
    this.worker = spawned.worker;
    this.info = spawned.info;
    this.flag = new Int32Array(data.cancelFlag);
    this.attach();
  }

  info: ModelInfo;

  static async start(
    source: ModelSource,
    options: LoadOptions,
    limits: Limits,
    onProgress: (e: ProgressEvent) => void = () => {},
    signal?: AbortSignal,
  ): Promise<ModelWorker> {
    const data: WorkerData = { cancelFlag: new SharedArrayBuffer(4), limits };
    const spawned = await spawn(source, options, data, onProgress, signal);
    return new ModelWorker(spawned, source, options, data, limits);
  }

  get name(): string {
    return this.info.name;
  }

  get state(): 'ready' | 'restarting' | 'failed' | 'closed' {
    if (this.closed) return 'closed';
    if (this.failure) return 'failed';
    return this.restarting ? 'restarting' : 'ready';
  }

  /** Queues a job; its result promise rejects with HttpError (4xx from the request, 500 on faults) or CancelledError. */
  submit<K extends JobKind>(kind: K, payload: JobPayload<K>): JobHandle<JobResult<K>> {
    if (this.closed) throw unavailable(`model ${this.name} is being unloaded`);
    if (this.failure) throw unavailable(`model ${this.name} is not available: ${this.failure.message}`);
    if (this.queue.length >= this.limits.maxQueue) {
      throw unavailable(`the job queue of model ${this.name} is full (maxQueue = ${this.limits.maxQueue}); try again later`);
    }
    let resolve!: (r: unknown) => void;
    let reject!: (e: Error) => void;
    const result = new Promise<unknown>((res, rej) => {
      resolve = res;
      reject = rej;
    });
    result.catch(() => {}); // a job nobody awaits any more (its client left) must not become an unhandled rejection
    const job: Job = {
      id: randomUUID(), seq: ++this.seq, kind, payload, state: 'queued', createdAt: new Date(), startedAt: null,
      progress: null, listeners: [], resolve, reject,
    };
    this.queue.push(job);
    this.pump();
    return {
      id: job.id,
      result: result as Promise<JobResult<K>>,
      onProgress: (l) => job.listeners.push(l),
    };
  }

  jobs(): JobSummary[] {
    const list = this.running ? [this.running, ...this.queue] : [...this.queue];
    return list.map((j) => ({
      id: j.id, kind: j.kind, model: this.name, state: j.state, createdAt: j.createdAt.toISOString(),
      startedAt: j.startedAt?.toISOString() ?? null, progress: j.progress,
    }));
  }

  has(id: string): boolean {
    return this.running?.id === id || this.queue.some((j) => j.id === id);
  }

  /** Cancels a job; resolves when it has stopped (null: no such job here). */
  cancel(id: string): Promise<CancelOutcome> | null {
    const start = Date.now();
    const qi = this.queue.findIndex((j) => j.id === id);
    if (qi >= 0) {
      const [job] = this.queue.splice(qi, 1);
      this.remember(id, 'cancelled');
      job.reject(new CancelledError(id));
      return Promise.resolve({ id, outcome: 'cancelled', how: 'dequeued', stoppedInMs: Date.now() - start });
    }
    const job = this.running;
    if (!job || job.id !== id) {
      const ended = this.ended.get(id);
      return ended ? Promise.resolve({ id, outcome: ended, how: null, stoppedInMs: 0 }) : null;
    }
    if (job.cancel) {
      const prev = job.cancel.done;
      return new Promise((res) => {
        job.cancel!.done = (o) => {
          prev(o);
          res(o);
        };
      });
    }
    return new Promise((res) => {
      Atomics.store(this.flag, 0, job.seq);
      const timer = setTimeout(() => void this.terminateRunning(job), this.limits.cancelGraceMs);
      job.cancel = { at: start, timer, done: res };
    });
  }

  /** Rejects every job and stops the worker. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    const all = this.running ? [this.running, ...this.queue] : [...this.queue];
    this.queue.length = 0;
    this.running = null;
    for (const j of all) {
      if (j.cancel) clearTimeout(j.cancel.timer);
      j.reject(new CancelledError(j.id));
    }
    await this.worker.terminate();
  }

  private attach(): void {
    this.worker.on('message', (m: FromWorker) => this.onMessage(m));
    this.worker.on('error', (e) => this.onDeath(e));
    this.worker.on('exit', (code) => this.onDeath(new Error(`model worker exited with code ${code}`)));
  }

  private pump(): void {
    if (this.running || this.restarting || this.closed || this.failure) return;
    const job = this.queue.shift();
    if (!job) return;
    job.state = 'running';
    job.startedAt = new Date();
    this.running = job;
    this.worker.postMessage({ type: 'job', seq: job.seq, kind: job.kind, payload: job.payload } satisfies ToWorker);
  }

  private remember(id: string, outcome: CancelOutcome['outcome']): void {
    this.ended.set(id, outcome);
    if (this.ended.size > RECENT_JOBS) this.ended.delete(this.ended.keys().next().value!);
  }

  private finish(job: Job, outcome: 'result' | 'error' | 'cancelled', value: unknown, how: CancelOutcome['how'] = 'flag'): void {
    if (this.running !== job) return;
    this.running = null;
    this.remember(job.id, outcome === 'cancelled' ? 'cancelled' : 'finished');
    if (job.cancel) {
      clearTimeout(job.cancel.timer);
      job.cancel.done({
        id: job.id, outcome: outcome === 'result' ? 'finished' : 'cancelled', how: outcome === 'result' ? null : how,
        stoppedInMs: Date.now() - job.cancel.at,
      });
    }
    if (outcome === 'result') job.resolve(value);
    else if (outcome === 'cancelled') job.reject(new CancelledError(job.id));
    else job.reject(value as Error);
    this.pump();
  }

  private onMessage(m: FromWorker): void {
    const job = this.running;
    if (!job || !('seq' in m) || m.seq !== job.seq) return;
    if (m.type === 'progress') {
      job.progress = { done: m.done, total: m.total, ...(m.message ? { message: m.message } : {}) };
      for (const l of job.listeners) l(job.progress);
    } else if (m.type === 'result') this.finish(job, 'result', m.result);
    else if (m.type === 'error') this.finish(job, 'error', new HttpError(m.error.status, m.error.message));
    else if (m.type === 'cancelled') this.finish(job, 'cancelled', null);
  }

  /** The cancelled job did not stop in time: terminate its worker, then restart the model. */
  private async terminateRunning(job: Job): Promise<void> {
    if (this.running !== job || this.closed) return;
    this.restarting = this.restart();
    this.finish(job, 'cancelled', null, 'terminated');
    await this.restarting;
  }

  private async restart(): Promise<void> {
    // A thread inside a native onnxruntime call only ends when that call returns: do not wait for it.
    const old = this.worker;
    old.removeAllListeners();
    old.on('error', () => {});
    void old.terminate();
    try {
      Atomics.store(this.flag, 0, 0);
      const spawned = await spawn(this.source, this.options, this.data, () => {});
      if (this.closed) {
        await spawned.worker.terminate();
        return;
      }
      this.worker = spawned.worker;
      this.attach();
    } catch (e) {
      this.failure = e as Error;
      for (const j of this.queue.splice(0)) j.reject(unavailable(`model ${this.name} could not be restarted: ${(e as Error).message}`));
    } finally {
      this.restarting = null;
      this.pump();
    }
  }

  private onDeath(e: Error): void {
    if (this.closed || this.restarting) return;
    this.failure = e;
    const all = this.running ? [this.running, ...this.queue] : [...this.queue];
    this.running = null;
    this.queue.length = 0;
    for (const j of all) j.reject(new HttpError(500, `model worker died: ${e.message}`));
  }
}
