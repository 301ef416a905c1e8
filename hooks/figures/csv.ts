/** A figure's table as CSV (RFC 4180, CRLF, non-finite numbers as "Infinity"/"-Infinity"/"NaN", as the API writes them) or JSON. */
import type { Cell, Table } from './types.ts';

function cell(v: Cell): string {
  if (v === null) return '';
  if (typeof v === 'number') return Number.isNaN(v) ? 'NaN' : v === Infinity ? 'Infinity' : v === -Infinity ? '-Infinity' : String(v);
  const s = String(v);
  return /[",\r\n]/.test(s) || /^\s|\s$/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}

export function tableToCsv(t: Table): string {
  return [t.columns, ...t.rows].map((r) => r.map(cell).join(',')).join('\r\n') + '\r\n';
}

/** The table as a JSON array of row objects keyed by column name. */
export function tableToJson(t: Table): string {
  const rows = t.rows.map((r) => Object.fromEntries(t.columns.map((c, i) => [c, r[i] ?? null])));
  return JSON.stringify(rows, (_k, v: unknown) => (typeof v === 'number' && !Number.isFinite(v) ? String(v) : v), 1);
}
