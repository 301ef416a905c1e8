/** A progress bar on stderr for long CLI runs: redrawn in place on a terminal, a throttled line per update otherwise. */

export interface Progress {
  update(done: number, total: number, message?: string): void;
  /** Ends the bar (a newline on a terminal). */
  finish(): void;
}

/** The bar's text: `label [#####-----]  12/144  8% heads`. */
export function formatBar(label: string, done: number, total: number, message = '', width = 24): string {
  const frac = total > 0 ? Math.min(1, Math.max(0, done / total)) : 0;
  const filled = Math.round(frac * width);
  const pct = `${Math.floor(frac * 100)}%`.padStart(4);
  return `${label} [${'#'.repeat(filled)}${'-'.repeat(width - filled)}] ${done}/${total} ${pct}${message ? ` ${message}` : ''}`;
}

/** "1m05s", "42s", "2h03m" */
export function formatDuration(seconds: number): string {
  const s = Math.max(0, Math.round(seconds));
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s`;
  return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m`;
}

/** Rate and time left from the progress since `start` ({done, ms}): `12.3 items/s, ETA 1m05s` (empty before any progress). */
export function formatRate(unit: string, start: { done: number; ms: number }, done: number, total: number, nowMs: number): string {
  const rate = (done - start.done) / Math.max(1e-3, (nowMs - start.ms) / 1000);
  if (!(done > start.done) || !Number.isFinite(rate)) return '';
  const digits = rate >= 100 ? 0 : rate >= 10 ? 1 : 2;
  return `${rate.toFixed(digits)} ${unit}/s, ETA ${formatDuration((total - done) / rate)}`;
}

/**
 * A bar on `stream`; disabled: does nothing. Off a terminal it writes at most one line per `minIntervalMs` (and the
 * last one). With `rateUnit` it also shows the rate and time left, from the first update on (a resumed run's earlier
 * progress does not count toward the rate).
 */
export function progressBar(label: string, opts: { stream?: NodeJS.WriteStream; enabled?: boolean; minIntervalMs?: number; rateUnit?: string } = {}): Progress {
  const stream = opts.stream ?? process.stderr;
  if (opts.enabled === false) return { update: () => {}, finish: () => {} };
  const tty = Boolean(stream.isTTY);
  const minInterval = opts.minIntervalMs ?? (tty ? 50 : 1000);
  let last = 0;
  let pending: string | null = null;
  let drawn = false;
  let start: { done: number; ms: number } | null = null;
  const draw = (line: string) => {
    if (tty) stream.write(`\r${line}\x1b[K`);
    else stream.write(`${line}\n`);
    drawn = true;
    pending = null;
    last = Date.now();
  };
  return {
    update(done, total, message) {
      const now = Date.now();
      start ??= { done, ms: now };
      const rate = opts.rateUnit ? formatRate(opts.rateUnit, start, done, total, now) : '';
      const line = formatBar(label, done, total, [rate, message].filter(Boolean).join(' · '));
      if (done >= total || Date.now() - last >= minInterval) draw(line);
      else pending = line;
    },
    finish() {
      if (pending) draw(pending);
      if (tty && drawn) stream.write('\n');
    },
  };
}
