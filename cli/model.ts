/** Which model the CLI loads (--model NAME_OR_DIR, default the embedded model at models/embedded) and loading it. */
import { existsSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { HookedTransformer } from '../hooks/HookedTransformer.ts';
import type { Device } from '../hooks/engine/runtime.ts';
import { UsageError } from './errors.ts';

/** <package root>/models: holds `embedded` (the default) and any other model directories by name. */
export const MODELS_DIR = fileURLToPath(new URL('../models/', import.meta.url));
export const EMBEDDED_DIR = join(MODELS_DIR, 'embedded');

const isDir = (p: string) => existsSync(p) && statSync(p).isDirectory();

/**
 * --model → what HookedTransformer.fromPretrained loads: an existing directory (as given), a directory name
 * under models/ (`embedded`), or else a model name / hub id (gpt2, gpt2-medium, owner/name). Without --model:
 * models/embedded when it holds a checkpoint.
 */
export function resolveModelArg(arg: string | undefined): string {
  if (arg === undefined) {
    if (existsSync(join(EMBEDDED_DIR, 'config.json'))) return EMBEDDED_DIR;
    throw new UsageError(`--model: no model given and the embedded model (${EMBEDDED_DIR}) is not there yet; pass --model NAME_OR_DIR (a checkpoint directory or a model name such as gpt2)`);
  }
  if (isDir(arg)) return resolve(arg);
  if (!arg.includes('/') && isDir(join(MODELS_DIR, arg))) return join(MODELS_DIR, arg);
  if (arg.startsWith('.') || arg.startsWith('/') || arg.split('/').length > 2) {
    throw new UsageError(`--model: '${arg}' is not a directory; give a checkpoint directory, a name under models/, or a model name such as gpt2`);
  }
  return arg;
}

export async function loadModel(source: string, opts: { device: Device; threads: number }): Promise<HookedTransformer> {
  try {
    return await HookedTransformer.fromPretrained(source, { device: opts.device, threads: opts.threads });
  } catch (e) {
    throw new Error(`could not load the model '${source}': ${(e as Error).message}`);
  }
}
