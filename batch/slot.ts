/**
 * A compute thread of a queue worker: runs one shard at a time on its own copy of each model the shards name (the
 * last two kept loaded), off the worker's main thread, whose event loop keeps renewing the shards' locks.
 */
import { parentPort, workerData } from 'node:worker_threads';
import type { HookedTransformer } from '../hooks/HookedTransformer.ts';
import { UsageError } from '../cli/errors.ts';
import { loadModel, resolveModelArg } from '../cli/model.ts';
import { UserError } from '../services/context.ts';
import { runShard } from './runShard.ts';
import { saeStoreFor } from './saes.ts';
import type { SaeStore } from '../services/saes/store.ts';
import type { FromSlot, SlotData, ToSlot } from './slotProtocol.ts';

const port = parentPort!;
const { device, threads } = workerData as SlotData;
const post = (m: FromSlot) => port.postMessage(m);
const MAX_MODELS = 2;
/** A loaded model and the store of the SAEs its shards name. */
interface Loaded {
  model: HookedTransformer;
  saes: SaeStore;
}
const models = new Map<string, Promise<Loaded>>();

/** The model a shard names, loaded once (a failure is not kept; the least recently used of more than two is disposed). */
async function model(name: string): Promise<Loaded> {
  let m = models.get(name);
  if (m) {
    models.delete(name);
  } else {
    let source: string;
    try {
      source = resolveModelArg(name);
    } catch (e) {
      throw new UserError((e as Error).message);
    }
    m = loadModel(source, { device, threads }).then((x) => ({ model: x, saes: saeStoreFor(x, source) }));
    m.catch(() => models.delete(name));
  }
  models.set(name, m);
  while (models.size > MAX_MODELS) {
    const [oldest, p] = models.entries().next().value as [string, Promise<Loaded>];
    models.delete(oldest);
    void p.then(async (x) => {
      await x.saes.dispose();
      await x.model.dispose();
    }).catch(() => {});
  }
  return m;
}

async function handle(msg: ToSlot): Promise<void> {
  try {
    if (msg.type === 'preload') {
      await model(msg.model);
      post({ type: 'preloaded', id: msg.id });
      return;
    }
    const t0 = performance.now();
    let last = 0;
    const loaded = await model(msg.task.model);
    const text = await runShard(loaded.model, msg.task, (done, total) => {
      const now = performance.now();
      if (done < total && now - last < 250) return;
      last = now;
      post({ type: 'progress', id: msg.id, done, total });
    }, loaded.saes);
    post({ type: 'result', id: msg.id, text, ms: performance.now() - t0 });
  } catch (e) {
    post({ type: 'error', id: msg.id, message: (e as Error).message, user: e instanceof UserError || e instanceof UsageError });
  }
}

let chain: Promise<void> = Promise.resolve();
port.on('message', (msg: ToSlot) => {
  chain = chain.then(() => handle(msg));
});
