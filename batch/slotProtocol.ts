/** Messages between a queue worker's main thread (Redis, locks) and its compute threads (a model each, runShard). */
import type { ShardTask } from './runShard.ts';

export interface SlotData {
  device: 'cpu' | 'cuda' | 'webgpu' | 'auto';
  threads: number;
}

export type ToSlot =
  | { type: 'run'; id: number; task: ShardTask }
  | { type: 'preload'; id: number; model: string };

export type FromSlot =
  | { type: 'progress'; id: number; done: number; total: number }
  | { type: 'result'; id: number; text: string; ms: number }
  /** `user`: the shard itself is at fault (an item the analysis refuses, a model that does not exist): retrying cannot help. */
  | { type: 'error'; id: number; message: string; user: boolean }
  | { type: 'preloaded'; id: number };
