/**
 * Server jobs of the views. A JobState runs one request body at a time and shows one result together with the body it
 * ran with, so a figure is labelled from its own run, never from the controls; `staleness(wanted)` says when the controls
 * ask for something else. Requests are keyed by their body: asking again for the body already shown or running sends
 * nothing, and the last few results are kept, so Back / Forward and tab switches redraw without a request.
 */
import { ApiError, CancelledError, type Job, type JobProgress } from '../api.ts';
import { bodyKey, changedFields, type Staleness } from './keys.ts';
import type { RunRef, UrlState } from './url.svelte.ts';

export type { Staleness } from './keys.ts';

export type Start<B, T> = (body: B, onProgress: (p: JobProgress) => void) => Job<T>;

interface Shown<B, T> {
  key: string;
  body: B;
  result: T;
}

const CACHE_SIZE = 6;

export class JobState<B, T> {
  readonly id: string;
  readonly #start: Start<B, T>;
  readonly #url: UrlState | null;
  /** Runs started by a button: each is a history entry of its own, and Back / Forward restore them. */
  readonly explicit: boolean;
  #shown = $state.raw<Shown<B, T> | null>(null);
  #pending = $state.raw<{ key: string; body: B } | null>(null);
  #progress = $state<JobProgress | null>(null);
  #error = $state<string | null>(null);
  #cancelledKey = $state<string | null>(null);
  #job: Job<T> | null = null;
  #seq = 0;
  /** Counts model changes: an answer from before one is not kept. */
  #epoch = 0;
  #cache = new Map<string, Shown<B, T>>();

  constructor(id: string, start: Start<B, T>, opts: { url?: UrlState; explicit?: boolean } = {}) {
    this.id = id;
    this.#start = start;
    this.#url = opts.url ?? null;
    this.explicit = opts.explicit ?? false;
  }

  get running() {
    return this.#pending !== null;
  }
  get progress() {
    return this.#progress;
  }
  /** The result on show (kept while a new run is in flight, and after a cancel). */
  get result(): T | null {
    return this.#shown?.result ?? null;
  }
  /** The request body the result on show was computed from: label figures from this, not from the controls. */
  get params(): B | null {
    return this.#shown?.body ?? null;
  }
  get error() {
    return this.#error;
  }
  get cancelled() {
    return this.#cancelledKey !== null;
  }
  /** Progress as a fraction 0..1 (null before the first progress event). */
  get fraction(): number | null {
    const p = this.#progress;
    return p && p.total > 0 ? p.done / p.total : null;
  }

