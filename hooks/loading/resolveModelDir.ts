/** Name or path → checkpoint directory (a local directory as is, else a hub snapshot in the HF cache), and loading from either. */
import { stat } from 'node:fs/promises';
import { isAbsolute, resolve } from 'node:path';
import { loadGpt2Checkpoint } from './gpt2Checkpoint.ts';
import type { LoadedCheckpoint } from './gpt2Checkpoint.ts';
import { downloadGpt2Snapshot } from './hubSnapshot.ts';
import type { HubOptions } from './hubSnapshot.ts';
import type { FileAccess } from './modelFiles.ts';
import { officialModel, resolveModelName } from './modelNames.ts';

async function isDirectory(p: string): Promise<boolean> {
  try {
    return (await stat(p)).isDirectory();
  } catch {
    return false;
  }
}

/** Strings that can only mean a filesystem path, never a model name or repo id. */
function looksLikePath(s: string): boolean {
  return isAbsolute(s) || s.startsWith('./') || s.startsWith('../') || s.startsWith('~') || s.includes('\\') || s === '.' || s === '..';
}

/**
 * An existing local directory is returned as is (resolved to an absolute path); otherwise the name is
 * resolved to a hub repo id (resolveModelName) and its snapshot directory is fetched into / found in the cache.
 */
export async function resolveModelDir(nameOrPath: string, opts: HubOptions = {}): Promise<string> {
  if (await isDirectory(nameOrPath)) return resolve(nameOrPath);
  if (looksLikePath(nameOrPath)) {
    throw new Error(`Model directory ${resolve(nameOrPath)} does not exist (expected a directory with config.json and model.safetensors)`);
  }
  return downloadGpt2Snapshot(resolveModelName(nameOrPath), opts);
}

/**
 * Load GPT-2 weights by official name (`gpt2`, `gpt2-small`, …), hub repo id or local directory.
 * cfg.model_name is the official name when there is one (as TransformerLens names it), else the repo id or directory name.
 */
export async function loadGpt2(nameOrPath: string, opts: HubOptions & FileAccess = {}): Promise<LoadedCheckpoint> {
  const dir = await resolveModelDir(nameOrPath, opts);
  const official = (await isDirectory(nameOrPath)) ? undefined : officialModel(nameOrPath);
  return loadGpt2Checkpoint(dir, { ...(official ? { modelName: official.name } : {}), allowedRoots: opts.allowedRoots });
}
