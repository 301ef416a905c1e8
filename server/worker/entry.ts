/**
 * The model thread of a runner process (server/runner/main.ts): loads one model, then runs jobs one at a time, posting
 * progress, results and typed errors; `gc` (after each job) collects garbage so the runner can measure what it keeps.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { HookedTransformer } from '../../hooks/HookedTransformer.ts';
import { hubCacheDir } from '../../hooks/loading/hfCache.ts';
import { HubHttpError } from '../../hooks/loading/hubHttp.ts';
import type { FromWorker, LoadOptions, ModelInfo, ModelSource, ToWorker, WireError, WorkerData } from '../host/protocol.ts';
import { JobCancelled, UserError, type JobContext, type JobHandler } from '../../services/context.ts';
import { modelDefaults } from './defaults.ts';
import { JOBS } from './jobs.ts';
import { SaeStore } from '../../services/saes/store.ts';

const port = parentPort!;
const { cancelFlag, limits } = workerData as WorkerData;
const flag = new Int32Array(cancelFlag);
let model: HookedTransformer | null = null;
let source: ModelSource | null = null;
let cacheDir: string | undefined;
let saes: SaeStore | undefined;

const post = (m: FromWorker) => port.postMessage(m);

function wireError(e: unknown): WireError {
  if (e instanceof UserError) return { status: e.status, message: e.message };
  return { status: 500, message: e instanceof Error ? e.message : String(e) };
}

async function describe(m: HookedTransformer, src: ModelSource): Promise<ModelInfo> {
  const sizes: Record<string, number | null> = {
    batch: null, pos: null, query_pos: null, key_pos: null, head: m.cfg.n_heads,
    d_model: m.cfg.d_model, d_head: m.cfg.d_head, d_mlp: m.cfg.d_mlp, '1': 1,
  };
  return {
    name: src.name,
    source: src,
    config: m.cfg,
    device: m.device,
    processing: m.processing,
    hasTokenizer: m.tokenizer !== null,
    defaults: await modelDefaults(m, src.kind === 'dir' ? src.dir : null),
    hookPoints: m.hookPoints().map((h) => ({ name: h.name, layer: h.layer, dims: h.dims, sizes: h.dims.map((d) => sizes[d]) })),
    loadedAt: new Date().toISOString(),
  };
}

async function load(src: ModelSource, o: LoadOptions): Promise<void> {
  try {
    model = await HookedTransformer.fromPretrained(src.kind === 'dir' ? src.dir : src.repo, {
      device: o.device,
      threads: o.threads,
      ...o.processing,
      cacheDir: o.hfCacheDir,
      endpoint: o.hubEndpoint,
      localFilesOnly: o.offline,
      // Every file the model opens (config, weights, shards, tokenizer files) must resolve inside a model root, or the HF cache.
      allowedRoots: src.kind === 'dir' ? o.roots : [hubCacheDir(o.hfCacheDir)],
      onProgress: (event) => post({ type: 'loadProgress', event }),
    });
    source = src;
    cacheDir = o.cacheDir;
    saes = new SaeStore({
      model,
      modelDir: src.kind === 'dir' ? src.dir : null,
      hub: { cacheDir: o.hfCacheDir, endpoint: o.hubEndpoint, localFilesOnly: o.offline },
    });
    post({ type: 'loaded', info: await describe(model, src) });
  } catch (e) {
    const status = e instanceof HubHttpError && e.status >= 400 && e.status < 500 ? e.status : 422;
    post({ type: 'loadError', error: { status, message: `could not load ${src.name}: ${(e as Error).message}` } });
  }
}

async function runJob(seq: number, kind: string, payload: unknown): Promise<void> {
  const handler = (JOBS as Record<string, JobHandler<never, unknown> | undefined>)[kind];
  if (!model || !source) {
    post({ type: 'error', seq, error: { status: 503, message: 'the model is not loaded' } });
    return;
  }
  if (!handler) {
    post({ type: 'error', seq, error: { status: 500, message: `internal: unknown job kind '${kind}'` } });
    return;
  }
  let lastProgress = 0;
  const ctx: JobContext = {
    limits,
    cacheDir,
    saes,
    progress: (done, total, message) => {
      const now = Date.now();
      if (done < total && now - lastProgress < 50) return; // at most ~20 progress messages a second
      lastProgress = now;
      post({ type: 'progress', seq, done, total, message });
    },
    checkCancelled: () => {
      if (Atomics.load(flag, 0) === seq) throw new JobCancelled();
    },
  };
  try {
    ctx.checkCancelled();
    const result = await handler(model, payload as never, ctx);
    post({ type: 'result', seq, result });
  } catch (e) {
    if (e instanceof JobCancelled) post({ type: 'cancelled', seq });
    else post({ type: 'error', seq, error: wireError(e) });
  }
}

// Messages are handled strictly one after another (the host sends one job at a time, this keeps it so).
let chain: Promise<void> = Promise.resolve();
function collectGarbage(): void {
  (globalThis as { gc?: () => void }).gc?.(); // exposed by the runner's --expose-gc
  post({ type: 'gcDone' });
}

port.on('message', (msg: ToWorker) => {
  chain = chain.then(() => {
    if (msg.type === 'load') return load(msg.source, msg.options);
    if (msg.type === 'gc') return collectGarbage();
    return runJob(msg.seq, msg.kind, msg.payload);
  });
});
