/**
 * One loaded model, run in its own runner process (RunnerProcess, server/runner/main.ts), with a FIFO job queue: one job
 * at a time, progress, cancellation, automatic restarts, and memory kept in check.
 *
 * - Cancel: a running job is asked to stop through the runner (its model thread checks a shared flag between steps);
 *   one still running cancelGraceMs later is stopped by SIGKILLing the runner — never by terminating a thread, which
 *   inside onnxruntime aborts the whole process. The runner is then restarted with the same model and load options.
 * - Crash: a runner that dies by itself (a crash, the out-of-memory killer, someone's SIGKILL) is restarted; the job it
 *   was running runs once more on the new runner (a job that kills its runner twice fails with a 500 that says so), and
 *   the queued jobs then run. A runner that cannot be restarted (3 tries) fails every waiting job with a 503.
 * - Memory: after each job the runner reports its RSS (after a full GC); a runner that keeps more than
 *   recycleRssBytes above its RSS after loading is restarted (recycled) before the next job, giving the memory back.
 * Every cancel, kill, restart, recycle and failed job is logged with the job id, endpoint and duration.
 */
import { randomUUID } from 'node:crypto';
import type { Logger } from 'pino';
import type { ProgressEvent } from '../../hooks/loading/progress.ts';
import { CancelledError, HttpError, tooManyRequests, unavailable } from '../errors.ts';
import type { JobKind, JobPayload, JobResult } from '../worker/jobs.ts';
import type { FromRunner, JobMemory, ModelInfo } from './protocol.ts';
import { RunnerProcess, type RunnerSpec } from './RunnerProcess.ts';

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

/** How many ended jobs a model remembers for cancel requests that arrive after the end. */
export const RECENT_JOBS = 1024;
/** How often a dead runner is started again before the model is declared failed, and the waits between tries. */
const RESTART_BACKOFF_MS = [0, 500, 2000];
/** How many times a job may start on a runner (a runner that dies under it once is forgiven, twice is not). */
const MAX_ATTEMPTS = 2;

export interface CancelOutcome {
  id: string;
  /**
   * cancelled: stopped (or removed from the queue); finished: it completed before it could be stopped.
   * A job that had already ended answers how it ended, with `how` null and stoppedInMs 0.
   */
  outcome: 'cancelled' | 'finished';
  /** How the running job stopped: it saw the flag ('flag'), its runner process was killed ('terminated'), or it never started ('dequeued'). */
  how: 'flag' | 'terminated' | 'dequeued' | null;
  stoppedInMs: number;
}

export interface JobHandle<R> {
  readonly id: string;
  readonly result: Promise<R>;
  onProgress(listener: (p: JobProgress) => void): void;
}

export interface JobMeta {
  /** The request that made the job ("POST /api/ioi"), for logs. */
  endpoint?: string;
}

/** A runner's restarts and memory, for GET /api/health. */
export interface RunnerHealth {
  pid: number | null;
  /** RSS of the runner after its last job (or after loading), bytes. */
  rssBytes: number | null;
  /** Runner restarts since the model was loaded (crashes, kills to stop a job, recycling). */
  restarts: number;
  lastRestart: { reason: string; at: string } | null;
  /** The runner's RSS before, at the peak of and after its last job (bytes; peak null where not measurable). */
  lastJob: JobMemory | null;
}

interface Job {
  id: string;
  seq: number;
  kind: string;
  payload: unknown;
  endpoint: string;
  state: 'queued' | 'running';
  createdAt: Date;
  startedAt: Date | null;
  /** Times the job has been sent to a runner. */
  attempts: number;
  progress: JobProgress | null;
  listeners: ((p: JobProgress) => void)[];
  resolve: (r: unknown) => void;
  reject: (e: Error) => void;
  cancel?: { at: number; timer: NodeJS.Timeout; waiters: ((o: CancelOutcome) => void)[] };
}

export interface ModelRunnerOptions {
  log: Logger;
  /** Restart a runner whose RSS after a job exceeds its RSS after loading by more than this (bytes). */
  recycleRssBytes: number;
  /** Rewrites error messages from the runner so that no absolute server path leaves the server. */
  redact?: (message: string) => string;
}

