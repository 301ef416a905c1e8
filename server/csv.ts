/** Every result as CSV: a table (column names + rows), RFC 4180 quoting, and the JSON-or-CSV choice of a request. */
import type { Request, Response } from 'express';
import { badRequest, HttpError } from './errors.ts';
import { tableToCsv } from '../hooks/figures/csv.ts';
import type { Table } from '../hooks/figures/types.ts';
import { stringifyJson } from '../services/common/nonFinite.ts';

/** One Table type and one CSV writer for the API's answers and the figures' exports (hooks/figures). */
export type { Cell, Table } from '../hooks/figures/types.ts';

export type ResultFormat = 'json' | 'csv';

/** `?format=json|csv` wins; else `Accept: text/csv` (preferred over JSON) means CSV; else JSON. */
export function resultFormat(req: Request): ResultFormat {
  const q = req.query.format;
  if (q !== undefined) {
    if (q === 'json' || q === 'csv') return q;
    throw badRequest(`query parameter format must be 'json' or 'csv'; got ${JSON.stringify(q)}`);
  }
  const accept = req.get('accept');
  if (accept && req.accepts(['application/json', 'text/csv']) === 'text/csv') return 'csv';
  return 'json';
}

/** The 400 for an answer over maxResponseBytes (measured once serialised: a last guard behind the jobs' own estimates). */
export function answerTooLarge(bytes: number, maxBytes: number, format: string): HttpError {
  const mib = (b: number) => `${(b / 2 ** 20).toFixed(1)} MiB`;
  return badRequest(
    `the answer is ${mib(bytes)} of ${format}; the limit is ${mib(maxBytes)} (maxResponseBytes): ask for fewer prompts, positions, layers or heads, or a smaller topK`,
  );
}

/** Sends `result` as JSON, or as CSV via `table` when the request asks for CSV; refuses an answer over `maxBytes`. */
export function sendResult<R>(req: Request, res: Response, result: R, table: (r: R) => Table, maxBytes = Infinity): void {
  const csv = resultFormat(req) === 'csv';
  const text = csv ? tableToCsv(table(result)) : stringifyJson(result);
  const bytes = Buffer.byteLength(text);
  if (bytes > maxBytes) throw answerTooLarge(bytes, maxBytes, csv ? 'CSV' : 'JSON');
  res.type(csv ? 'text/csv; charset=utf-8' : 'application/json; charset=utf-8').send(text);
}
