/** Cutting a dataset into shards (the unit of work, of resumption and of distribution) and fingerprinting an experiment. */
import { createHash } from 'node:crypto';

export interface ShardRange {
  index: number;
  /** Items [start, end) of the dataset. */
  start: number;
  end: number;
}

/** Consecutive shards of `shardSize` items (the last may be shorter). */
export function shardRanges(nItems: number, shardSize: number): ShardRange[] {
  if (!Number.isInteger(shardSize) || shardSize < 1) throw new Error(`shardSize must be a positive integer; got ${shardSize}`);
  const out: ShardRange[] = [];
  for (let start = 0, index = 0; start < nItems; start += shardSize, index++) out.push({ index, start, end: Math.min(nItems, start + shardSize) });
  return out;
}

/** JSON with object keys sorted, so equal values give equal text whatever the key order. */
export function canonicalJson(value: unknown): string {
  return JSON.stringify(value, (_k, v: unknown) => {
    if (v && typeof v === 'object' && !Array.isArray(v)) {
      return Object.fromEntries(Object.entries(v as Record<string, unknown>).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
    }
    return v;
  });
}

/** sha256 (hex) of the canonical JSON of `value`. */
export function fingerprint(value: unknown): string {
  return createHash('sha256').update(canonicalJson(value)).digest('hex');
}
