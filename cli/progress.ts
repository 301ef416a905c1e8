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

/** A bar on `stream`; disabled: does nothing. Off a terminal it writes at most one line per `minIntervalMs` (and the last one). */
export function progressBar(label: string, opts: { stream?: NodeJS.WriteStream; enabled?: boolean; minIntervalMs?: number } = {}): Progress {
  const stream = opts.stream ?? process.stderr;
  if (opts.enabled === false) return { update: () => {}, finish: () => {} };
  const tty = Boolean(stream.isTTY);
  const minInterval = opts.minIntervalMs ?? (tty ? 50 : 1000);
  let last = 0;
  let pending: string | null = null;
  let drawn = false;
  const draw = (line: string) => {
    if (tty) stream.write(`\r${line}\x1b[K`);
    else stream.write(`${line}\n`);
    drawn = true;
    pending = null;
    last = Date.now();
  };
  return {
    update(done, total, message) {
      const line = formatBar(label, done, total, message);
      if (done >= total || Date.now() - last >= minInterval) draw(line);
      else pending = line;
    },
    finish() {
      if (pending) draw(pending);
      if (tty && drawn) stream.write('\n');
    },
  };
}
