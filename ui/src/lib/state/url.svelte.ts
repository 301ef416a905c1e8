/**
 * The view state in the URL and the browser history. Every key the dashboard reads lives in location.search, so a link
 * reopens the same figure; every change a user makes (a tab, a prompt, a control, a run) is a history entry, so Back
 * and Forward walk through them. Each entry's history.state also records which run each job's figure shows
 * ({key, body} per job id), so Back restores a figure that was stale or run by a button exactly as it was.
 */

/** The run a job's figure shows: its request body and that body's key. */
export interface RunRef {
  key: string;
  body: unknown;
}

type Runs = Record<string, RunRef>;
type Values = Record<string, string | number | boolean | number[] | null>;

interface EntryState {
  lensboard: 1;
  runs: Runs;
}

function isEntryState(s: unknown): s is EntryState {
  return typeof s === 'object' && s !== null && (s as EntryState).lensboard === 1 && typeof (s as EntryState).runs === 'object';
}

function parse(search: string): Record<string, string> {
  return Object.fromEntries(new URLSearchParams(search));
}

export class UrlState {
  #params = $state<Record<string, string>>({});
  /** The runs shown in the current history entry (not reactive: read on Back/Forward only). */
  #runs: Runs = {};
  #listeners = new Set<(runs: Runs) => void>();

  constructor(search: string = location.search) {
    this.#params = parse(search);
    if (isEntryState(history.state)) this.#runs = { ...history.state.runs };
    addEventListener('popstate', (e: PopStateEvent) => {
      this.#params = parse(location.search);
      this.#runs = isEntryState(e.state) ? { ...e.state.runs } : {};
      for (const f of this.#listeners) f(this.#runs);
    });
  }

  get(key: string, fallback: string): string {
    return this.#params[key] ?? fallback;
  }

  int(key: string, fallback: number): number {
    const v = Number.parseInt(this.#params[key] ?? '', 10);
    return Number.isFinite(v) ? v : fallback;
  }

  bool(key: string, fallback: boolean): boolean {
    const v = this.#params[key];
    return v === undefined ? fallback : v === '1';
  }

  /** A list of integers stored as "1,2,3". */
  ints(key: string): number[] {
    const v = this.#params[key];
    return v ? v.split(',').map(Number).filter(Number.isInteger) : [];
  }

  /**
   * Sets (or with null / empty values, removes) keys. A change is a new history entry ('push', the default: a user's
   * action) or rewrites the current one ('replace': normalising, e.g. naming the active model). No change, no entry.
   */
  set(values: Values, opts: { history?: 'push' | 'replace' } = {}): void {
    const next = { ...this.#params };
    for (const [k, v] of Object.entries(values)) {
      if (v === null || (Array.isArray(v) && v.length === 0)) delete next[k];
      else next[k] = Array.isArray(v) ? v.join(',') : typeof v === 'boolean' ? (v ? '1' : '0') : String(v);
    }
    if (this.#search(next) === this.#search(this.#params)) return;
    this.#params = next;
    this.#write(opts.history ?? 'push');
  }

  /**
   * Records that job `id` now shows (or is running) `ref`. `push`: a new history entry when this entry already shows
   * another run of the job (a run started by a button is an entry of its own); otherwise the current entry is updated.
   */
  recordRun(id: string, ref: RunRef | null, opts: { push?: boolean } = {}): void {
    const prev = this.#runs[id];
    if ((prev?.key ?? null) === (ref?.key ?? null)) return;
    const runs = { ...this.#runs };
    if (ref) runs[id] = ref;
    else delete runs[id];
    this.#runs = runs;
    this.#write(opts.push && prev ? 'push' : 'replace');
  }

  /** The run this history entry recorded for job `id` (a reload keeps history.state). */
  runOf(id: string): RunRef | undefined {
    return this.#runs[id];
  }

  /** Calls `f` with the entry's runs after Back / Forward changed the URL (the params are already updated). */
  onPop(f: (runs: Runs) => void): () => void {
    this.#listeners.add(f);
    return () => this.#listeners.delete(f);
  }

  /** The link to this exact view. */
  get permalink(): string {
    return `${location.origin}${location.pathname}${this.#search(this.#params)}`;
  }

  #search(params: Record<string, string>): string {
    const q = new URLSearchParams(params).toString();
    return q ? `?${q}` : '';
  }

  #write(mode: 'push' | 'replace'): void {
    const state: EntryState = { lensboard: 1, runs: this.#runs };
    const href = `${location.pathname}${this.#search(this.#params)}`;
    if (mode === 'push') history.pushState(state, '', href);
    else history.replaceState(state, '', href);
  }
}
