/** Request bodies as keys (two bodies with the same fields are the same request) and how a figure's run differs from its controls. */

/** A request body's key: JSON with object keys sorted. */
export function bodyKey(body: unknown): string {
  return JSON.stringify(body, (_k, v: unknown) =>
    v && typeof v === 'object' && !Array.isArray(v) ? Object.fromEntries(Object.entries(v as Record<string, unknown>).sort(([a], [b]) => (a < b ? -1 : 1))) : v);
}

/** The top-level fields in which two bodies differ, in `wanted`'s order (then `shown`'s). */
export function changedFields(shown: unknown, wanted: unknown): string[] {
  const a = (shown ?? {}) as Record<string, unknown>;
  const b = (wanted ?? {}) as Record<string, unknown>;
  const names = [...new Set([...Object.keys(b), ...Object.keys(a)])];
  return names.filter((k) => bodyKey(a[k]) !== bodyKey(b[k]));
}

/** How a figure's run relates to what its controls ask for now. */
export interface Staleness {
  /** 'updating': the wanted run is in flight; 'cancelled': it was stopped; 'changed': it has not been run. */
  state: 'updating' | 'cancelled' | 'changed';
  /** Request fields that differ between the figure's run and the controls. */
  fields: string[];
}
