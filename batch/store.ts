/**
 * An experiment's output directory. experiment.json names what it holds (its fingerprint); shards/NNNNNN.json are
 * the shards' results, each accepted once (written to a temporary file, then hard-linked into place, which fails
 * when the shard is already there); status.json is the progress the dashboard reads. A run resumes from the shards
 * present; a directory holding another experiment is refused.
 */
import { randomUUID } from 'node:crypto';
import { link, mkdir, readdir, readFile, rename, unlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { UsageError } from '../cli/errors.ts';
import { FORMAT_VERSION, type PreparedExperiment } from './experiment.ts';

/** What a shard file holds: the analysis result of each of its items, in item order. */
export interface ShardFile {
  v: number;
  fingerprint: string;
  shard: number;
  start: number;
  results: unknown[];
}

export interface RunStatus {
  name: string;
  analysis: string;
  dataset: string;
  model: string;
  /** running; waiting (for Redis to come back); done; failed (message says why). */
  state: 'running' | 'waiting' | 'done' | 'failed';
  mode: 'local' | 'distributed';
  items: number;
  itemsDone: number;
  shards: number;
  shardsDone: number;
  /** Items per second in this run so far (null before the first item). */
  ratePerS: number | null;
  etaS: number | null;
  startedAt: string;
  updatedAt: string;
  message?: string;
  /** Distributed runs: shards accepted per worker. */
  workers?: Record<string, number>;
}

const shardName = (i: number) => `${String(i).padStart(6, '0')}.json`;

/** Writes `content` to `path` through a temporary file and a rename (readers never see half a file). */
export async function writeFileAtomic(path: string, content: string | Buffer): Promise<void> {
  const tmp = `${path}.${process.pid}.${randomUUID().slice(0, 8)}.tmp`;
  await writeFile(tmp, content);
  try {
    await rename(tmp, path);
  } catch (e) {
    await unlink(tmp).catch(() => {});
    throw e;
  }
}

export class ExperimentStore {
  private constructor(
    readonly dir: string,
    readonly prepared: PreparedExperiment,
    private readonly accepted: Set<number>,
  ) {}

  /** Opens (or starts) the directory for `prepared`; the shards already there count as done. */
  static async open(dir: string, prepared: PreparedExperiment): Promise<ExperimentStore> {
    const { spec, fingerprint, items, shards } = prepared;
    await mkdir(dir, { recursive: true });
    const manifest = join(dir, 'experiment.json');
    let existing: { fingerprint?: string; name?: string } | null = null;
    try {
      existing = JSON.parse(await readFile(manifest, 'utf8'));
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw new UsageError(`--out: '${manifest}' is unreadable: ${(e as Error).message}`);
    }
    if (existing === null) {
      const entries = (await readdir(dir)).filter((f) => !f.startsWith('.'));
      if (entries.length > 0) throw new UsageError(`--out: '${dir}' is not empty and holds no experiment.json; give a new or empty directory`);
      await mkdir(join(dir, 'shards'), { recursive: true });
      const m = { format: FORMAT_VERSION, fingerprint, ...spec, items: items.length, shards: shards.length };
      await writeFileAtomic(manifest, `${JSON.stringify(m, null, 2)}\n`);
    } else if (existing.fingerprint !== fingerprint) {
      throw new UsageError(
        `--out: '${dir}' holds another experiment ('${existing.name}', fingerprint ${String(existing.fingerprint).slice(0, 12)}; this one is ${fingerprint.slice(0, 12)}): ` +
          'its model, analysis, shard size or items differ. Give another --out, or delete the directory to start over',
      );
    }
    await mkdir(join(dir, 'shards'), { recursive: true });
    const done = new Set<number>();
    for (const f of await readdir(join(dir, 'shards'))) {
      const m = /^(\d{6})\.json$/.exec(f);
      if (m && Number(m[1]) < shards.length) done.add(Number(m[1]));
    }
    return new ExperimentStore(dir, prepared, done);
  }

  get done(): ReadonlySet<number> {
    return this.accepted;
  }

  get complete(): boolean {
    return this.accepted.size === this.prepared.shards.length;
  }

  /** Items in accepted shards. */
  get itemsDone(): number {
    let n = 0;
    for (const i of this.accepted) n += this.prepared.shards[i].end - this.prepared.shards[i].start;
    return n;
  }

  pending() {
    return this.prepared.shards.filter((s) => !this.accepted.has(s.index));
  }

  /** Checks that `text` is this experiment's result of shard `index`; returns it parsed. */
  private check(index: number, text: string): ShardFile {
    const s = this.prepared.shards[index];
    let f: ShardFile;
    try {
      f = JSON.parse(text);
    } catch (e) {
      throw new Error(`shard ${index}: the result is not JSON: ${(e as Error).message}`);
    }
    if (!s || f.v !== FORMAT_VERSION || f.fingerprint !== this.prepared.fingerprint || f.shard !== index || f.start !== s.start
      || !Array.isArray(f.results) || f.results.length !== s.end - s.start) {
      throw new Error(`shard ${index}: the result is not this experiment's (format ${f.v}, fingerprint ${String(f.fingerprint).slice(0, 12)}, shard ${f.shard}, ${f.results?.length} results)`);
    }
    return f;
  }

  /**
   * Accepts shard `index`'s result text once: true when it was written now, false when the shard was already there
   * (a repeated result is ignored, so no shard is ever counted twice).
   */
  async accept(index: number, text: string): Promise<boolean> {
    this.check(index, text);
    if (this.accepted.has(index)) return false;
    const path = join(this.dir, 'shards', shardName(index));
    const tmp = `${path}.${process.pid}.${randomUUID().slice(0, 8)}.tmp`;
    await writeFile(tmp, text);
    try {
      await link(tmp, path);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
      this.accepted.add(index);
      return false;
    } finally {
      await unlink(tmp).catch(() => {});
    }
    this.accepted.add(index);
    return true;
  }

  async readShard(index: number): Promise<ShardFile> {
    return this.check(index, await readFile(join(this.dir, 'shards', shardName(index)), 'utf8'));
  }

  async writeStatus(s: RunStatus): Promise<void> {
    await writeFileAtomic(join(this.dir, 'status.json'), `${JSON.stringify(s, null, 2)}\n`);
  }
}
