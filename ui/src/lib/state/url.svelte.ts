/** The view state in the URL: every key the dashboard reads lives in location.search, so a link reopens the same figure. */

export class UrlState {
  #params = $state<Record<string, string>>({});

  constructor(search: string = location.search) {
    this.#params = Object.fromEntries(new URLSearchParams(search));
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

  /** Sets (or with null / fallback-equal values, removes) keys and writes the URL (replaceState: no history spam). */
  set(values: Record<string, string | number | boolean | number[] | null>): void {
    const next = { ...this.#params };
    for (const [k, v] of Object.entries(values)) {
      if (v === null || (Array.isArray(v) && v.length === 0)) delete next[k];
      else next[k] = Array.isArray(v) ? v.join(',') : typeof v === 'boolean' ? (v ? '1' : '0') : String(v);
    }
    this.#params = next;
    const q = new URLSearchParams(next).toString();
    history.replaceState(null, '', `${location.pathname}${q ? `?${q}` : ''}`);
  }

  /** The link to this exact view. */
  get permalink(): string {
    const q = new URLSearchParams(this.#params).toString();
    return `${location.origin}${location.pathname}${q ? `?${q}` : ''}`;
  }
}
