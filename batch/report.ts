/**
 * A run's progress, told twice: a progress bar over items on stderr (with rate and ETA) and status.json in the
 * output directory (what the dashboard shows while the run lasts; rewritten at most twice a second, and at least
 * every 5 s so a stale file means a stopped run).
 */
import { progressBar, type Progress } from '../cli/progress.ts';
import type { ExperimentStore, RunStatus } from './store.ts';

export class RunReporter {
  private readonly bar: Progress;
  private readonly startedAt = new Date();
  private start: { done: number; ms: number } | null = null;
  private state: RunStatus['state'] = 'running';
  private message: string | undefined;
  private inFlight = 0;
  private lastWrite = 0;
  private writing: Promise<void> = Promise.resolve();
  private readonly heartbeat: NodeJS.Timeout;
  private barOpen = true;
  readonly workers: Record<string, number> = {};

  constructor(private readonly store: ExperimentStore, private readonly mode: RunStatus['mode'], opts: { quiet: boolean }) {
    this.bar = progressBar('items', { enabled: !opts.quiet, rateUnit: 'items' });
    this.heartbeat = setInterval(() => this.update(true), 5000);
    this.heartbeat.unref();
  }

  /** Items of unfinished shards done so far (shown on the bar, not counted as done). */
  progress(inFlightItems = this.inFlight): void {
    this.inFlight = inFlightItems;
    this.update(false);
  }

  setState(state: RunStatus['state'], message?: string): void {
    this.state = state;
    this.message = message;
    this.update(true);
  }

  private status(): RunStatus {
    const { spec, items, shards } = this.store.prepared;
    const done = this.store.itemsDone;
    const now = Date.now();
    this.start ??= { done, ms: now };
    const seen = done + this.inFlight - this.start.done;
    const rate = seen > 0 ? seen / Math.max(1e-3, (now - this.start.ms) / 1000) : null;
    return {
      name: spec.name, analysis: spec.analysis.kind, dataset: spec.dataset.kind, model: spec.model,
      state: this.state, mode: this.mode, items: items.length, itemsDone: done, shards: shards.length, shardsDone: this.store.done.size,
      ratePerS: rate, etaS: rate ? (items.length - done - this.inFlight) / rate : null,
      startedAt: this.startedAt.toISOString(), updatedAt: new Date(now).toISOString(),
      ...(this.message ? { message: this.message } : {}),
      ...(this.mode === 'distributed' ? { workers: { ...this.workers } } : {}),
    };
  }

  private update(force: boolean): void {
    const s = this.status();
    if (this.barOpen) this.bar.update(Math.min(s.items, s.itemsDone + this.inFlight), s.items, `${s.shardsDone}/${s.shards} shards`);
    const now = Date.now();
    if (!force && now - this.lastWrite < 500) return;
    this.lastWrite = now;
    this.writing = this.writing.then(() => this.store.writeStatus(s)).catch(() => {});
  }

  /** Ends the bar and the heartbeat, and writes the status (callable again, e.g. 'running' while writing outputs, then 'done'). */
  async finish(state: RunStatus['state'], message?: string): Promise<void> {
    clearInterval(this.heartbeat);
    this.inFlight = 0;
    this.state = state;
    this.message = message;
    this.update(true);
    if (this.barOpen) this.bar.finish();
    this.barOpen = false;
    await this.writing;
  }
}