export class ModelRunner {
  private runner: RunnerProcess | null;
  private readonly queue: Job[] = [];
  private running: Job | null = null;
  /** The seq sent to the runner whose `idle` has not come back yet (the runner takes the next job only after it). */
  private awaitingIdle: number | null = null;
  /** How the last RECENT_JOBS jobs ended, by id, so that cancelling one that just ended is not an error. */
  private readonly ended = new Map<string, CancelOutcome['outcome']>();
  private seq = 0;
  private restarting: Promise<void> | null = null;
  private closed = false;
  /** Set when the runner died and could not be restarted; every later job fails with it. */
  private failure: Error | null = null;
  private restarts = 0;
  private lastRestart: RunnerHealth['lastRestart'] = null;
  private lastRss: number;
  private lastJob: JobMemory | null = null;
  /** Mean duration of recent jobs (ms), for Retry-After. */
  private meanJobMs = 1000;
  private readonly log: Logger;

  private constructor(
    runner: RunnerProcess,
    private readonly spec: RunnerSpec,
    private readonly options: ModelRunnerOptions,
  ) {
    this.runner = runner;
    this.info = runner.info;
    this.lastRss = runner.loadedRss;
    this.log = options.log.child({ model: runner.info.name });
    this.attach(runner);
  }

  info: ModelInfo;

  /** Starts a runner and loads the model in it; `signal` aborts the load (killing the runner). */
  static async start(
    spec: RunnerSpec,
    options: ModelRunnerOptions,
    onProgress: (e: ProgressEvent) => void = () => {},
    signal?: AbortSignal,
  ): Promise<ModelRunner> {
    try {
      const runner = await RunnerProcess.start(spec, options.log, onProgress, signal);
      return new ModelRunner(runner, spec, options);
    } catch (e) {
      if (e instanceof Error && options.redact) e.message = options.redact(e.message);
      throw e;
    }
  }

  get name(): string {
    return this.info.name;
  }

  get state(): 'ready' | 'restarting' | 'failed' | 'closed' {
    if (this.closed) return 'closed';
    if (this.failure) return 'failed';
    return this.restarting ? 'restarting' : 'ready';
  }

  get health(): RunnerHealth {
    return {
      pid: this.runner?.alive ? this.runner.pid : null, rssBytes: this.lastRss, restarts: this.restarts, lastRestart: this.lastRestart,
      lastJob: this.lastJob,
    };
  }

  /** Queues a job; its result promise rejects with HttpError (4xx from the request, 5xx on faults) or CancelledError. */
  submit<K extends JobKind>(kind: K, payload: JobPayload<K>, meta: JobMeta = {}): JobHandle<JobResult<K>> {
    if (this.closed) throw unavailable(`model ${this.name} is being unloaded`);
    if (this.failure) throw unavailable(`model ${this.name} is not available: ${this.failure.message}; load a model with POST /api/models/load`);
    if (this.queue.length >= this.spec.limits.maxQueue) {
      throw tooManyRequests(`the job queue of model ${this.name} is full (maxQueue = ${this.spec.limits.maxQueue}); try again later`, this.retryAfterS());
    }
    let resolve!: (r: unknown) => void;
    let reject!: (e: Error) => void;
    const result = new Promise<unknown>((res, rej) => {
      resolve = res;
      reject = rej;
    });
    result.catch(() => {}); // a job nobody awaits any more (its client left) must not become an unhandled rejection
    const job: Job = {
      id: randomUUID(), seq: ++this.seq, kind, payload, endpoint: meta.endpoint ?? kind, state: 'queued', createdAt: new Date(),
      startedAt: null, attempts: 0, progress: null, listeners: [], resolve, reject,
    };
    this.queue.push(job);
    this.pump();
    return {
      id: job.id,
      result: result as Promise<JobResult<K>>,
      onProgress: (l) => job.listeners.push(l),
    };
  }

  /** Seconds a client should wait before retrying when the queue is full: the queue's expected drain time, 1..60. */
  retryAfterS(): number {
    return Math.min(60, Math.max(1, Math.ceil((this.meanJobMs * (this.queue.length + 1)) / 1000)));
  }

  jobs(): JobSummary[] {
    const list = this.running ? [this.running, ...this.queue] : [...this.queue];
    return list.map((j) => ({
      id: j.id, kind: j.kind, model: this.name, state: j.state, createdAt: j.createdAt.toISOString(),
      startedAt: j.startedAt?.toISOString() ?? null, progress: j.progress,
    }));
  }

  /** Cancels a job; resolves when it has stopped (null: no such job here). */
  cancel(id: string): Promise<CancelOutcome> | null {
    const start = Date.now();
    const qi = this.queue.findIndex((j) => j.id === id);
    if (qi >= 0) {
      const [job] = this.queue.splice(qi, 1);
      this.remember(id, 'cancelled');
      this.log.info({ ...this.timing(job), how: 'dequeued' }, 'job cancelled');
      job.reject(new CancelledError(id));
      return Promise.resolve({ id, outcome: 'cancelled', how: 'dequeued', stoppedInMs: Date.now() - start });
    }
    const job = this.running;
    if (!job || job.id !== id) {
      const ended = this.ended.get(id);
      return ended ? Promise.resolve({ id, outcome: ended, how: null, stoppedInMs: 0 }) : null;
    }
    return new Promise((res) => {
      if (job.cancel) {
        job.cancel.waiters.push(res);
        return;
      }
      this.runner?.send({ type: 'cancel', seq: job.seq });
      const timer = setTimeout(() => this.killRunning(job), this.spec.limits.cancelGraceMs);
      job.cancel = { at: start, timer, waiters: [res] };
    });
  }

