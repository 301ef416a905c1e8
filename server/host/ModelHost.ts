/** The models the server holds: the active model's runner, a load in progress, model roots, and job look-up across runners. */
import { dirname } from 'node:path';
import pino, { type Logger } from 'pino';
import type { ProcessingFlags } from '../../hooks/config.ts';
import { hubCacheDir } from '../../hooks/loading/hfCache.ts';
import type { ProgressEvent } from '../../hooks/loading/progress.ts';
import { PACKAGE_MODELS_DIR, type ServerConfig } from '../config.ts';
import { conflict, unavailable } from '../errors.ts';
import { ModelRunner, type CancelOutcome, type JobSummary } from './ModelRunner.ts';
import { resolveModelSource, resolveRoots } from './modelNames.ts';
import type { LoadOptions, ModelInfo, ModelSource } from './protocol.ts';
import { serverRedactor, type Redactor } from './redact.ts';

export interface LoadRequest {
  name: string;
  processing: ProcessingFlags;
  device?: LoadOptions['device'];
}

export class ModelHost {
  private activeRunner: ModelRunner | null = null;
  /** Replaced models that still finish their queued jobs. */
  private readonly retiring = new Set<ModelRunner>();
  private pending: { name: string; startedAt: Date } | null = null;
  /** Aborts the load in progress (shutdown). */
  private loadAbort: AbortController | null = null;
  private closed = false;
  /** Takes absolute server paths out of error messages (paths inside a model root become relative to it). */
  readonly redact: Redactor;

  private constructor(
    readonly config: ServerConfig,
    /** Real paths of the model roots; the package's models/ first. */
    readonly roots: string[],
    private readonly log: Logger,
  ) {
    this.redact = serverRedactor(roots, { hfCacheDir: hubCacheDir(config.hfCacheDir), packageDir: dirname(dirname(PACKAGE_MODELS_DIR)) });
  }

  static async create(config: ServerConfig, packageModels = PACKAGE_MODELS_DIR, log: Logger = pino({ level: config.logLevel })): Promise<ModelHost> {
    return new ModelHost(config, await resolveRoots(packageModels, config.modelRoots), log);
  }

  get active(): ModelRunner | null {
    return this.activeRunner;
  }

  get loading(): { name: string; startedAt: string } | null {
    return this.pending ? { name: this.pending.name, startedAt: this.pending.startedAt.toISOString() } : null;
  }

  /** The active model, or a 503 saying how to load one. */
  require(): ModelRunner {
    if (!this.activeRunner) {
      const hint = this.pending ? `model ${this.pending.name} is still loading` : 'load one with POST /api/models/load';
      throw unavailable(`no model is loaded: ${hint}`, this.pending ? 5 : undefined);
    }
    return this.activeRunner;
  }

  /** Where `name` loads from (400/404 before anything starts). */
  resolve(name: string): Promise<ModelSource> {
    return resolveModelSource(name, this.roots, { offline: this.config.offline, cacheDir: this.config.hfCacheDir });
  }

  /** Loads a model in a new runner process and makes it active; the old one finishes its queue, then stops. */
  async load(
    source: ModelSource,
    req: LoadRequest,
    onProgress: (e: ProgressEvent) => void = () => {},
    signal?: AbortSignal,
  ): Promise<ModelInfo> {
    if (this.closed) throw unavailable('the server is shutting down');
    if (this.pending) throw conflict(`model ${this.pending.name} is already loading (since ${this.pending.startedAt.toISOString()}); wait for it to finish`);
    this.pending = { name: req.name, startedAt: new Date() };
    const abort = new AbortController();
    this.loadAbort = abort;
    const onAbort = () => abort.abort();
    if (signal?.aborted) abort.abort();
    signal?.addEventListener('abort', onAbort);
    try {
      const options: LoadOptions = {
        device: req.device ?? this.config.device,
        roots: this.roots,
        threads: this.config.threads,
        processing: req.processing,
        hfCacheDir: this.config.hfCacheDir,
        hubEndpoint: this.config.hubEndpoint,
        offline: this.config.offline,
        cacheDir: this.config.cacheDir,
      };
      const runner = await ModelRunner.start(
        { source, options, limits: this.config.limits },
        { log: this.log, recycleRssBytes: this.config.recycleRssBytes, redact: this.redact },
        onProgress,
        abort.signal,
      );
      if (this.closed) {
        await runner.close();
        throw unavailable('the server is shutting down');
      }
      const old = this.activeRunner;
      this.activeRunner = runner;
      if (old) this.retire(old);
      return runner.info;
    } catch (e) {
      throw this.closed ? unavailable('the server is shutting down') : e;
    } finally {
      this.pending = null;
      this.loadAbort = null;
      signal?.removeEventListener('abort', onAbort);
    }
  }

  private retire(w: ModelRunner): void {
    this.retiring.add(w);
    const check = setInterval(() => {
      if (w.jobs().length === 0) {
        clearInterval(check);
        this.retiring.delete(w);
        void w.close('the model was replaced');
      }
    }, 200);
    check.unref();
  }

  private runners(): ModelRunner[] {
    return [...(this.activeRunner ? [this.activeRunner] : []), ...this.retiring];
  }

  jobs(): JobSummary[] {
    return this.runners().flatMap((w) => w.jobs());
  }

  /** Cancels a job on whichever model holds it; null when no model has it. */
  cancel(id: string): Promise<CancelOutcome> | null {
    for (const w of this.runners()) {
      const r = w.cancel(id);
      if (r) return r;
    }
    return null;
  }

  /** SIGKILLs every runner process now (a shutdown past its deadline). */
  kill(): void {
    for (const r of this.runners()) r.kill();
    this.loadAbort?.abort();
  }

  /** Cancels every job (clients get their cancelled answers) and stops every runner; `reason` goes into the answers. */
  async close(reason = 'the server is shutting down'): Promise<void> {
    this.closed = true;
    this.loadAbort?.abort();
    const all = this.runners();
    this.activeRunner = null;
    this.retiring.clear();
    await Promise.all(all.map((w) => w.close(reason)));
  }
}
