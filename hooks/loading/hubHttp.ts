/**
 * HTTP against the Hugging Face hub's `{endpoint}/{repo}/resolve/{revision}/{file}` URLs: a HEAD for the
 * file's metadata (X-Repo-Commit, X-Linked-Etag / ETag, X-Linked-Size / Content-Length, Location), then a
 * resumable GET into `blobs/{etag}.incomplete`.
 *
 * Why not @huggingface/hub's downloadFileToCacheDir: it asks the JSON paths-info API instead of the resolve
 * URL's headers (so plain mirrors behind HF_ENDPOINT that only serve /resolve/ do not work), never writes
 * refs/{revision}, does not resume an interrupted .incomplete file with a Range request, reports no
 * progress, and keeps no .no_exist markers. So this part is written on Node's fetch; the cache-path
 * helpers of @huggingface/hub are used (hfCache.ts).
 */
import { open, stat, truncate } from 'node:fs/promises';

export interface HubHttpOptions {
  endpoint: string;
  token?: string;
  fetch?: typeof fetch;
}

export interface HubFileMetadata {
  commit: string;
  etag: string;
  /** Size in bytes (X-Linked-Size for LFS files), null if the server did not say. */
  size: number | null;
  /** Where to GET the bytes: the resolve URL, or the CDN URL it redirects to. */
  location: string;
}

/** An HTTP failure with the hub's error code (X-Error-Code: RepoNotFound, RevisionNotFound, EntryNotFound, GatedRepo…). */
export class HubHttpError extends Error {
  constructor(
    message: string,
    readonly status: number,
    readonly errorCode: string | null,
  ) {
    super(message);
    this.name = 'HubHttpError';
  }
}

const MAX_REDIRECTS = 10;

export function resolveUrl(endpoint: string, repo: string, revision: string, file: string): string {
  const path = file.split('/').map(encodeURIComponent).join('/');
  return `${endpoint.replace(/\/+$/, '')}/${repo}/resolve/${encodeURIComponent(revision)}/${path}`;
}

function authHeaders(opts: HubHttpOptions, url: string): Record<string, string> {
  // The token goes only to the hub itself, never to a CDN on another origin.
  if (!opts.token || new URL(url).origin !== new URL(opts.endpoint).origin) return {};
  return { Authorization: `Bearer ${opts.token}` };
}