  /** Whether the result on show answers `wanted` (the body the controls ask for now; null: nothing to ask), and if not, why. */
  staleness(wanted: B | null): Staleness | null {
    const shown = this.#shown;
    if (!shown || wanted === null) return null;
    const key = bodyKey(wanted);
    if (key === shown.key) return null;
    const fields = changedFields(shown.body, wanted);
    if (this.#pending?.key === key) return { state: 'updating', fields };
    if (this.#cancelledKey === key) return { state: 'cancelled', fields };
    return { state: 'changed', fields };
  }

  /**
   * Shows the result for `body`: nothing is sent when it is on show or running already, a kept result is shown at once,
   * otherwise the request starts. The previous result stays until the new one lands. A request still running for other
   * controls is not cancelled but left to finish and kept, so Back shows it at once (the server runs one job at a time,
   * so it delays the new one by what it had left; a job cancelled between its steps stops within tens of ms, but one
   * inside a single long onnxruntime run can only be stopped by restarting the model's runner, seconds). Only the
   * Cancel button cancels.
   */
  async run(body: B): Promise<T | null> {
    const key = bodyKey(body);
    if (this.#pending?.key === key) return null;
    if (!this.#pending && this.#shown?.key === key && !this.#error) return this.#shown.result;
    const kept = this.#cache.get(key);
    if (kept) {
      this.#detach();
      this.#cancelledKey = null;
      this.#error = null;
      this.#show(kept);
      return kept.result;
    }
    const seq = ++this.#seq;
    const epoch = this.#epoch;
    this.#pending = { key, body };
    this.#progress = null;
    this.#error = null;
    this.#cancelledKey = null;
    this.#record({ key, body }, this.explicit);
    const job = this.#start(body, (p) => {
      if (seq === this.#seq) this.#progress = p;
    });
    this.#job = job;
    try {
      const result = await job.result;
      const entry = { key, body, result };
      if (epoch === this.#epoch) this.#keep(entry);
      if (seq !== this.#seq) return null;
      this.#shown = entry;
      return result;
    } catch (e) {
      if (seq !== this.#seq) return null;
      if (e instanceof CancelledError) {
        this.#cancelledKey = key;
        // the entry keeps showing the previous run
        this.#record(this.#shown ? { key: this.#shown.key, body: this.#shown.body } : null, false);
      } else {
        // an error answer replaces the figure: an old result would look like the answer to this request
        this.#shown = null;
        this.#error = e instanceof ApiError ? e.message : `request failed: ${(e as Error).message}`;
      }
      return null;
    } finally {
      if (seq === this.#seq) {
        this.#pending = null;
        this.#job = null;
      }
    }
  }

  /** Stops the running job on the server (the result on show stays, marked stale). */
  async cancel(): Promise<void> {
    const job = this.#job;
    if (!job) return;
    await job.cancel();
  }

  /** Shows what a history entry recorded: its run (kept, or run again), or nothing. */
  restore(ref: RunRef | undefined): void {
    if (ref) {
      void this.run(ref.body as B);
      return;
    }
    this.#detach();
    this.#shown = null;
    this.#error = null;
    this.#cancelledKey = null;
  }

  /** Forgets every result (a different model is loaded: none of them describes it). */
  reset(): void {
    this.#epoch++;
    this.#detach();
    this.#cache.clear();
    this.#shown = null;
    this.#error = null;
    this.#cancelledKey = null;
  }

  #show(entry: Shown<B, T>): void {
    this.#shown = entry;
    this.#record({ key: entry.key, body: entry.body }, this.explicit);
  }

  #keep(entry: Shown<B, T>): void {
    this.#cache.delete(entry.key);
    this.#cache.set(entry.key, entry);
    while (this.#cache.size > CACHE_SIZE) this.#cache.delete(this.#cache.keys().next().value as string);
  }

  /** Stops following the running request (it finishes on the server; its answer is kept unless the model changed). */
  #detach(): void {
    this.#job = null;
    this.#seq++;
    this.#pending = null;
    this.#progress = null;
  }

  #record(ref: RunRef | null, push: boolean): void {
    this.#url?.recordRun(this.id, ref, { push });
  }
}

/**
 * The app's jobs by id, created on first use and kept while the app lives (switching views keeps their results and
 * running jobs). Back / Forward restore the runs of button-started jobs; loading another model forgets every result.
 */
export class Jobs {
  #jobs = new Map<string, JobState<any, any>>();
  #url: UrlState;

  constructor(url: UrlState) {
    this.#url = url;
    url.onPop((runs) => {
      for (const job of this.#jobs.values()) if (job.explicit) job.restore(runs[job.id]);
    });
  }

  get<B, T>(id: string, start: Start<B, T>, opts: { explicit?: boolean } = {}): JobState<B, T> {
    let job = this.#jobs.get(id) as JobState<B, T> | undefined;
    if (!job) {
      job = new JobState<B, T>(id, start, { url: this.#url, explicit: opts.explicit });
      this.#jobs.set(id, job);
      // a reloaded page: history.state still says which run this entry showed
      const ref = this.#url.runOf(id);
      if (job.explicit && ref) job.restore(ref);
    }
    return job;
  }

  reset(): void {
    for (const job of this.#jobs.values()) job.reset();
  }
}
