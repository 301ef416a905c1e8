/**
 * Fetch a GPT-2 repo's files (config.json, model.safetensors or its index + shards, optional tokenizer
 * files) into the Hugging Face cache and return the snapshot directory. A file already in the snapshot of
 * the cached commit costs no request; offline (HF_HUB_OFFLINE=1 or localFilesOnly) only the cache is read.
 */
import { mkdir, rename } from 'node:fs/promises';
import { join } from 'node:path';
import { readShardIndex } from './gpt2Checkpoint.ts';
import { assertGpt2Architecture } from './hfConfig.ts';
import {
  COMMIT_HASH,
  blobPath,
  cachedFile,
  hubCacheDir,
  isMarkedMissing,
  linkSnapshotFile,
  markMissing,
  readRef,
  repoCacheDir,
  snapshotDir,
  writeRef,
} from './hfCache.ts';
import { downloadToFile, headFile } from './hubHttp.ts';
import type { HubFileMetadata, HubHttpOptions } from './hubHttp.ts';
import { defaultProgress } from './progress.ts';
import type { ProgressCallback, ProgressEvent } from './progress.ts';
import { readJsonFile } from './modelFiles.ts';
import { isFile } from './safetensors.ts';

export interface HubOptions {
  /** Branch, tag or commit hash (default "main"). */
  revision?: string;
  /** Cache root (default $HF_HUB_CACHE, $HF_HOME/hub or ~/.cache/huggingface/hub). */
  cacheDir?: string;
  /** Use only the cache (also when HF_HUB_OFFLINE=1). */
  localFilesOnly?: boolean;
  /** Hugging Face token (default $HF_TOKEN), sent as `Authorization: Bearer`. */
  token?: string;
  /** Progress events; without it, a one-line bar is drawn on stderr when stderr is a terminal. */
  onProgress?: ProgressCallback;
  /** Hub URL (default $HF_ENDPOINT or https://huggingface.co). */
  endpoint?: string;
  /** Ask the hub which commit the revision points to now, instead of trusting refs/{revision} in the cache. */
  checkForUpdates?: boolean;
  /** How many times a download cut off mid-file is resumed within one load (default 3). */
  maxRetries?: number;
  /** fetch implementation (default: Node's global fetch). */
  fetch?: typeof fetch;
}

export const CONFIG_FILE = 'config.json';
export const WEIGHTS_FILE = 'model.safetensors';
export const WEIGHTS_INDEX_FILE = 'model.safetensors.index.json';
export const OPTIONAL_FILES = ['tokenizer.json', 'tokenizer_config.json', 'vocab.json', 'merges.txt', 'special_tokens_map.json'];

const DEFAULT_ENDPOINT = 'https://huggingface.co';

export function isOfflineEnv(): boolean {
  return ['1', 'ON', 'YES', 'TRUE'].includes((process.env.HF_HUB_OFFLINE ?? '').toUpperCase());
}

/** Everything one snapshot load needs, resolved once. */
interface Ctx {
  repo: string;
  revision: string;
  cacheDir: string;
  repoDir: string;
  offline: boolean;
  http: HubHttpOptions & { maxRetries: number };
  emit: (ev: ProgressEvent) => void;
  /** The commit being loaded, once known (from refs/ or the first response). */
  commit: string | null;
}

/** In-process de-duplication: one snapshot load per (cache, endpoint, repo, revision), one transfer per blob. */
const snapshotsInFlight = new Map<string, { promise: Promise<string>; listeners: Set<ProgressCallback> }>();
const blobsInFlight = new Map<string, Promise<void>>();

/**
 * Fetches one file of the snapshot being loaded: its snapshot path, or null for an optional file the
 * repo lacks (offline: one not in the cache). `offline` says whether only the cache is read.
 */
export interface FetchSnapshotFile {
  (file: string, required: boolean): Promise<string | null>;
  readonly offline: boolean;
}

export async function downloadGpt2Snapshot(repo: string, opts: HubOptions = {}): Promise<string> {
  return downloadSnapshot(repo, opts, 'gpt2', (fetch) => fetchGpt2Files(repo, opts.revision ?? 'main', fetch));
}