/** Strip a weak-validator prefix and the quotes: `W/"abc"` → `abc`. */
function normalizeEtag(etag: string | null): string | null {
  if (etag === null) return null;
  return etag.replace(/^W\//, '').replace(/^"|"$/g, '');
}

function describeFailure(res: Response, what: string, repo: string, revision: string): HubHttpError {
  const code = res.headers.get('x-error-code');
  const msg = res.headers.get('x-error-message');
  const detail = msg ? ` (${msg})` : '';
  if (code === 'RepoNotFound') {
    // The hub answers 401 rather than 404 for a missing repo when no token is sent: it may also be private.
    return new HubHttpError(
      `Repository ${repo} does not exist on the hub (HTTP ${res.status}${detail}); if it is private, set HF_TOKEN (or pass token)`,
      res.status,
      code,
    );
  }
  if (code === 'RevisionNotFound') {
    return new HubHttpError(`Revision '${revision}' does not exist in ${repo} (HTTP ${res.status}${detail})`, res.status, code);
  }
  if (res.status === 401 || res.status === 403) {
    return new HubHttpError(
      `Access denied (HTTP ${res.status}) to ${what} in ${repo}: the repo is gated or private${detail}. ` +
        `Set HF_TOKEN (or pass token) with a Hugging Face token that has access, after accepting the repo's terms if gated.`,
      res.status,
      code,
    );
  }
  return new HubHttpError(`HTTP ${res.status} ${res.statusText} for ${what} in ${repo}@${revision}${detail}`, res.status, code);
}

async function request(
  url: string,
  method: 'HEAD' | 'GET',
  opts: HubHttpOptions,
  extra: Record<string, string> = {},
): Promise<Response> {
  const f = opts.fetch ?? fetch;
  try {
    return await f(url, { method, redirect: 'manual', headers: { 'Accept-Encoding': 'identity', ...authHeaders(opts, url), ...extra } });
  } catch (err) {
    throw new Error(`Cannot reach ${url}: ${(err as Error).message}${(err as { cause?: Error }).cause ? ` (${(err as { cause: Error }).cause.message})` : ''}`);
  }
}

/**
 * HEAD the resolve URL: follow same-host (relative) redirects, as for a renamed repo, but stop at a redirect
 * to another host (the CDN) and read the metadata from that response. null when the file does not exist.
 */
export async function headFile(repo: string, revision: string, file: string, opts: HubHttpOptions): Promise<HubFileMetadata | null> {
  let url = resolveUrl(opts.endpoint, repo, revision, file);
  for (let i = 0; i <= MAX_REDIRECTS; i++) {
    const res = await request(url, 'HEAD', opts);
    const location = res.headers.get('location');
    if (res.status >= 300 && res.status < 400 && location) {
      const target = new URL(location, url).href;
      const relativeRedirect = !/^[a-z][a-z0-9+.-]*:/i.test(location) && !location.startsWith('//');
      if (!relativeRedirect) return metadataFrom(res, target, file, repo);
      url = target;
      continue;
    }
    if (res.status === 404 && (res.headers.get('x-error-code') ?? 'EntryNotFound') === 'EntryNotFound') return null;
    if (!res.ok) throw describeFailure(res, file, repo, revision);
    return metadataFrom(res, url, file, repo);
  }
  throw new Error(`Too many redirects for ${file} in ${repo}`);
}

function metadataFrom(res: Response, location: string, file: string, repo: string): HubFileMetadata {
  const commit = res.headers.get('x-repo-commit');
  const etag = normalizeEtag(res.headers.get('x-linked-etag') ?? res.headers.get('etag'));
  if (!commit || !etag) {
    throw new Error(
      `The server did not send ${!commit ? 'X-Repo-Commit' : 'an ETag'} for ${file} in ${repo}; ` +
        `is HF_ENDPOINT a Hugging Face hub (or a mirror of its /resolve/ API)?`,
    );
  }
  const sizeHeader = res.headers.get('x-linked-size') ?? res.headers.get('content-length');
  const size = sizeHeader !== null && /^\d+$/.test(sizeHeader) ? Number(sizeHeader) : null;
  return { commit, etag, size, location };
}

/** GET with manual redirects, so that the Authorization header is dropped when leaving the hub's origin. */
async function getFollowing(url: string, opts: HubHttpOptions, extra: Record<string, string>): Promise<Response> {
  for (let i = 0; i <= MAX_REDIRECTS; i++) {
    const res = await request(url, 'GET', opts, extra);
    const location = res.headers.get('location');
    if (res.status >= 300 && res.status < 400 && location) {
      await res.body?.cancel();
      url = new URL(location, url).href;
      continue;
    }
    return res;
  }
  throw new Error(`Too many redirects fetching ${url}`);
}

export interface DownloadProgress {
  /** Called once per transfer attempt, before any bytes. */
  onStart(resumeFrom: number, total: number | null): void;
  /** Bytes now in the .incomplete file. */
  onBytes(loaded: number, total: number | null): void;
}

async function fileSize(path: string): Promise<number> {
  try {
    return (await stat(path)).size;
  } catch {
    return 0;
  }
}

/**
 * Download `meta.location` into `incompletePath`, resuming from its current size with `Range: bytes=N-`.
 * A transfer cut off mid-body is retried (resuming) up to `maxRetries` times; after that the error says the
 * partial file is kept and a new load resumes it.
 */
export async function downloadToFile(
  meta: HubFileMetadata,
  incompletePath: string,
  label: string,
  opts: HubHttpOptions & { maxRetries: number },
  progress: DownloadProgress,
): Promise<void> {
  const total = meta.size;
  for (let attempt = 0; ; attempt++) {
    let have = await fileSize(incompletePath);
    if (total !== null && have > total) {
      await truncate(incompletePath, 0);
      have = 0;
    }
    if (total !== null && have === total && total > 0) return;
    const res = await getFollowing(meta.location, opts, have > 0 ? { Range: `bytes=${have}-` } : {});
    if (res.status === 416 && have > 0) {
      // The partial file does not fit the server's copy: start over.
      await truncate(incompletePath, 0);
      if (attempt < opts.maxRetries) continue;
    }
    if (res.status === 401 || res.status === 403 || !res.ok || !res.body) {
      throw new HubHttpError(`HTTP ${res.status} ${res.statusText} downloading ${label} from ${meta.location}`, res.status, res.headers.get('x-error-code'));
    }
    let position = have;
    if (res.status === 206) {
      const start = /^bytes (\d+)-/.exec(res.headers.get('content-range') ?? '')?.[1];
      if (start === undefined || Number(start) !== have) {
        await res.body.cancel();
        throw new Error(`Server answered the range request for ${label} with Content-Range '${res.headers.get('content-range')}', expected bytes ${have}-`);
      }
    } else {
      position = 0; // a plain 200: the server ignored Range; rewrite from the start
    }
    progress.onStart(position, total);
    const fh = await open(incompletePath, position === 0 ? 'w' : 'r+');
    try {
      for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
        await fh.write(chunk, 0, chunk.length, position);
        position += chunk.length;
        progress.onBytes(position, total);
      }
    } catch (err) {
      await fh.close();
      if (attempt < opts.maxRetries) continue;
      throw new Error(
        `Download of ${label} was interrupted after ${position} of ${total ?? '?'} bytes (${(err as Error).message}); ` +
          `the partial file ${incompletePath} is kept and the next load resumes it`,
      );
    }
    await fh.close();
    if (total !== null && position !== total) {
      if (position < total && attempt < opts.maxRetries) continue;
      throw new Error(`Download of ${label} ended at ${position} bytes, expected ${total} (partial file kept at ${incompletePath})`);
    }
    return;
  }
}
