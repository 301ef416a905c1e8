/** Download progress events (a tagged union on `status`) and a one-line stderr progress bar for terminals. */

export type ProgressEvent =
  /** A file is about to be resolved (from the cache or the hub). */
  | { status: 'initiate'; repo: string; file: string }
  /** Bytes are about to be transferred; `resumeFrom` > 0 when an interrupted download continues. */
  | { status: 'download'; repo: string; file: string; total: number | null; resumeFrom: number }
  /** `rate` in bytes/s over this transfer, `eta` in seconds (null when the size is unknown). */
  | { status: 'progress'; repo: string; file: string; loaded: number; total: number | null; rate: number; eta: number | null }
  /** A file is available at `path` (null: an optional file the repo does not have). */
  | { status: 'done'; repo: string; file: string; path: string | null; cached: boolean }
  /** Every file of the snapshot is in place. */
  | { status: 'ready'; repo: string; dir: string; commit: string };

export type ProgressCallback = (event: ProgressEvent) => void;

export function formatBytes(n: number): string {
  if (n < 1024) return `${n} B`;
  const units = ['kB', 'MB', 'GB', 'TB'];
  let v = n / 1024;
  let u = 0;
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  return `${v.toFixed(1)} ${units[u]}`;
}

export function formatDuration(s: number): string {
  if (!Number.isFinite(s)) return '?';
  const t = Math.round(s);
  if (t < 60) return `${t}s`;
  if (t < 3600) return `${Math.floor(t / 60)}m${String(t % 60).padStart(2, '0')}s`;
  return `${Math.floor(t / 3600)}h${String(Math.floor((t % 3600) / 60)).padStart(2, '0')}m`;
}

/** One terminal line for a 'progress' event, at most `columns` characters wide. */
export function formatProgressLine(
  ev: Extract<ProgressEvent, { status: 'progress' }>,
  columns: number,
): string {
  const size = ev.total !== null ? `${formatBytes(ev.loaded)}/${formatBytes(ev.total)}` : formatBytes(ev.loaded);
  const tail = ` ${size} ${formatBytes(Math.round(ev.rate))}/s${ev.eta !== null ? ` eta ${formatDuration(ev.eta)}` : ''}`;
  const head = ev.file;
  if (ev.total === null || ev.total === 0) return (head + tail).slice(0, columns);
  const frac = Math.min(1, ev.loaded / ev.total);
  const pct = `${Math.floor(frac * 100)}%`.padStart(4);
  // `${head} ${pct} [bar]${tail}`: the bar takes what is left, up to 30 columns; dropped below 5.
  const width = Math.min(30, columns - (head.length + pct.length + tail.length + 4));
  const filled = Math.round(frac * width);
  const line = width >= 5 ? `${head} ${pct} [${'#'.repeat(filled)}${'-'.repeat(width - filled)}]${tail}` : `${head} ${pct}${tail}`;
  return line.slice(0, columns);
}

/** An onProgress callback that redraws one line on a TTY stream (stderr) and clears it when a file is done. */
export function ttyProgressBar(stream: NodeJS.WriteStream = process.stderr, minIntervalMs = 100): ProgressCallback {
  let last = 0;
  let drawn = false;
  return (ev) => {
    if (ev.status === 'progress') {
      const now = Date.now();
      if (now - last < minIntervalMs && ev.loaded !== ev.total) return;
      last = now;
      stream.write(`\r${formatProgressLine(ev, (stream.columns ?? 80) - 1)}\x1b[K`);
      drawn = true;
    } else if (ev.status === 'done' && drawn) {
      stream.write('\r\x1b[K');
      drawn = false;
    }
  };
}

/** The callback to use: the caller's, else a stderr bar when stderr is a terminal, else none. */
export function defaultProgress(onProgress?: ProgressCallback): ProgressCallback | undefined {
  if (onProgress) return onProgress;
  return process.stderr.isTTY ? ttyProgressBar(process.stderr) : undefined;
}
