/** What a job handler gets inside the worker: progress reporting, the cancel check, the limits; and its typed errors. */
import type { HookedTransformer } from '../hooks/HookedTransformer.ts';
import type { Limits } from './limits.ts';
import type { SaeStore } from './saes/store.ts';

/** An error caused by the request (bad layer, unknown hook, prompt too long, …): answered with `status` (4xx). */
export class UserError extends Error {
  constructor(message: string, readonly status = 400) {
    super(message);
    this.name = 'UserError';
  }
}

/** Thrown by checkCancelled() when the running job was cancelled. */
export class JobCancelled extends Error {
  constructor() {
    super('cancelled');
    this.name = 'JobCancelled';
  }
}

export interface JobContext {
  readonly limits: Limits;
  /** Reports `done` of `total` steps (sent to the client as an SSE `progress` event when it streams). */
  progress(done: number, total: number, message?: string): void;
  /** Throws JobCancelled if this job was cancelled; call it between steps (each step well under a second). */
  checkCancelled(): void;
  /** Lensboard's cache folder for what is computed once per model (--cache-dir; undefined: the library's default). */
  readonly cacheDir?: string;
  /** The SAEs the model can use (the SAE endpoints' jobs); made by the model thread when the model loads. */
  readonly saes?: SaeStore;
}

/** A job kind: runs on the worker's model with the request's parsed body; returns a structured-cloneable result. */
export type JobHandler<P = never, R = unknown> = (model: HookedTransformer, payload: P, ctx: JobContext) => Promise<R>;
