/** GET /api/models: the embedded model, model directories under the roots, hub models in the HF cache, and the official GPT-2 models with sizes. */
import { existsSync } from 'node:fs';
import { lstat, readdir, readFile, realpath, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { hubCacheDir } from '../../hooks/loading/hfCache.ts';
import { OFFICIAL_MODELS } from '../../hooks/loading/modelNames.ts';
import { isInside } from './modelNames.ts';

export interface LocalModel {
  name: string;
  root: string;
  bytes: number;
}

export interface CachedModel {
  repo: string;
  bytes: number;
}

export interface HubModel {
  name: string;
  repo: string;
  aliases: string[];
  n_layers: number;
  d_model: number;
  /** Parameter count from the architecture (embeddings, blocks, final LayerNorm; the unembedding is tied). */
  params: number;
  /** Size of those parameters in float32 (the checkpoint's dtype). */
  float32Bytes: number;
  cached: boolean;
}

/** GPT-2 shapes of the official models (vocab 50257, context 1024). */
const SHAPES: Record<string, { n_layers: number; d_model: number }> = {
  gpt2: { n_layers: 12, d_model: 768 },
  'gpt2-medium': { n_layers: 24, d_model: 1024 },
  'gpt2-large': { n_layers: 36, d_model: 1280 },
  'gpt2-xl': { n_layers: 48, d_model: 1600 },
  distilgpt2: { n_layers: 6, d_model: 768 },
};

/** Parameters of a GPT-2: W_E + W_pos + per block (LN 2D, attn 4D²+4D, LN 2D, MLP 8D²+5D) + final LN 2D. */
export function gpt2ParamCount(n_layers: number, d_model: number, n_ctx = 1024, d_vocab = 50257): number {
  const D = d_model;
  return d_vocab * D + n_ctx * D + n_layers * (12 * D * D + 13 * D) + 2 * D;
}

async function dirBytes(dir: string, roots: readonly string[]): Promise<number> {
  let total = 0;
  for (const e of await readdir(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    const real = await realpath(p).catch(() => null);
    if (!real || !roots.some((r) => isInside(r, real))) continue; // never follow links out of the roots
    const s = await stat(real).catch(() => null);
    if (s?.isFile()) total += s.size;
  }
  return total;
}

/** Model directories (with config.json) one or two levels under each root ("name" or "org/name"). */
export async function listLocalModels(roots: readonly string[]): Promise<LocalModel[]> {
  const out: LocalModel[] = [];
  const visit = async (root: string, rel: string, depth: number): Promise<void> => {
    const dir = join(root, rel);
    const real = await realpath(dir).catch(() => null);
    if (!real || !roots.some((r) => isInside(r, real))) return;
    if (rel && existsSync(join(real, 'config.json'))) {
      out.push({ name: rel, root, bytes: await dirBytes(real, roots) });
      return;
    }
    if (depth === 2) return;
    const entries = await readdir(real, { withFileTypes: true }).catch(() => []);
    for (const e of entries) {
      if (e.name.startsWith('.')) continue;
      const s = await lstat(join(real, e.name)).catch(() => null);
      if (s && (s.isDirectory() || s.isSymbolicLink())) await visit(root, rel ? `${rel}/${e.name}` : e.name, depth + 1);
    }
  };
  for (const root of roots) await visit(root, '', 0);
  return out;
}

/** Hub repos with a snapshot in the HF cache: models--{org}--{name}/refs/main + blobs. */
export async function listCachedModels(cacheDir?: string): Promise<CachedModel[]> {
  const root = hubCacheDir(cacheDir);
  const entries = await readdir(root).catch(() => [] as string[]);
  const out: CachedModel[] = [];
  for (const e of entries) {
    if (!e.startsWith('models--')) continue;
    const repo = e.slice('models--'.length).split('--').join('/');
    const commit = (await readFile(join(root, e, 'refs', 'main'), 'utf8').catch(() => '')).trim();
    if (!commit || !existsSync(join(root, e, 'snapshots', commit, 'config.json'))) continue;
    let bytes = 0;
    for (const b of await readdir(join(root, e, 'blobs')).catch(() => [] as string[])) {
      const s = await stat(join(root, e, 'blobs', b)).catch(() => null);
      if (s?.isFile() && !b.endsWith('.incomplete')) bytes += s.size;
    }
    out.push({ repo, bytes });
  }
  return out.sort((a, b) => a.repo.localeCompare(b.repo));
}

export function listHubModels(cached: readonly CachedModel[]): HubModel[] {
  return OFFICIAL_MODELS.map((m) => {
    const s = SHAPES[m.name];
    const params = gpt2ParamCount(s.n_layers, s.d_model);
    return {
      name: m.name, repo: m.repo, aliases: m.aliases, ...s, params, float32Bytes: params * 4,
      cached: cached.some((c) => c.repo === m.repo),
    };
  });
}
