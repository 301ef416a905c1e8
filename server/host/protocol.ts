/** Messages between the server (main thread) and a model's worker thread, and what a loaded model reports about itself. */
import type { HookedTransformerConfig, ProcessingFlags } from '../../hooks/config.ts';
import type { Dim, HookName } from '../../hooks/hookPoints.ts';
import type { ProgressEvent } from '../../hooks/loading/progress.ts';
import type { Limits } from '../config.ts';

/** Where a model comes from: a directory inside a model root, or the hub (through the HF cache). */
export type ModelSource =
  | { kind: 'dir'; name: string; dir: string; root: string }
  | { kind: 'hub'; name: string; repo: string };

export interface LoadOptions {
  device: 'cpu' | 'cuda' | 'webgpu' | 'auto';
  threads: number;
  processing: ProcessingFlags;
  hfCacheDir?: string;
  hubEndpoint?: string;
  offline: boolean;
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

export type ToWorker =
  | { type: 'load'; source: ModelSource; options: LoadOptions }
  | { type: 'job'; seq: number; kind: string; payload: unknown };

export type FromWorker =
  | { type: 'loadProgress'; event: ProgressEvent }
  | { type: 'loaded'; info: ModelInfo }
  | { type: 'loadError'; error: WireError }
  | { type: 'progress'; seq: number; done: number; total: number; message?: string }
  | { type: 'result'; seq: number; result: unknown }
  | { type: 'error'; seq: number; error: WireError }
  | { type: 'cancelled'; seq: number };