/**
 * The snapshot directory of `repo` at `opts.revision` with the files `fetchFiles` asks for (through
 * the cache, offline mode and progress events like a model's): e.g. an SAE's cfg.json and weights in
 * a subfolder. `what` names the set of files, so that loads of different files of one repo do not merge.
 */
export async function downloadSnapshot(repo: string, opts: HubOptions, what: string, fetchFiles: (fetch: FetchSnapshotFile) => Promise<void>): Promise<string> {
  const revision = opts.revision ?? 'main';
  const cacheDir = hubCacheDir(opts.cacheDir);
  const endpoint = (opts.endpoint ?? process.env.HF_ENDPOINT ?? DEFAULT_ENDPOINT).replace(/\/+$/, '');
  const key = JSON.stringify([cacheDir, endpoint, repo, revision, what]);
  const existing = snapshotsInFlight.get(key);
  if (existing) {
    if (opts.onProgress) existing.listeners.add(opts.onProgress);
    return existing.promise;
  }
  const listeners = new Set<ProgressCallback>();
  const first = defaultProgress(opts.onProgress);
  if (first) listeners.add(first);
  const ctx: Ctx = {
    repo,
    revision,
    cacheDir,
    repoDir: repoCacheDir(cacheDir, repo),
    offline: opts.localFilesOnly === true || isOfflineEnv(),
    http: { endpoint, token: opts.token || process.env.HF_TOKEN || undefined, fetch: opts.fetch, maxRetries: opts.maxRetries ?? 3 },
    emit: (ev) => {
      for (const l of listeners) l(ev);
    },
    commit: null,
  };
  const promise = loadSnapshot(ctx, opts.checkForUpdates === true, fetchFiles).finally(() => snapshotsInFlight.delete(key));
  snapshotsInFlight.set(key, { promise, listeners });
  return promise;
}

async function loadSnapshot(ctx: Ctx, checkForUpdates: boolean, fetchFiles: (fetch: FetchSnapshotFile) => Promise<void>): Promise<string> {
  const cached = await readRef(ctx.repoDir, ctx.revision);
  if (ctx.offline) {
    if (cached === null) {
      throw new Error(
        `Offline mode (HF_HUB_OFFLINE=1 or localFilesOnly): ${ctx.repo}@${ctx.revision} is not in the cache: ` +
          `no ${join(ctx.repoDir, 'refs', ctx.revision)} (cache: ${ctx.cacheDir})`,
      );
    }
    ctx.commit = cached;
  } else if (!checkForUpdates || COMMIT_HASH.test(ctx.revision)) {
    ctx.commit = cached;
  }
  await fetchFiles(Object.assign((file: string, required: boolean) => fetchFile(ctx, file, required), { offline: ctx.offline }));
  if (ctx.commit === null) throw new Error(`internal: no file of ${ctx.repo}@${ctx.revision} was fetched`);
  const dir = snapshotDir(ctx.repoDir, ctx.commit);
  ctx.emit({ status: 'ready', repo: ctx.repo, dir, commit: ctx.commit });
  return dir;
}

/** A GPT-2 checkpoint's files: config.json (its architecture checked first), the weights (single or sharded), the tokenizer's. */
async function fetchGpt2Files(repo: string, revision: string, fetch: FetchSnapshotFile): Promise<void> {
  const configPath = await fetch(CONFIG_FILE, true);
  // Check the architecture before fetching gigabytes of weights.
  const configJson = await readJsonFile(configPath!);
  if (typeof configJson !== 'object' || configJson === null) throw new Error(`${configPath} is not a JSON object`);
  assertGpt2Architecture(configJson as Record<string, unknown>, repo);

  const single = await fetch(WEIGHTS_FILE, false);
  if (single === null) {
    const indexPath = await fetch(WEIGHTS_INDEX_FILE, false);
    if (indexPath === null && fetch.offline) await fetch(WEIGHTS_FILE, true); // throws: not in the cache
    if (indexPath === null) {
      throw new Error(`${repo}@${revision} has neither ${WEIGHTS_FILE} nor ${WEIGHTS_INDEX_FILE}; only safetensors checkpoints are supported`);
    }
    for (const shard of await shardFiles(indexPath)) await fetch(shard, true);
  }
  for (const f of OPTIONAL_FILES) await fetch(f, false);
}

