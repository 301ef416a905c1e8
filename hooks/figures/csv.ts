/**
 * A figure's table as CSV (RFC 4180, CRLF, non-finite numbers as "Infinity"/"-Infinity"/"NaN", formula-like text
 * neutralised, exactly as the API writes them) or JSON.
 */
import type { Cell, Table } from './types.ts';

/**
 * One CSV field. Numbers are written as numbers (negative ones too; non-finite as "Infinity", "-Infinity", "NaN"). A
 * text field that begins with =, +, -, @, a tab or a carriage return gets a leading apostrophe, so that a spreadsheet
 * shows it as text instead of running it as a formula (OWASP's advice against CSV injection: a prompt such as
 * `=HYPERLINK(…)` would otherwise become a live formula). Fields with commas, quotes, line breaks or edge spaces are quoted.
 */
export function csvCell(v: Cell | undefined): string {
  if (v === null || v === undefined) return '';
  if (typeof v === 'number') return Number.isNaN(v) ? 'NaN' : v === Infinity ? 'Infinity' : v === -Infinity ? '-Infinity' : String(v);
  let s = String(v);
  if (typeof v === 'string' && /^[=+\-@\t\r]/.test(s)) s = `'${s}`;
  return /[",\r\n]/.test(s) || /^\s|\s$/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}

/** RFC 4180 text: a header line, then one line per row, CRLF line ends (a row of the wrong width is an error). */
export function tableToCsv(t: Table): string {
  for (const row of t.rows) {
    if (row.length !== t.columns.length) throw new Error(`internal: CSV row has ${row.length} cells for ${t.columns.length} columns`);
  }
  return [t.columns, ...t.rows].map((r) => r.map(csvCell).join(',')).join('\r\n') + '\r\n';
}

/** The table as a JSON array of row objects keyed by column name. */
export function tableToJson(t: Table): string {
  const rows = t.rows.map((r) => Object.fromEntries(t.columns.map((c, i) => [c, r[i] ?? null])));
  return JSON.stringify(rows, (_k, v: unknown) => (typeof v === 'number' && !Number.isFinite(v) ? String(v) : v), 1);
}