  /**
   * Stops the model: queued jobs are cancelled at once, the running one through its flag (or by killing the runner
   * after cancelGraceMs), then the runner exits. Resolves when it is gone.
   */
  async close(reason = 'the model is being unloaded'): Promise<void> {
    if (this.closed) return;
    this.closed = true; // from here on: no new jobs, no restarts
    for (const j of this.queue.splice(0)) {
      this.remember(j.id, 'cancelled');
      this.log.info({ ...this.timing(j), how: 'dequeued', reason }, 'job cancelled');
      j.reject(new CancelledError(j.id, reason));
    }
    if (this.running) await this.cancel(this.running.id);
    await this.runner?.stop(reason);
    await this.restarting;
  }

  /** SIGKILLs the runner now, without a restart (a shutdown past its deadline). */
  kill(): void {
    this.closed = true;
    this.runner?.kill('killed by the server at shutdown');
  }

  private attach(runner: RunnerProcess): void {
    runner.onMessage((m) => this.onMessage(runner, m));
    runner.onExit((reason, expected) => this.onRunnerExit(runner, reason, expected));
  }

  private pump(): void {
    if (this.running || this.awaitingIdle !== null || this.restarting || this.closed || this.failure || !this.runner) return;
    const job = this.queue.shift();
    if (!job) return;
    job.state = 'running';
    job.startedAt = new Date();
    job.attempts++;
    this.running = job;
    this.awaitingIdle = job.seq;
    // If the runner is already gone, its exit handler runs the job again on the next runner.
    this.runner.send({ type: 'job', seq: job.seq, kind: job.kind, payload: job.payload });
  }

  private remember(id: string, outcome: CancelOutcome['outcome']): void {
    this.ended.set(id, outcome);
    if (this.ended.size > RECENT_JOBS) this.ended.delete(this.ended.keys().next().value!);
  }

  private finish(job: Job, outcome: 'result' | 'error' | 'cancelled', value: unknown, how: CancelOutcome['how'] = 'flag'): void {
    if (this.running !== job) return;
    this.running = null;
    const where = this.timing(job);
    if (where.ranMs !== null && outcome !== 'cancelled') this.meanJobMs = 0.8 * this.meanJobMs + 0.2 * where.ranMs;
    this.remember(job.id, outcome === 'cancelled' ? 'cancelled' : 'finished');
    if (job.cancel) {
      clearTimeout(job.cancel.timer);
      const o: CancelOutcome = {
        id: job.id, outcome: outcome === 'result' ? 'finished' : 'cancelled', how: outcome === 'result' ? null : how,
        stoppedInMs: Date.now() - job.cancel.at,
      };
      for (const w of job.cancel.waiters) w(o);
    }
    if (outcome === 'result') {
      this.log.debug(where, 'job done');
      job.resolve(value);
    } else if (outcome === 'cancelled') {
      this.log.info({ ...where, how, stoppedInMs: job.cancel ? Date.now() - job.cancel.at : null }, 'job cancelled');
      job.reject(value instanceof CancelledError ? value : new CancelledError(job.id));
    } else {
      const err = value as HttpError;
      if (err.status >= 500) this.log.error({ ...where, status: err.status, error: err.message }, 'job failed');
      else this.log.info({ ...where, status: err.status, error: err.message }, 'job refused');
      job.reject(err);
    }
  }

  private onMessage(from: RunnerProcess, m: FromRunner): void {
    if (from !== this.runner) return;
    if (m.type === 'idle') {
      if (m.seq === this.awaitingIdle) this.onIdle(m.memory);
      return;
    }
    const job = this.running;
    if (!job || !('seq' in m) || m.seq !== job.seq) return;
    if (m.type === 'progress') {
      job.progress = { done: m.done, total: m.total, ...(m.message ? { message: m.message } : {}) };
      for (const l of job.listeners) l(job.progress);
    } else if (m.type === 'result') this.finish(job, 'result', m.result);
    else if (m.type === 'error') this.finish(job, 'error', new HttpError(m.error.status, this.redact(m.error.message)));
    else if (m.type === 'cancelled') this.finish(job, 'cancelled', null);
  }

