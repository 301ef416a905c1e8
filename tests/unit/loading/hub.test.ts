/**
 * Hub downloads against a fake hub (HF_ENDPOINT) into a temporary HF_HOME: the Hugging Face cache layout,
 * cache hits without requests, offline mode, resumed downloads, de-duplication, auth and 404 errors, progress.
 */
import { lstat, mkdir, mkdtemp, readFile, readdir, readlink, rm, stat, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { gpt2Config, randomWeights } from '../../../hooks/init.ts';
import { loadGpt2Checkpoint } from '../../../hooks/loading/gpt2Checkpoint.ts';
import { loadGpt2, resolveModelDir } from '../../../hooks/loading/resolveModelDir.ts';
import type { ProgressEvent } from '../../../hooks/loading/progress.ts';
import { writeHfCheckpoint } from '../../helpers/checkpoints.ts';
import { FakeHub } from '../../helpers/fakeHub.ts';
import { firstMismatch, refF16, refRound } from './reference.ts';

const cfg = gpt2Config({ n_layers: 2, d_model: 16, n_heads: 4, d_vocab: 50, n_ctx: 8 });
const weights = randomWeights(cfg, { seed: 5, randomAffine: true });
const weights2 = randomWeights(cfg, { seed: 6, randomAffine: true });
const REPO = 'test-org/tiny-gpt2';
const TOKENIZER = { 'tokenizer.json': '{"model":{"type":"BPE"}}', 'vocab.json': '{"a":0}' }; // merges.txt etc. absent

let hub: FakeHub;
let work: string;
/** Files of the tiny checkpoints, as the hub serves them. */
let files: Record<string, Buffer>;
let files2: Record<string, Buffer>;
let shardedFiles: Record<string, Buffer>;

async function checkpointFiles(dir: string): Promise<Record<string, Buffer>> {
  const out: Record<string, Buffer> = {};
  for (const f of await readdir(dir)) out[f] = await readFile(join(dir, f));
  return out;
}

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'lensboard-hub-'));
  await writeHfCheckpoint(join(work, 'src1'), cfg, weights, { dtype: 'F32', prefix: true, buffers: true, lmHead: true });
  await writeHfCheckpoint(join(work, 'src2'), cfg, weights2, { dtype: 'F32', prefix: true, buffers: false, lmHead: false });
  await writeHfCheckpoint(join(work, 'src3'), cfg, weights, { dtype: 'F16', prefix: false, buffers: false, lmHead: false, shards: 2 });
  files = { ...(await checkpointFiles(join(work, 'src1'))), ...Object.fromEntries(Object.entries(TOKENIZER).map(([k, v]) => [k, Buffer.from(v)])) };
  files2 = await checkpointFiles(join(work, 'src2'));
  shardedFiles = await checkpointFiles(join(work, 'src3'));
  hub = await FakeHub.start();
});
afterAll(async () => {
  await hub.close();
  await rm(work, { recursive: true, force: true });
});

const ENV_KEYS = ['HF_ENDPOINT', 'HF_HOME', 'HF_HUB_CACHE', 'HUGGINGFACE_HUB_CACHE', 'XDG_CACHE_HOME', 'HF_HUB_OFFLINE', 'HF_TOKEN'];
let savedEnv: Record<string, string | undefined>;
let home: string;
let commit: string;
const repoDir = () => join(home, 'hub', 'models--test-org--tiny-gpt2');

beforeEach(async () => {
  savedEnv = Object.fromEntries(ENV_KEYS.map((k) => [k, process.env[k]]));
  for (const k of ENV_KEYS) delete process.env[k];
  home = await mkdtemp(join(work, 'home-'));
  process.env.HF_ENDPOINT = hub.url;
  process.env.HF_HOME = home;
  commit = hub.addRepo(REPO, files);
  hub.clearLog();
});
afterEach(() => {
  for (const k of ENV_KEYS) {
    if (savedEnv[k] === undefined) delete process.env[k];
    else process.env[k] = savedEnv[k];
  }
});

const requestsFor = (file: string) => hub.log.filter((r) => r.path.endsWith(`/${file}`) || (file === 'model.safetensors' && r.path.startsWith('/cdn/')));

