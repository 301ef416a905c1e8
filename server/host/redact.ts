/**
 * Error messages leave the server without absolute server paths: a path inside a model root is shown relative to that
 * root ("evil/config.json"), and the other directories the server works in by name (<hf-cache>, <package>, <tmp>, ~).
 */
import { realpathSync } from 'node:fs';
import { homedir, tmpdir } from 'node:os';
import { sep } from 'node:path';

export type Redactor = (message: string) => string;

/** `prefixes`: directory → what replaces it (an empty label drops the directory and its separator). */
export function pathRedactor(prefixes: readonly (readonly [dir: string, label: string])[]): Redactor {
  const rules: [string, string][] = [];
  for (const [dir, label] of prefixes) {
    for (const form of new Set([dir, safeRealpath(dir)])) {
      const d = form.endsWith(sep) ? form.slice(0, -1) : form;
      if (d.length > 1) rules.push([d, label]);
    }
  }
  rules.sort((a, b) => b[0].length - a[0].length); // the most specific directory first
  return (message) => {
    let out = message;
    for (const [dir, label] of rules) {
      out = out.split(dir + sep).join(label ? label + '/' : '');
      out = out.split(dir).join(label || '.');
    }
    return out;
  };
}

/** The server's redactor: model roots (relative paths inside them), the HF cache, the package, the temp and home dirs. */
export function serverRedactor(roots: readonly string[], dirs: { hfCacheDir?: string; packageDir: string }): Redactor {
  return pathRedactor([
    ...roots.map((r) => [r, ''] as const),
    ...(dirs.hfCacheDir ? [[dirs.hfCacheDir, '<hf-cache>'] as const] : []),
    [dirs.packageDir, '<package>'],
    [tmpdir(), '<tmp>'],
    [homedir(), '~'],
  ]);
}

function safeRealpath(p: string): string {
  try {
    return realpathSync(p);
  } catch {
    return p;
  }
}
