/**
 * The Hugging Face hub cache layout, shared with Python's huggingface_hub:
 *   {cache}/models--{org}--{name}/blobs/{etag}                 file contents (".incomplete" while downloading)
 *   {cache}/models--{org}--{name}/snapshots/{commit}/{file}    relative symlink → ../../blobs/{etag}
 *   {cache}/models--{org}--{name}/refs/{revision}              the commit hash a branch/tag last pointed to
 *   {cache}/models--{org}--{name}/.no_exist/{commit}/{file}    empty marker: the repo has no such file
 * Cache root: $HF_HUB_CACHE, else $HF_HOME/hub, else ~/.cache/huggingface/hub (via @huggingface/hub's
 * getHFHubCachePath, which reads the same variables as Python, legacy HUGGINGFACE_HUB_CACHE and XDG_CACHE_HOME too).
 */
import { copyFile, mkdir, readFile, rename, rm, stat, symlink, writeFile } from 'node:fs/promises';
import { dirname, join, relative } from 'node:path';
import { getHFHubCachePath, getRepoFolderName } from '@huggingface/hub';

export const COMMIT_HASH = /^[0-9a-f]{40}$/;

export function hubCacheDir(cacheDir?: string): string {
  return cacheDir ?? getHFHubCachePath();
}

/** {cache}/models--{org}--{name} */
export function repoCacheDir(cacheDir: string, repo: string): string {
  return join(cacheDir, getRepoFolderName({ name: repo, type: 'model' }));
}

export function snapshotDir(repoDir: string, commit: string): string {
  return join(repoDir, 'snapshots', commit);
}

export function blobPath(repoDir: string, etag: string): string {
  return join(repoDir, 'blobs', etag);
}

function noExistPath(repoDir: string, commit: string, file: string): string {
  return join(repoDir, '.no_exist', commit, file);
}

/** The commit a revision resolves to: itself if it is a commit hash, else refs/{revision}, else null. */
export async function readRef(repoDir: string, revision: string): Promise<string | null> {
  if (COMMIT_HASH.test(revision)) return revision;
  try {
    const commit = (await readFile(join(repoDir, 'refs', revision), 'utf8')).trim();
    return COMMIT_HASH.test(commit) ? commit : null;
  } catch {
    return null;
  }
}

export async function writeRef(repoDir: string, revision: string, commit: string): Promise<void> {
  if (revision === commit) return;
  const path = join(repoDir, 'refs', revision);
  const current = await readFile(path, 'utf8').catch(() => null);
  if (current?.trim() === commit) return;
  await mkdir(dirname(path), { recursive: true });
  await writeFile(path, commit);
}

/** The snapshot path of `file` if it exists (following the symlink to its blob), else null. */
export async function cachedFile(repoDir: string, commit: string, file: string): Promise<string | null> {
  const p = join(snapshotDir(repoDir, commit), file);
  try {
    return (await stat(p)).isFile() ? p : null;
  } catch {
    return null;
  }
}

export async function isMarkedMissing(repoDir: string, commit: string, file: string): Promise<boolean> {
  try {
    return (await stat(noExistPath(repoDir, commit, file))).isFile();
  } catch {
    return false;
  }
}

export async function markMissing(repoDir: string, commit: string, file: string): Promise<void> {
  const p = noExistPath(repoDir, commit, file);
  await mkdir(dirname(p), { recursive: true });
  await writeFile(p, '');
}

/** snapshots/{commit}/{file} → relative symlink to blobs/{etag} (a copy where symlinks are not allowed). */
export async function linkSnapshotFile(repoDir: string, commit: string, file: string, etag: string): Promise<string> {
  const pointer = join(snapshotDir(repoDir, commit), file);
  const blob = blobPath(repoDir, etag);
  await mkdir(dirname(pointer), { recursive: true });
  // Made under a temporary name and renamed over the pointer (atomic), so a concurrent load of the
  // same commit never sees the file missing.
  const temp = `${pointer}.${process.pid}.${Math.random().toString(36).slice(2)}.tmp`;
  try {
    await symlink(relative(dirname(pointer), blob), temp);
  } catch {
    await copyFile(blob, temp);
  }
  try {
    await rename(temp, pointer);
  } catch (err) {
    await rm(temp, { force: true });
    throw err;
  }
  return pointer;
}
