/**
 * The shard queue on Redis (BullMQ): connection settings (URL, password, TLS, key prefix), the check made before
 * anything is queued (reachable, password accepted, version new enough: each a clear error), and the job's shape.
 */
import { readFileSync } from 'node:fs';
import type { RedisOptions as BullRedisOptions } from 'bullmq';
import { Redis, type RedisOptions } from 'ioredis';
import { UsageError } from '../cli/errors.ts';
import type { ShardTask } from './runShard.ts';
import { BatchError } from './errors.ts';

/** One queue for every experiment; a job id starts with its experiment's fingerprint. */
export const QUEUE_NAME = 'shards';
export const DEFAULT_PREFIX = 'lensboard';
/** BullMQ needs Redis 5 and recommends 6.2 (it warns below); Debian 12 ships 7.0. */
export const MIN_REDIS_VERSION = '6.2.0';

export interface RedisSettings {
  /** redis://[user:password@]host:port[/db] or rediss://… (TLS). */
  url: string;
  /** BullMQ's key prefix: every key is `${prefix}:shards:…` (default lensboard). */
  prefix: string;
  /** Overrides the URL's password (from LENSBOARD_REDIS_PASSWORD, so it stays out of the process list). */
  password?: string;
  /** A PEM file of the CA that signed the server's certificate (implies TLS). */
  tlsCa?: string;
}

/** What a worker returns for a shard (BullMQ stores it as the job's return value). */
export interface ShardReturn {
  /** The shard file's text (runShard's output). */
  text: string;
  /** Compute time of the shard on the worker (ms), and who ran it. */
  ms: number;
  worker: string;
}

export type ShardJobData = ShardTask;

/** The job id of shard `index` of an experiment: unique per experiment, so adding it twice adds it once. */
export function shardJobId(fingerprint: string, index: number): string {
  return `${fingerprint.slice(0, 32)}-${index}`;
}

/** The shard index of one of this experiment's job ids (null for another experiment's). */
export function shardOfJobId(fingerprint: string, jobId: string | undefined): number | null {
  const prefix = `${fingerprint.slice(0, 32)}-`;
  if (!jobId?.startsWith(prefix)) return null;
  const n = Number(jobId.slice(prefix.length));
  return Number.isInteger(n) && n >= 0 ? n : null;
}

/** The URL without its password, for messages. */
export function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = '***';
    return u.toString().replace(/\/$/, '');
  } catch {
    return url.replace(/\/\/[^@/]*@/, '//***@');
  }
}

