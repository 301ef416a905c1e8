/** A dataset experiment on this machine: the model loaded once, the pending shards one after another, each kept as it finishes. */
import { loadModel, resolveModelArg } from '../cli/model.ts';
import type { Device } from '../hooks/engine/runtime.ts';
import { saeStoreFor } from './saes.ts';
import type { RunReporter } from './report.ts';
import { runShard, shardTask } from './runShard.ts';
import type { ExperimentStore } from './store.ts';

export async function runLocal(store: ExperimentStore, report: RunReporter, opts: { device: Device; threads: number }): Promise<void> {
  const pending = store.pending();
  if (pending.length === 0) return;
  const source = resolveModelArg(store.prepared.spec.model);
  const model = await loadModel(source, opts);
  const saes = saeStoreFor(model, source);
  try {
    report.progress(0);
    for (const s of pending) {
      const text = await runShard(model, shardTask(store.prepared, s), (done) => report.progress(done), saes);
      await store.accept(s.index, text);
      report.progress(0);
    }
  } finally {
    await saes.dispose();
    await model.dispose();
  }
}
