/** Command-line flags → a config object: each flag's value converted (int, list, token) and set at its field path. */
import { parseArgs } from 'node:util';
import type { CliFlag } from '../services/service.ts';
import { UsageError } from './errors.ts';

/** A flag: how its text becomes a value (text, integer, boolean switch, comma list, token) and the request field it sets. */
export type FlagDef = CliFlag;
export type FlagType = CliFlag['type'];

function toInt(flag: string, v: string): number {
  if (!/^-?\d+$/.test(v.trim())) throw new UsageError(`--${flag} must be an integer; got '${v}'`);
  return Number(v);
}

function convert(def: FlagDef, v: string | boolean): unknown {
  switch (def.type) {
    case 'bool':
      return def.negate ? !v : v;
    case 'int':
      return toInt(def.flag, String(v));
    case 'list':
      return String(v).split(',').map((s) => s.trim()).filter((s) => s.length > 0);
    case 'intList':
      return String(v).split(',').filter((s) => s.trim().length > 0).map((s) => toInt(def.flag, s));
    case 'token':
      return /^\d+$/.test(String(v)) ? Number(v) : String(v);
    default:
      return String(v);
  }
}

/** Writes `value` at a dotted path of `obj`, creating objects on the way. */
export function setPath(obj: Record<string, unknown>, path: string, value: unknown): void {
  const keys = path.split('.');
  let at = obj;
  for (const k of keys.slice(0, -1)) {
    if (typeof at[k] !== 'object' || at[k] === null || Array.isArray(at[k])) at[k] = {};
    at = at[k] as Record<string, unknown>;
  }
  at[keys[keys.length - 1]] = value;
}

/** Parses `argv` against `defs` (strict: unknown flags and stray arguments are UsageErrors) into a nested config object. */
export function parseFlags(argv: readonly string[], defs: readonly FlagDef[], usage: string): Record<string, unknown> {
  const options: Record<string, { type: 'string' | 'boolean'; multiple?: boolean }> = {};
  for (const d of defs) options[d.flag] = { type: d.type === 'bool' ? 'boolean' : 'string', ...(d.multiple ? { multiple: true } : {}) };
  let values: Record<string, string | boolean | (string | boolean)[] | undefined>;
  let positionals: string[];
  try {
    ({ values, positionals } = parseArgs({ args: [...argv], options, strict: true, allowPositionals: true }));
  } catch (e) {
    const msg = (e as Error).message.replace(/\. To specify a positional argument.*$/s, '');
    throw new UsageError(`${msg}\n${usage}`);
  }
  if (positionals.length > 0) throw new UsageError(`unexpected argument '${positionals[0]}' (flags take the form --name value)\n${usage}`);
  const out: Record<string, unknown> = {};
  for (const d of defs) {
    const v = values[d.flag];
    if (v === undefined) continue;
    if (Array.isArray(v)) {
      const items = v.map((x) => convert(d, x));
      setPath(out, d.path, d.type === 'list' || d.type === 'intList' ? items.flat() : items);
    } else setPath(out, d.path, convert(d, v));
  }
  return out;
}

/** Flag help lines: `  --top-k N   top-k tokens …`. */
export function flagHelp(defs: readonly FlagDef[]): string {
  const meta: Record<FlagType, string> = { string: 'TEXT', int: 'N', bool: '', list: 'A,B,…', intList: 'N,N,…', token: 'TOKEN' };
  const rows = defs.map((d) => [`--${d.flag}${meta[d.type] ? ` ${meta[d.type]}` : ''}${d.multiple ? ' (repeatable)' : ''}`, d.help]);
  const w = Math.max(...rows.map((r) => r[0].length));
  return rows.map(([a, b]) => `  ${a.padEnd(w)}  ${b}`).join('\n');
}
