/** The models the server holds: the active model's worker, a load in progress, model roots, and job look-up across workers. */
import type { ProcessingFlags } from '../../hooks/config.ts';
import type { ProgressEvent } from '../../hooks/loading/progress.ts';
import { PACKAGE_MODELS_DIR, type ServerConfig } from '../config.ts';
import { conflict, unavailable } from '../errors.ts';
import { ModelWorker, type CancelOutcome, type JobSummary } from './ModelWorker.ts';
import { resolveModelSource, resolveRoots } from './modelNames.ts';
import type { LoadOptions, ModelInfo, ModelSource } from './protocol.ts';

export interface LoadRequest {
  name: string;
  processing: ProcessingFlags;
  device?: LoadOptions['device'];
}

export class ModelHost {
  private activeWorker: ModelWorker | null = null;
  /** Replaced models that still finish their queued jobs. */
  private readonly retiring = new Set<ModelWorker>();
  private pending: { name: string; startedAt: Date } | null = null;
  private closed = false;

  private constructor(
    readonly config: ServerConfig,
    /** Real paths of the model roots; the package's models/ first. */
    readonly roots: string[],
  ) {}

  static async create(config: ServerConfig, packageModels = PACKAGE_MODELS_DIR): Promise<ModelHost> {
    return new ModelHost(config, await resolveRoots(packageModels, config.modelRoots));
  }

  get active(): ModelWorker | null {
    return this.activeWorker;
  }

  get loading(): { name: string; startedAt: string } | null {
    return this.pending ? { name: this.pending.name, startedAt: this.pending.startedAt.toISOString() } : null;
  }

  /** The active model, or a 503 saying how to load one. */
  require(): ModelWorker {
    if (!this.activeWorker) {
      const hint = this.pending ? `model ${this.pending.name} is still loading` : 'load one with POST /api/models/load';
      throw unavailable(`no model is loaded: ${hint}`);
    }
    return this.activeWorker;
  }

  /** Where `name` loads from (400/404 before anything starts). */
  resolve(name: string): Promise<ModelSource> {
    return resolveModelSource(name, this.roots, { offline: this.config.offline, cacheDir: this.config.hfCacheDir });
  }

  /** Loads a model on a new worker and makes it active; the old one finishes its queue, then stops. */
  async load(
    source: ModelSource,
    req: LoadRequest,
    onProgress: (e: ProgressEvent) => void = () => {},
    signal?: AbortSignal,
  ): Promise<ModelInfo> {
    if (this.closed) throw unavailable('the server is shutting down');
    if (this.pending) throw conflict(`model ${this.pending.name} is already loading (since ${this.pending.startedAt.toISOString()}); wait for it to finish`);
    this.pending = { name: req.name, startedAt: new Date() };
    try {
      const options: LoadOptions = {
        device: req.device ?? this.config.device,
        threads: this.config.threads,
        processing: req.processing,
        hfCacheDir: this.config.hfCacheDir,
        hubEndpoint: this.config.hubEndpoint,
        offline: this.config.offline,
      };
      const worker = await ModelWorker.start(source, options, this.config.limits, onProgress, signal);
      if (this.closed) {
        await worker.close();
        throw unavailable('the server is shutting down');
      }
      const old = this.activeWorker;
      this.activeWorker = worker;
      if (old) this.retire(old);
      return worker.info;
    } finally {
      this.pending = null;
    }
  }

  private retire(w: ModelWorker): void {
    this.retiring.add(w);
    const check = setInterval(() => {
      if (w.jobs().length === 0) {
        clearInterval(check);
        this.retiring.delete(w);
        void w.close();
      }
    }, 200);
    check.unref();
  }

  private workers(): ModelWorker[] {
    return [...(this.activeWorker ? [this.activeWorker] : []), ...this.retiring];
  }

  jobs(): JobSummary[] {
    return this.workers().flatMap((w) => w.jobs());
  }

  /** Cancels a job on whichever model holds it; null when no model has it. */
  cancel(id: string): Promise<CancelOutcome> | null {
    for (const w of this.workers()) {
      const r = w.cancel(id);
      if (r) return r;
    }
    return null;
  }

  async close(): Promise<void> {
    this.closed = true;
    const all = this.workers();
    this.activeWorker = null;
    this.retiring.clear();
    await Promise.all(all.map((w) => w.close()));
  }
}
