/**
 * Reading a model's files: JSON whose syntax errors never echo the file's contents (a `config.json` that is a link to
 * /etc/passwd must not print its first bytes), and, with `allowedRoots`, every file resolved with realpath (links
 * followed) and required to lie inside one of those directories — the server's model roots, or the HF cache.
 */
import { readFile, realpath } from 'node:fs/promises';
import { sep } from 'node:path';

export interface FileAccess {
  /** Directories every file read must lie in once links are resolved (none: no restriction, the library's default). */
  allowedRoots?: readonly string[];
}

const inside = (root: string, p: string) => p === root || p.startsWith(root.endsWith(sep) ? root : root + sep);

/** The path to open for `path`: its real path, checked against `allowedRoots` when given; `path` itself without them. */
export async function resolveModelFile(path: string, access: FileAccess = {}): Promise<string> {
  if (!access.allowedRoots) return path;
  let real: string;
  try {
    real = await realpath(path);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new Error(`${path}: ${code === 'ENOENT' ? 'no such file (or a broken link)' : `cannot be resolved (${code})`}`);
  }
  const roots = await Promise.all(access.allowedRoots.map((r) => realpath(r).catch(() => r)));
  if (!roots.some((r) => inside(r, real))) {
    throw new Error(`${path} is a link to a file outside the model roots; only files inside a model root are read`);
  }
  return real;
}

/** A JSON syntax error that names the file and the place, never the text (V8's messages quote the input). */
export function jsonSyntaxError(path: string, text: string, err: unknown): Error {
  const at = /position (\d+)/.exec((err as Error)?.message ?? '');
  let where = '';
  if (at) {
    const before = text.slice(0, Number(at[1]));
    const line = before.split('\n').length;
    where = ` at line ${line}, column ${before.length - before.lastIndexOf('\n')}`;
  } else if (/end of JSON input/.test((err as Error)?.message ?? '')) where = ' (it ends too early)';
  return new Error(`${path} is not valid JSON${where}`);
}

/** Reads and parses a JSON file (resolved as resolveModelFile does); errors name the file, never its contents. */
export async function readJsonFile(path: string, access: FileAccess = {}): Promise<unknown> {
  const real = await resolveModelFile(path, access);
  let text: string;
  try {
    text = await readFile(real, 'utf8');
  } catch (err) {
    throw new Error(`cannot read ${path} (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
  }
  try {
    return JSON.parse(text);
  } catch (err) {
    throw jsonSyntaxError(path, text, err);
  }
}
