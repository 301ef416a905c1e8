/**
 * A requested model name → where it loads from, never an arbitrary path: a directory inside a configured model
 * root (no absolute paths, no `..`, and its real path — symlinks resolved — must stay inside a root), else a hub
 * repo id matching the hub's pattern or an official GPT-2 name (loaded through the HF cache).
 */
import { existsSync } from 'node:fs';
import { lstat, mkdir, realpath, stat } from 'node:fs/promises';
import { isAbsolute, join, sep } from 'node:path';
import { hubCacheDir, repoCacheDir } from '../../hooks/loading/hfCache.ts';
import { isHubRepoId, knownModelNames, officialModel, resolveModelName } from '../../hooks/loading/modelNames.ts';
import { badRequest, notFound } from '../errors.ts';
import type { ModelSource } from './protocol.ts';

/** The model roots as real paths (created if missing for the package's own models/; others must exist). */
export async function resolveRoots(packageModels: string, extra: readonly string[]): Promise<string[]> {
  await mkdir(packageModels, { recursive: true });
  const out: string[] = [];
  for (const r of [packageModels, ...extra]) {
    let real: string;
    try {
      real = await realpath(r);
    } catch {
      throw new Error(`model root ${r} does not exist (--models-dir / LENSBOARD_MODELS_DIR must name existing directories)`);
    }
    if (!(await stat(real)).isDirectory()) throw new Error(`model root ${r} is not a directory`);
    if (!out.includes(real)) out.push(real);
  }
  return out;
}

export function isInside(root: string, p: string): boolean {
  return p === root || p.startsWith(root.endsWith(sep) ? root : root + sep);
}

/** Throws a 400 naming the problem when `name` could be read as a path outside the roots. */
export function checkNameShape(name: string): void {
  const reasons: string[] = [];
  if (name.length === 0 || name.length > 200) reasons.push('it must be 1..200 characters');
  if (/[\0-\x1f]/.test(name)) reasons.push('it contains control characters');
  if (isAbsolute(name) || /^[A-Za-z]:/.test(name) || name.startsWith('/')) reasons.push('absolute paths are not allowed');
  if (name.startsWith('~')) reasons.push("'~' paths are not allowed");
  if (name.includes('\\')) reasons.push('backslashes are not allowed');
  const segments = name.split('/');
  if (segments.some((s) => s === '..')) reasons.push("'..' segments are not allowed");
  else if (segments.some((s) => s === '.' || s === '')) reasons.push("empty and '.' segments are not allowed");
  if (reasons.length > 0) {
    throw badRequest(
      `name ${JSON.stringify(name)} is not allowed: ${reasons.join('; ')}. A model is a directory name under a model root or a hub repo id ("org/name")`,
      [{ path: 'name', message: reasons.join('; ') }],
    );
  }
}

/** A directory `name` inside one of the roots, by real path; null when no root has it. Escapes are 400s. */
export async function findInRoots(name: string, roots: readonly string[]): Promise<{ dir: string; root: string } | null> {
  checkNameShape(name);
  for (const root of roots) {
    const candidate = join(root, name);
    if (!isInside(root, candidate)) throw badRequest(`name ${JSON.stringify(name)} resolves outside the model roots`);
    try {
      await lstat(candidate);
    } catch {
      continue;
    }
    let real: string;
    try {
      real = await realpath(candidate);
    } catch {
      throw badRequest(`model directory ${JSON.stringify(name)} is a broken link`);
    }
    if (!roots.some((r) => isInside(r, real))) {
      throw badRequest(`model directory ${JSON.stringify(name)} is a link that escapes the model roots; only directories inside a model root load`);
    }
    if (!(await stat(real)).isDirectory()) throw badRequest(`${JSON.stringify(name)} under the model root is not a directory`);
    if (!existsSync(join(real, 'config.json'))) {
      throw badRequest(`${JSON.stringify(name)} under the model root is not a model directory (it has no config.json)`);
    }
    return { dir: real, root };
  }
  return null;
}

/** True when the hub repo has a cached snapshot with config.json (what an offline load needs). */
export function isHubCached(repo: string, cacheDir?: string): boolean {
  return existsSync(join(repoCacheDir(hubCacheDir(cacheDir), repo), 'refs', 'main'));
}

/** Resolves a requested model name to its source (400 for disallowed names, 404 for unknown ones). */
export async function resolveModelSource(
  name: string,
  roots: readonly string[],
  hub: { offline: boolean; cacheDir?: string },
): Promise<ModelSource> {
  const local = await findInRoots(name, roots);
  if (local) return { kind: 'dir', name, dir: local.dir, root: local.root };
  if (officialModel(name) || isHubRepoId(name)) {
    const repo = resolveModelName(name);
    if (hub.offline && !isHubCached(repo, hub.cacheDir)) {
      throw notFound(`model ${JSON.stringify(name)} (${repo}) is not in the Hugging Face cache and the server is offline`);
    }
    return { kind: 'hub', name, repo };
  }
  throw notFound(
    `no model ${JSON.stringify(name)}: it is not a directory under the model roots and not a hub repo id ("org/name") ` +
      `or an official name (${knownModelNames().join(', ')})`,
  );
}
