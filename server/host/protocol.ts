/**
 * Messages between the server and a model's runner process (ToRunner / FromRunner, over Node's IPC channel with
 * `serialization: 'advanced'`), between the runner's main thread and its model thread (ToWorker / FromWorker), and
 * what a loaded model reports about itself.
 */
import type { HookedTransformerConfig, ProcessingFlags } from '../../hooks/config.ts';
import type { Dim, HookName } from '../../hooks/hookPoints.ts';
import type { ProgressEvent } from '../../hooks/loading/progress.ts';
import type { Limits } from '../../services/limits.ts';
import type { ModelDefaults } from '../worker/defaults.ts';

/** Where a model comes from: a directory inside a model root, or the hub (through the HF cache). */
export type ModelSource =
  | { kind: 'dir'; name: string; dir: string; root: string }
  | { kind: 'hub'; name: string; repo: string };

export interface LoadOptions {
  device: 'cpu' | 'cuda' | 'webgpu' | 'auto';
  /** Real paths of the model roots: every file a directory model opens must lie inside one (symlinks resolved). */
  roots: string[];
  threads: number;
  processing: ProcessingFlags;
  hfCacheDir?: string;
  hubEndpoint?: string;
  offline: boolean;
  /** Lensboard's cache folder (--cache-dir; default: the library's lensboardCacheDir()). */
  cacheDir?: string;
}

export interface HookPointSummary {
  name: HookName;
  layer: number | null;
  dims: Dim[];
  /** Size of each dim for this model; null for batch and positions (they depend on the input). */
  sizes: (number | null)[];
}

export interface ModelInfo {
  name: string;
  source: ModelSource;
  config: HookedTransformerConfig;
  device: string;
  processing: ProcessingFlags;
  hasTokenizer: boolean;
  /** The dashboard's example inputs for this model (worker/defaults.ts). */
  defaults: ModelDefaults;
  hookPoints: HookPointSummary[];
  loadedAt: string;
}

export interface WorkerData {
  /** Int32Array[1] over it: the seq of the job to cancel (checked by the running job between steps). */
  cancelFlag: SharedArrayBuffer;
  limits: Limits;
}

export interface WireError {
  /** HTTP status for errors caused by the request (4xx); 500 for faults. */
  status: number;
  message: string;
}

/** The runner's main thread → its model thread. `gc` asks for a full garbage collection after a job (answered by `gcDone`). */
export type ToWorker =
  | { type: 'load'; source: ModelSource; options: LoadOptions }
  | { type: 'job'; seq: number; kind: string; payload: unknown }
  | { type: 'gc' };

/** The model thread → the runner's main thread. */
export type FromWorker =
  | { type: 'loadProgress'; event: ProgressEvent }
  | { type: 'loaded'; info: ModelInfo }
  | { type: 'loadError'; error: WireError }
  | { type: 'progress'; seq: number; done: number; total: number; message?: string }
  | { type: 'result'; seq: number; result: unknown }
  | { type: 'error'; seq: number; error: WireError }
  | { type: 'cancelled'; seq: number }
  | { type: 'gcDone' };

/** A runner's memory around one job, in bytes (resident set of the whole runner process). */
export interface JobMemory {
  /** RSS when the job started. */
  before: number;
  /** Peak RSS during the job (VmHWM, reset when the job starts; null where /proc is not available). */
  peak: number | null;
  /** RSS after the job (after a full garbage collection when the job grew the runner by 32 MiB or more). */
  after: number;
}

/**
 * The server → a runner process. `load` once, then one `job` at a time (the next only after `idle`); `cancel` sets
 * the running job's cancel flag; `exit` asks the runner to stop (it also stops when the IPC channel closes).
 */
export type ToRunner =
  | { type: 'load'; source: ModelSource; options: LoadOptions; limits: Limits }
  | { type: 'job'; seq: number; kind: string; payload: unknown }
  | { type: 'cancel'; seq: number }
  | { type: 'exit' };

/**
 * A runner process → the server: the model thread's messages, relayed, plus `loaded` with the RSS after loading and
 * `idle` after each job (the job's memory; the runner is ready for the next job).
 */
export type FromRunner =
  | Exclude<FromWorker, { type: 'loaded' } | { type: 'gcDone' }>
  | { type: 'loaded'; info: ModelInfo; rss: number }
  | { type: 'idle'; seq: number; memory: JobMemory };
