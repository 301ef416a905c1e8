/** One cancellable server job at a time for a view: running flag, progress, result, the server's error message. */
import { ApiError, CancelledError, type Job, type JobProgress } from '../api.ts';

export class JobState<T> {
  #running = $state(false);
  #progress = $state<JobProgress | null>(null);
  #result = $state.raw<T | null>(null);
  #error = $state<string | null>(null);
  #cancelled = $state(false);
  #job: Job<T> | null = null;
  #seq = 0;

  get running() {
    return this.#running;
  }
  get progress() {
    return this.#progress;
  }
  get result() {
    return this.#result;
  }
  get error() {
    return this.#error;
  }
  get cancelled() {
    return this.#cancelled;
  }
  /** Progress as a fraction 0..1 (null before the first progress event). */
  get fraction(): number | null {
    const p = this.#progress;
    return p && p.total > 0 ? p.done / p.total : null;
  }

  /** Starts `start(onProgress)`, cancelling a run still going; keeps the previous result until the new one lands (or fails). */
  async run(start: (onProgress: (p: JobProgress) => void) => Job<T>): Promise<T | null> {
    if (this.#job) void this.#job.cancel();
    const seq = ++this.#seq;
    this.#running = true;
    this.#progress = null;
    this.#error = null;
    this.#cancelled = false;
    const job = start((p) => {
      if (seq === this.#seq) this.#progress = p;
    });
    this.#job = job;
    try {
      const r = await job.result;
      if (seq !== this.#seq) return null;
      this.#result = r;
      return r;
    } catch (e) {
      if (seq !== this.#seq) return null;
      if (e instanceof CancelledError) this.#cancelled = true;
      else {
        // an error answer replaces the figure: an old result would look like the answer to this request
        this.#result = null;
        this.#error = e instanceof ApiError ? e.message : `request failed: ${(e as Error).message}`;
      }
      return null;
    } finally {
      if (seq === this.#seq) {
        this.#running = false;
        this.#job = null;
      }
    }
  }

  /** Stops the running job on the server. */
  async cancel(): Promise<void> {
    const job = this.#job;
    if (!job) return;
    await job.cancel();
  }

  clear(): void {
    this.#result = null;
    this.#error = null;
  }
}