describe('hub download into the Hugging Face cache', () => {
  it('first load fills blobs/, snapshots/ (relative symlinks), refs/main and .no_exist; the weights load back', async () => {
    const events: ProgressEvent[] = [];
    const dir = await resolveModelDir(REPO, { onProgress: (e) => events.push(e) });
    expect(dir).toBe(join(repoDir(), 'snapshots', commit));
    expect((await readFile(join(repoDir(), 'refs', 'main'), 'utf8')).trim()).toBe(commit);
    for (const f of ['config.json', 'model.safetensors', 'tokenizer.json', 'vocab.json']) {
      const link = join(dir, f);
      expect((await lstat(link)).isSymbolicLink(), f).toBe(true);
      expect(await readlink(link)).toBe(`../../blobs/${hub.etag(REPO, f)}`);
      expect((await readFile(link)).equals(files[f]), f).toBe(true);
    }
    const blobs = await readdir(join(repoDir(), 'blobs'));
    expect(blobs.sort()).toEqual(['config.json', 'model.safetensors', 'tokenizer.json', 'vocab.json'].map((f) => hub.etag(REPO, f)).sort());
    // The LFS file's blob is named by its sha256 (X-Linked-Etag), small files by their git sha1 (ETag).
    expect(hub.etag(REPO, 'model.safetensors')).toMatch(/^[0-9a-f]{64}$/);
    expect(hub.etag(REPO, 'config.json')).toMatch(/^[0-9a-f]{40}$/);
    for (const f of ['merges.txt', 'tokenizer_config.json', 'special_tokens_map.json']) {
      expect((await stat(join(repoDir(), '.no_exist', commit, f))).size).toBe(0);
    }

    const loaded = await loadGpt2Checkpoint(dir);
    expect(loaded.cfg.model_name).toBe(REPO);
    expect(firstMismatch(loaded.weights.W_E, weights.W_E)).toBeNull();
    expect(firstMismatch(loaded.weights.blocks[1].W_V, weights.blocks[1].W_V)).toBeNull();

    // The LFS file: HEAD on /resolve/ (302 with X-Linked-*), then GET of its /cdn/ location.
    expect(requestsFor('model.safetensors').map((r) => `${r.method} ${r.status} ${r.path.startsWith('/cdn/') ? 'cdn' : 'resolve'}`)).toEqual([
      'HEAD 302 resolve',
      'GET 200 cdn', // straight to the Location the HEAD returned, as huggingface_hub does
    ]);
    // Progress: initiate → download → progress… → done per file; ready last.
    const mine = events.filter((e) => 'file' in e && e.file === 'model.safetensors').map((e) => e.status);
    expect(mine[0]).toBe('initiate');
    expect(mine[1]).toBe('download');
    expect(mine.at(-1)).toBe('done');
    const progress = events.filter((e): e is Extract<ProgressEvent, { status: 'progress' }> => e.status === 'progress' && e.file === 'model.safetensors');
    expect(progress.at(-1)!.loaded).toBe(files['model.safetensors'].length);
    expect(progress.at(-1)!.total).toBe(files['model.safetensors'].length);
    expect(progress.at(-1)!.eta).toBe(0);
    expect(progress.every((p) => p.rate >= 0)).toBe(true);
    const last = events.at(-1)!;
    expect(last).toEqual({ status: 'ready', repo: REPO, dir, commit });
    const absent = events.find((e) => e.status === 'done' && e.file === 'merges.txt');
    expect(absent).toEqual({ status: 'done', repo: REPO, file: 'merges.txt', path: null, cached: false });
  });

  it('second load makes no request', async () => {
    const dir1 = await resolveModelDir(REPO);
    hub.clearLog();
    const events: ProgressEvent[] = [];
    const dir2 = await resolveModelDir(REPO, { onProgress: (e) => events.push(e) });
    expect(dir2).toBe(dir1);
    expect(hub.log).toEqual([]);
    expect(events.filter((e) => e.status === 'done').every((e) => e.status === 'done' && e.cached)).toBe(true);
  });

  it('offline (HF_HUB_OFFLINE=1 or localFilesOnly) loads from the cache and fails clearly when a file is missing', async () => {
    const dir = await resolveModelDir(REPO);
    hub.clearLog();
    process.env.HF_HUB_OFFLINE = '1';
    expect(await resolveModelDir(REPO)).toBe(dir);
    await rm(join(dir, 'model.safetensors'));
    await expect(resolveModelDir(REPO)).rejects.toThrow(
      new RegExp(`Offline mode .*: model\\.safetensors of ${REPO}@main is not in the cache: expected ${join(dir, 'model.safetensors')} \\(cache: ${join(home, 'hub')}\\)`),
    );
    delete process.env.HF_HUB_OFFLINE;
    const empty = join(home, 'empty-cache');
    await expect(resolveModelDir(REPO, { localFilesOnly: true, cacheDir: empty })).rejects.toThrow(
      new RegExp(`Offline mode .*: ${REPO}@main is not in the cache: no ${join(empty, 'models--test-org--tiny-gpt2', 'refs', 'main')}`),
    );
    expect(hub.log).toEqual([]);
    // Online again, the missing file is fetched (the blob is still there: only HEAD, no GET).
    expect(await resolveModelDir(REPO)).toBe(dir);
    expect(hub.log.map((r) => r.method)).toEqual(['HEAD']);
  });

  it('an interrupted download resumes from the .incomplete file with a Range request', async () => {
    const size = files['model.safetensors'].length;
    const blob = join(repoDir(), 'blobs', hub.etag(REPO, 'model.safetensors'));
    hub.cutNext('model.safetensors', 1000);
    await expect(resolveModelDir(REPO, { maxRetries: 0 })).rejects.toThrow(/Download of model\.safetensors of test-org\/tiny-gpt2 was interrupted after 1000 of \d+ bytes/);
    expect((await stat(`${blob}.incomplete`)).size).toBe(1000);
    hub.clearLog();

    const events: ProgressEvent[] = [];
    const dir = await resolveModelDir(REPO, { onProgress: (e) => events.push(e) });
    const cdn = hub.log.filter((r) => r.path.startsWith('/cdn/'));
    expect(cdn.map((r) => [r.range, r.status])).toEqual([['bytes=1000-', 206]]);
    expect((await readFile(join(dir, 'model.safetensors'))).equals(files['model.safetensors'])).toBe(true);
    await expect(stat(`${blob}.incomplete`)).rejects.toThrow();
    expect(events.find((e) => e.status === 'download')).toEqual({ status: 'download', repo: REPO, file: 'model.safetensors', total: size, resumeFrom: 1000 });
    const loaded = await loadGpt2Checkpoint(dir);
    expect(firstMismatch(loaded.weights.W_U, weights.W_U)).toBeNull();
  });

  it('within one load, a cut-off transfer is retried with Range until complete', async () => {
    hub.cutNext('model.safetensors', 500, 2);
    const dir = await resolveModelDir(REPO);
    const gets = hub.log.filter((r) => r.path.startsWith('/cdn/'));
    expect(gets.map((r) => r.range)).toEqual([null, 'bytes=500-', 'bytes=1000-']);
    expect((await readFile(join(dir, 'model.safetensors'))).equals(files['model.safetensors'])).toBe(true);
  });

  it('concurrent loads of the same repo in one process download each file once', async () => {
    const [a, b, c] = await Promise.all([resolveModelDir(REPO), resolveModelDir(REPO), resolveModelDir(REPO, { revision: commit })]);
    expect(a).toBe(b);
    expect(c).toBe(a);
    expect(hub.log.filter((r) => r.path.startsWith('/cdn/')).length).toBe(1);
    expect(hub.log.filter((r) => r.method === 'GET' && r.path.endsWith('/config.json')).length).toBe(1);
  });

  it('a gated repo without token: 401 → clear error; with HF_TOKEN or the token option it loads', async () => {
    hub.addRepo('gated/tiny', files, { token: 'hf_secret' });
    await expect(resolveModelDir('gated/tiny')).rejects.toThrow(/Access denied \(HTTP 401\) to config\.json in gated\/tiny: the repo is gated or private .*Set HF_TOKEN/);
    const dir = await resolveModelDir('gated/tiny', { token: 'hf_secret' });
    expect((await readFile(join(dir, 'config.json'))).equals(files['config.json'])).toBe(true);
    expect(hub.log.filter((r) => r.path.includes('/resolve/') && r.status !== 401).every((r) => r.authorization === 'Bearer hf_secret')).toBe(true);
    await rm(join(home, 'hub', 'models--gated--tiny'), { recursive: true });
    process.env.HF_TOKEN = 'hf_secret';
    expect(await resolveModelDir('gated/tiny')).toBe(dir);
  });

  it('404s: unknown repo, unknown revision, repo without weights', async () => {
    await expect(resolveModelDir('nobody/nothing')).rejects.toThrow(/Repository nobody\/nothing does not exist on the hub \(HTTP 404 \(Repository not found\)\); if it is private, set HF_TOKEN/);
    hub.addRepo('test-org/empty', { 'README.md': 'hi' });
    await expect(resolveModelDir('test-org/empty')).rejects.toThrow(/test-org\/empty@main: config\.json not found \(HTTP 404\): the repo or revision does not exist/);
    await expect(resolveModelDir(REPO, { revision: 'v9' })).rejects.toThrow(/Revision 'v9' does not exist in test-org\/tiny-gpt2/);
    hub.addRepo('test-org/no-weights', { 'config.json': files['config.json'] });
    await expect(resolveModelDir('test-org/no-weights')).rejects.toThrow(/has neither model\.safetensors nor model\.safetensors\.index\.json; only safetensors/);
  });

  it('a repo whose config.json is not a GPT-2 is refused before its weights are downloaded', async () => {
    hub.addRepo('test-org/llama', { ...files, 'config.json': JSON.stringify({ architectures: ['LlamaForCausalLM'], model_type: 'llama' }) });
    await expect(resolveModelDir('test-org/llama')).rejects.toThrow(/test-org\/llama: unsupported architecture: config.json has architectures \["LlamaForCausalLM"\]/);
    expect(hub.log.filter((r) => r.path.includes('model.safetensors') || r.path.startsWith('/cdn/'))).toEqual([]);
  });

  it('sharded repo: index and shards are fetched and load', async () => {
    hub.addRepo('test-org/sharded', shardedFiles);
    const dir = await resolveModelDir('test-org/sharded');
    expect((await readdir(dir)).filter((f) => f.endsWith('.safetensors')).sort()).toEqual(['model-00001-of-00002.safetensors', 'model-00002-of-00002.safetensors']);
    const loaded = await loadGpt2Checkpoint(dir);
    expect(firstMismatch(loaded.weights.blocks[0].b_in, refRound(weights.blocks[0].b_in, refF16))).toBeNull(); // stored as F16
    expect(firstMismatch(loaded.weights.blocks[1].W_out, refRound(weights.blocks[1].W_out, refF16))).toBeNull();
    hub.clearLog();
    expect(await resolveModelDir('test-org/sharded')).toBe(dir);
    expect(hub.log).toEqual([]);
  });

  it('official names resolve to their hub repo; loadGpt2 names the model as TransformerLens does', async () => {
    hub.addRepo('openai-community/gpt2', files);
    const { cfg: loadedCfg, dir } = await loadGpt2('gpt2-small');
    expect(dir).toBe(join(home, 'hub', 'models--openai-community--gpt2', 'snapshots', (await readFile(join(home, 'hub', 'models--openai-community--gpt2', 'refs', 'main'), 'utf8')).trim()));
    expect(loadedCfg.model_name).toBe('gpt2');
    expect(loadedCfg.d_model).toBe(16);
  });

  it('a revision given as a commit hash; checkForUpdates follows a moved branch', async () => {
    const dir1 = await resolveModelDir(REPO);
    const commit2 = hub.addRepo(REPO, files2); // main now points to a new commit
    hub.clearLog();
    expect(await resolveModelDir(REPO)).toBe(dir1); // trusts refs/main: no request
    expect(hub.log).toEqual([]);
    const dir2 = await resolveModelDir(REPO, { checkForUpdates: true });
    expect(dir2).toBe(join(repoDir(), 'snapshots', commit2));
    expect((await readFile(join(repoDir(), 'refs', 'main'), 'utf8')).trim()).toBe(commit2);
    const loaded = await loadGpt2Checkpoint(dir2);
    expect(firstMismatch(loaded.weights.W_E, weights2.W_E)).toBeNull();
    hub.clearLog();
    expect(await resolveModelDir(REPO, { revision: commit2, localFilesOnly: true })).toBe(dir2);
    expect(hub.log).toEqual([]);
  });

  it('cacheDir option and HF_HUB_CACHE take precedence over HF_HOME', async () => {
    const custom = join(home, 'custom');
    expect(await resolveModelDir(REPO, { cacheDir: custom })).toBe(join(custom, 'models--test-org--tiny-gpt2', 'snapshots', commit));
    process.env.HF_HUB_CACHE = join(home, 'env-cache');
    expect(await resolveModelDir(REPO)).toBe(join(home, 'env-cache', 'models--test-org--tiny-gpt2', 'snapshots', commit));
  });

  it('local directories are used as is; missing paths and unknown names fail clearly', async () => {
    const local = join(work, 'src1');
    expect(await resolveModelDir(local)).toBe(local);
    await expect(resolveModelDir('./does/not/exist')).rejects.toThrow(/Model directory .*does\/not\/exist does not exist/);
    await expect(resolveModelDir('gpt3')).rejects.toThrow(/Unknown model name "gpt3": use one of gpt2, gpt2-small/);
    expect(hub.log).toEqual([]);
  });

  it('a symlink pointing at a deleted blob is repaired', async () => {
    const dir = await resolveModelDir(REPO);
    await rm(join(repoDir(), 'blobs', hub.etag(REPO, 'tokenizer.json')));
    hub.clearLog();
    await resolveModelDir(REPO);
    expect(hub.log.map((r) => `${r.method} ${r.path.split('/').pop()}`)).toEqual(['HEAD tokenizer.json', 'GET tokenizer.json']);
    expect(await readFile(join(dir, 'tokenizer.json'), 'utf8')).toBe(TOKENIZER['tokenizer.json']);
  });

  it('a blob already in the cache is linked without downloading (a new commit with the same file)', async () => {
    await resolveModelDir(REPO);
    const commit3 = hub.addRepo(REPO, files); // same contents, new commit
    hub.clearLog();
    const dir = await resolveModelDir(REPO, { checkForUpdates: true });
    expect(dir).toBe(join(repoDir(), 'snapshots', commit3));
    expect(hub.log.every((r) => r.method === 'HEAD')).toBe(true);
    expect((await readFile(join(dir, 'model.safetensors'))).equals(files['model.safetensors'])).toBe(true);
  });
});

describe('cache layout compatibility', () => {
  it('reads a cache laid out by Python huggingface_hub (refs/main + relative snapshot symlinks), offline', async () => {
    const rd = join(home, 'hub', 'models--py-org--tiny');
    const c = 'abcdef0123456789abcdef0123456789abcdef01';
    await mkdir(join(rd, 'blobs'), { recursive: true });
    await mkdir(join(rd, 'snapshots', c), { recursive: true });
    await mkdir(join(rd, 'refs'), { recursive: true });
    await writeFile(join(rd, 'refs', 'main'), c);
    for (const f of ['config.json', 'model.safetensors']) {
      await writeFile(join(rd, 'blobs', `etag-${f}`), files[f]);
      await symlink(`../../blobs/etag-${f}`, join(rd, 'snapshots', c, f));
    }
    process.env.HF_HUB_OFFLINE = 'true';
    const { cfg: loadedCfg, weights: w } = await loadGpt2('py-org/tiny');
    expect(loadedCfg.model_name).toBe('py-org/tiny');
    expect(firstMismatch(w.W_pos, weights.W_pos)).toBeNull();
    expect(hub.log).toEqual([]);
  });
});