/** Checks the settings' form (a bad URL or an unreadable CA file is a usage error). */
export function validateSettings(s: RedisSettings): void {
  let u: URL;
  try {
    u = new URL(s.url);
  } catch {
    throw new UsageError(`--redis: '${redactUrl(s.url)}' is not a URL; write it as redis://HOST:PORT (or rediss:// for TLS, redis://:PASSWORD@HOST:PORT/DB)`);
  }
  if (u.protocol !== 'redis:' && u.protocol !== 'rediss:') throw new UsageError(`--redis: the URL must start with redis:// or rediss:// (TLS); got ${u.protocol}//`);
  if (!/^[\w.-]{1,64}$/.test(s.prefix)) throw new UsageError(`--prefix: '${s.prefix}' must be 1..64 letters, digits, _ . or -`);
  if (s.tlsCa !== undefined) {
    try {
      readFileSync(s.tlsCa);
    } catch (e) {
      throw new UsageError(`--tls-ca: cannot read '${s.tlsCa}': ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
    }
  }
}

/**
 * ioredis options for BullMQ's connections: reconnect for ever (a Redis restart is waited out), at most every 2 s;
 * commands wait while disconnected (BullMQ needs maxRetriesPerRequest null).
 */
export function connectionOptions(s: RedisSettings): BullRedisOptions & { url: string } {
  const tls = s.tlsCa !== undefined ? { ca: readFileSync(s.tlsCa) } : s.url.startsWith('rediss:') ? {} : undefined;
  return {
    url: s.url,
    ...(s.password !== undefined ? { password: s.password } : {}),
    ...(tls ? { tls } : {}),
    maxRetriesPerRequest: null,
    connectTimeout: 5000,
    retryStrategy: (times: number) => Math.min(250 * times, 2000),
  };
}

/** A plain client for the settings (the submitter's health monitor; the check below). */
export function redisClient(s: RedisSettings, extra: RedisOptions = {}): Redis {
  const { url, ...opts } = connectionOptions(s);
  return new Redis(url, { ...(opts as RedisOptions), ...extra });
}

/** "7.0.15" ≥ "6.2.0" */
export function versionAtLeast(version: string, min: string): boolean {
  const a = version.split('.').map((x) => Number.parseInt(x, 10) || 0);
  const b = min.split('.').map((x) => Number.parseInt(x, 10) || 0);
  for (let i = 0; i < Math.max(a.length, b.length); i++) {
    if ((a[i] ?? 0) !== (b[i] ?? 0)) return (a[i] ?? 0) > (b[i] ?? 0);
  }
  return true;
}

/** Redis cannot be used: unreachable, the password refused, or too old. */
export class RedisUnavailable extends BatchError {}

/** Connects once (no retries) and reads the server's version: returns it, or throws RedisUnavailable saying what is wrong. */
export async function checkRedis(s: RedisSettings): Promise<string> {
  const where = redactUrl(s.url);
  const client = redisClient(s, { lazyConnect: true, retryStrategy: () => null, maxRetriesPerRequest: 0, enableReadyCheck: false, enableOfflineQueue: false });
  let lastError: NodeJS.ErrnoException | null = null; // the socket's error (connect() itself only says the connection closed)
  client.on('error', (e: NodeJS.ErrnoException) => (lastError = e));
  const refused = (msg: string) => /NOAUTH|WRONGPASS|invalid password|invalid username-password/i.test(msg);
  const credentials = (msg: string) => new RedisUnavailable(
    `Redis at ${where} refused the connection's credentials (${msg}): give the password in the URL (redis://:PASSWORD@HOST:PORT) or in LENSBOARD_REDIS_PASSWORD`,
  );
  try {
    try {
      await client.connect();
    } catch (e) {
      const err = lastError ?? (e as NodeJS.ErrnoException);
      if (refused(err.message)) throw credentials(err.message);
      throw new RedisUnavailable(`cannot reach Redis at ${where} (${err.code ?? err.message}): is redis-server running there and reachable from this machine? See the README's "Distributed runs"`);
    }
    let info: string;
    try {
      info = await client.info('server');
    } catch (e) {
      const msg = (e as Error).message;
      if (refused(msg)) throw credentials(msg);
      throw new RedisUnavailable(`Redis at ${where} did not answer INFO: ${msg}`);
    }
    const version = /redis_version:([\d.]+)/.exec(info)?.[1];
    if (!version) throw new RedisUnavailable(`the server at ${where} does not say which Redis version it is (no redis_version in INFO)`);
    if (!versionAtLeast(version, MIN_REDIS_VERSION)) {
      throw new RedisUnavailable(`Redis at ${where} is version ${version}; Lensboard's queue (BullMQ) needs Redis ${MIN_REDIS_VERSION} or newer (Debian 12 ships 7.0)`);
    }
    return version;
  } finally {
    client.disconnect();
  }
}

/**
 * Watches the connection to Redis with a client of its own: `onDown(reason)` once when it is lost, `onUp()` once when
 * it is back. Returns the stop function.
 */
export function watchRedis(s: RedisSettings, onDown: (reason: string) => void, onUp: () => void): () => void {
  const client = redisClient(s);
  let down = false;
  client.on('error', (e: NodeJS.ErrnoException) => {
    if (down) return;
    down = true;
    onDown(e.code ?? e.message);
  });
  client.on('ready', () => {
    if (!down) return;
    down = false;
    onUp();
  });
  return () => client.disconnect();
}