  /** The runner has finished a job and collected its garbage: recycle it if it kept too much, else run the next job. */
  private onIdle(memory: JobMemory): void {
    this.awaitingIdle = null;
    this.lastRss = memory.after;
    this.lastJob = memory;
    const runner = this.runner!;
    const kept = memory.after - runner.loadedRss;
    const mib = (b: number) => Math.round(b / 2 ** 20);
    this.log.debug({ pid: runner.pid, rssBeforeMiB: mib(memory.before), rssPeakMiB: memory.peak && mib(memory.peak), rssAfterMiB: mib(memory.after) }, 'job memory');
    if (kept > this.options.recycleRssBytes && !this.closed) {
      const reason = `recycled: its RSS after a job was ${mib(memory.after)} MiB, ${mib(kept)} MiB above its ${mib(runner.loadedRss)} MiB after loading (recycleRss ${mib(this.options.recycleRssBytes)} MiB)`;
      runner.kill(reason); // idle: nothing is lost; onRunnerExit restarts it
      return;
    }
    this.pump();
  }

  /** Stops a cancelled job that did not stop within the grace period: kill its runner (safe), then restart it. */
  private killRunning(job: Job): void {
    if (this.running !== job) return;
    const runner = this.runner;
    if (!runner) return this.finish(job, 'cancelled', null, 'terminated');
    const graceMs = this.spec.limits.cancelGraceMs;
    this.log.warn({ ...this.timing(job), pid: runner.pid, graceMs }, 'runner killed: a cancelled job was still running after the grace period');
    this.finish(job, 'cancelled', null, 'terminated');
    runner.kill(`killed to stop job ${job.id} (${job.endpoint}), still running ${graceMs} ms after it was cancelled`);
  }

  private onRunnerExit(runner: RunnerProcess, reason: string, expected: boolean): void {
    if (runner !== this.runner) return;
    this.runner = null;
    this.awaitingIdle = null;
    const job = this.running;
    if (this.closed) {
      if (job) this.finish(job, 'cancelled', null, 'terminated');
      return;
    }
    if (job) {
      this.running = null;
      const where = this.timing(job);
      if (job.attempts < MAX_ATTEMPTS) {
        this.log.warn({ ...where, pid: runner.pid, reason }, 'the runner died under a job; the job runs again on the restarted runner');
        job.state = 'queued';
        job.progress = null;
        this.queue.unshift(job);
      } else {
        this.running = job;
        this.finish(job, 'error', new HttpError(500, `the model runner died twice while running job ${job.id} (last: ${reason}); it is not run again`));
      }
    }
    (expected ? this.log.info : this.log.error).call(this.log, { pid: runner.pid, reason }, 'model runner ended; restarting it');
    this.restart(reason);
  }

  private restart(reason: string): void {
    this.restarts++;
    this.lastRestart = { reason, at: new Date().toISOString() };
    const t0 = Date.now();
    this.restarting = (async () => {
      let lastError: Error | null = null;
      for (const wait of RESTART_BACKOFF_MS) {
        if (wait) await new Promise((r) => setTimeout(r, wait));
        if (this.closed) return;
        try {
          const runner = await RunnerProcess.start(this.spec, this.options.log);
          if (this.closed) {
            await runner.stop();
            return;
          }
          this.runner = runner;
          this.lastRss = runner.loadedRss;
          this.attach(runner);
          this.log.info({ pid: runner.pid, restarts: this.restarts, reason, ms: Date.now() - t0 }, 'model runner restarted');
          return;
        } catch (e) {
          lastError = e as Error;
          this.log.error({ error: this.redact(lastError.message) }, 'model runner restart failed');
        }
      }
      this.failure = new Error(`its runner could not be restarted (${this.redact(lastError!.message)})`);
      for (const j of this.queue.splice(0)) {
        this.remember(j.id, 'finished');
        this.log.error(this.timing(j), 'job failed: the model runner could not be restarted');
        j.reject(unavailable(`model ${this.name} is not available: ${this.failure.message}`));
      }
    })().finally(() => {
      this.restarting = null;
      this.pump();
    });
  }

  /** What every job log line carries: id, endpoint, time since it was submitted and since it (last) started running. */
  private timing(job: Job): { jobId: string; endpoint: string; durationMs: number; ranMs: number | null } {
    const now = Date.now();
    return { jobId: job.id, endpoint: job.endpoint, durationMs: now - job.createdAt.getTime(), ranMs: job.startedAt ? now - job.startedAt.getTime() : null };
  }

  private redact(message: string): string {
    return this.options.redact ? this.options.redact(message) : message;
  }
}
