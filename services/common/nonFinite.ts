/**
 * JSON has no Infinity or NaN. Every answer encodes a non-finite number as the string "Infinity", "-Infinity"
 * or "NaN" (masked attention scores are "-Infinity"); every other number is a JSON number.
 */
import { z } from 'zod';

/** A JSON.stringify replacer applying the encoding above (installed as Express's 'json replacer'). */
export function nonFiniteReplacer(_key: string, value: unknown): unknown {
  if (typeof value === 'number' && !Number.isFinite(value)) return Number.isNaN(value) ? 'NaN' : value > 0 ? 'Infinity' : '-Infinity';
  return value;
}

export function stringifyJson(value: unknown): string {
  return JSON.stringify(value, nonFiniteReplacer);
}

/** Decodes one value of the encoding: a number, or one of the three strings. */
export function decodeNumber(v: number | string): number {
  if (typeof v === 'number') return v;
  if (v === 'Infinity') return Infinity;
  if (v === '-Infinity') return -Infinity;
  if (v === 'NaN') return NaN;
  throw new Error(`not a number or a non-finite marker: ${JSON.stringify(v)}`);
}

/** The response schema of a number that may be non-finite. */
export const JsonNumber = z
  .union([z.number(), z.enum(['Infinity', '-Infinity', 'NaN'])])
  .describe('a number; non-finite values are the strings "Infinity", "-Infinity" or "NaN"');

/**
 * A JsonNumber of a result as its handler made it: a number (non-finite markers only appear once serialised), for
 * the tables' numeric cells.
 */
export const num = (v: number | string): number => v as number;
/** num, with null (or undefined) as an empty cell. */
export const numOrNull = (v: number | string | null | undefined): number | null => (v === undefined || v === null ? null : (v as number));
