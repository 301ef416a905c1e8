/** A small `--flag value` command-line parser with typed getters and clear errors. */

export class Args {
  private readonly values = new Map<string, string | true>();

  constructor(argv: readonly string[], private readonly allowed: Record<string, 'string' | 'number' | 'flag'>) {
    for (let i = 0; i < argv.length; i++) {
      const a = argv[i];
      if (!a.startsWith('--')) throw new Error(`unexpected argument '${a}'; options start with --. Allowed: ${this.usage()}`);
      const key = a.slice(2);
      const kind = allowed[key];
      if (!kind) throw new Error(`unknown option --${key}. Allowed: ${this.usage()}`);
      if (kind === 'flag') this.values.set(key, true);
      else {
        const v = argv[++i];
        if (v === undefined || v.startsWith('--')) throw new Error(`option --${key} needs a value`);
        this.values.set(key, v);
      }
    }
  }

  usage(): string {
    return Object.entries(this.allowed).map(([k, t]) => (t === 'flag' ? `--${k}` : `--${k} <${t}>`)).join(' ');
  }

  has(key: string): boolean {
    return this.values.has(key);
  }

  string(key: string, fallback?: string): string {
    const v = this.values.get(key);
    if (typeof v === 'string') return v;
    if (fallback !== undefined) return fallback;
    throw new Error(`missing required option --${key}`);
  }

  number(key: string, fallback: number, check: { integer?: boolean; min?: number } = {}): number {
    const v = this.values.get(key);
    const n = typeof v === 'string' ? Number(v) : fallback;
    if (!Number.isFinite(n) || (check.integer && !Number.isInteger(n)) || (check.min !== undefined && n < check.min)) {
      throw new Error(`--${key} must be ${check.integer ? 'an integer' : 'a number'}${check.min !== undefined ? ` ≥ ${check.min}` : ''}; got '${String(v)}'`);
    }
    return n;
  }
}