function offlineMissing(ctx: Ctx, file: string): Error {
  return new Error(
    `Offline mode (HF_HUB_OFFLINE=1 or localFilesOnly): ${file} of ${ctx.repo}@${ctx.revision} is not in the cache: ` +
      `expected ${join(snapshotDir(ctx.repoDir, ctx.commit!), file)} (cache: ${ctx.cacheDir})`,
  );
}

async function shardFiles(indexPath: string): Promise<string[]> {
  return (await readShardIndex(indexPath)).shards;
}

/**
 * One file of the snapshot: from the cache when the commit is known and the file (or its .no_exist marker)
 * is there; otherwise HEAD + download. Returns the snapshot path, or null for a file the repo lacks
 * (an error instead when `required`).
 */
async function fetchFile(ctx: Ctx, file: string, required: boolean): Promise<string | null> {
  const { repo } = ctx;
  ctx.emit({ status: 'initiate', repo, file });
  if (ctx.commit !== null) {
    const path = await cachedFile(ctx.repoDir, ctx.commit, file);
    if (path !== null) {
      ctx.emit({ status: 'done', repo, file, path, cached: true });
      return path;
    }
    // Optional files the repo lacks are remembered as .no_exist markers; offline, unknown ones count as absent.
    if (!required && (ctx.offline || (await isMarkedMissing(ctx.repoDir, ctx.commit, file)))) {
      ctx.emit({ status: 'done', repo, file, path: null, cached: true });
      return null;
    }
    if (ctx.offline) throw offlineMissing(ctx, file);
  }

  const meta = await headFile(repo, ctx.commit ?? ctx.revision, file, ctx.http);
  if (meta === null) {
    if (file === CONFIG_FILE) {
      throw new Error(`${repo}@${ctx.revision}: ${CONFIG_FILE} not found (HTTP 404): the repo or revision does not exist, or it is not a transformers model`);
    }
    if (ctx.commit !== null) await markMissing(ctx.repoDir, ctx.commit, file);
    if (required) throw new Error(`${file} not found in ${repo}@${ctx.revision} (HTTP 404)`);
    ctx.emit({ status: 'done', repo, file, path: null, cached: false });
    return null;
  }
  if (ctx.commit === null) ctx.commit = meta.commit;
  else if (meta.commit !== ctx.commit) {
    throw new Error(`${repo}: ${file} came from commit ${meta.commit} but the snapshot being loaded is ${ctx.commit}`);
  }
  await writeRef(ctx.repoDir, ctx.revision, ctx.commit);

  const blob = blobPath(ctx.repoDir, meta.etag);
  let fresh = false;
  if (!(await isFile(blob))) {
    let transfer = blobsInFlight.get(blob);
    if (!transfer) {
      transfer = downloadBlob(ctx, file, meta, blob).finally(() => blobsInFlight.delete(blob));
      blobsInFlight.set(blob, transfer);
    }
    await transfer;
    fresh = true;
  }
  const path = await linkSnapshotFile(ctx.repoDir, ctx.commit, file, meta.etag);
  ctx.emit({ status: 'done', repo, file, path, cached: !fresh });
  return path;
}

async function downloadBlob(ctx: Ctx, file: string, meta: HubFileMetadata, blob: string): Promise<void> {
  await mkdir(join(ctx.repoDir, 'blobs'), { recursive: true });
  const incomplete = `${blob}.incomplete`;
  let started = 0;
  let startBytes = 0;
  let lastEmit = 0;
  await downloadToFile(meta, incomplete, `${file} of ${ctx.repo}`, ctx.http, {
    onStart: (resumeFrom, total) => {
      started = Date.now();
      startBytes = resumeFrom;
      ctx.emit({ status: 'download', repo: ctx.repo, file, total, resumeFrom });
    },
    onBytes: (loaded, total) => {
      const now = Date.now();
      if (now - lastEmit < 50 && loaded !== total) return; // at most ~20 events/s, always the last one
      lastEmit = now;
      const seconds = Math.max(1e-3, (Date.now() - started) / 1000);
      const rate = (loaded - startBytes) / seconds;
      const eta = total !== null && rate > 0 ? (total - loaded) / rate : null;
      ctx.emit({ status: 'progress', repo: ctx.repo, file, loaded, total, rate, eta });
    },
  });
  await rename(incomplete, blob);
}
