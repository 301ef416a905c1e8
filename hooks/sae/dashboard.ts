/**
 * Feature dashboards (as SAEDashboard / Neuronpedia show them), computed over a corpus in one pass: for
 * every feature its top-k activating contexts (a window of tokens around the maximum, with the
 * feature's activation on each token), a histogram of its non-zero activations, its density, and its
 * logit weights (the top and bottom tokens of W_dec[f] · W_U). Written beside the SAE as
 * `feature_dashboards.json.gz` (gzipped JSON, token strings included, so no tokenizer is needed to read it).
 */
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { gunzipSync, gzipSync } from 'node:zlib';
import type { HookedTransformer } from '../HookedTransformer.ts';
import { saeHook, type HookName, type ModelHookName } from '../hookPoints.ts';
import { Rng } from '../random.ts';
import { forEachBatch } from './corpus.ts';
import { stopLayerFor } from './harvest.ts';
import type { Sae } from './Sae.ts';

export const DASHBOARD_FILE = 'feature_dashboards.json.gz';

export interface TopContext {
  /** Token ids of the window, and the feature's activation on each (rounded to 4 significant digits). */
  tokens: number[];
  acts: number[];
  /** Index in the window of the token with the maximum activation, and that activation. */
  at: number;
  value: number;
}

export interface FeatureDashboard {
  feature: number;
  /** Share of corpus positions on which the feature fires. */
  density: number;
  maxAct: number;
  /** Mean activation where it fires. */
  meanAct: number;
  top: TopContext[];
  /** Non-zero activations, in `counts.length` equal bins from 0 to maxAct (from up to `sampleSize` sampled values per feature). */
  histogram: { edges: number[]; counts: number[] };
  /** W_dec[f] · W_U over the vocabulary: the largest and the smallest. */
  logits: { top: { token: number; value: number }[]; bottom: { token: number; value: number }[] };
}

export interface FeatureDashboards {
  version: 1;
  sae: { name: string; hook_name: string; architecture: string; d_in: number; d_sae: number; k: number | null };
  model: string;
  corpus: { name: string; split: string; tokens: number; contexts: number; contextSize: number };
  options: { topK: number; windowBefore: number; windowAfter: number; bins: number; logitK: number };
  /** The string of every token id used in the file. */
  tokenStrings: Record<string, string>;
  features: FeatureDashboard[];
}

export interface DashboardOptions {
  /** Contexts per feature (default 10). */
  topK?: number;
  /** Tokens kept before and after the maximum (default 10 and 4). */
  windowBefore?: number;
  windowAfter?: number;
  /** Histogram bins (default 24) and sampled activations per feature it is drawn from (default 1,000). */
  bins?: number;
  sampleSize?: number;
  /** Top and bottom tokens of the logit weights (default 10), over `vocab` (default every token). */
  logitK?: number;
  vocab?: readonly number[];
  /** Stop after this many positions (default: every context given). */
  maxTokens?: number;
  /** Contexts per forward pass (default 16). */
  batchSize?: number;
  /** How the corpus is described in the file. */
  corpus?: { name: string; split: string };
  onProgress?: (done: number, total: number | null) => void;
  signal?: AbortSignal;
  seed?: number;
}

const round = (v: number) => (v === 0 ? 0 : Number(v.toPrecision(4)));

/** One feature's k best contexts so far, the weakest first to be replaced. */
class TopList {
  readonly items: TopContext[] = [];
  private minAt = -1;
  constructor(private readonly k: number) {}
  /** Whether `value` would enter. */
  admits(value: number): boolean {
    return this.items.length < this.k || value > this.items[this.minAt].value;
  }
  add(item: TopContext): void {
    if (this.items.length < this.k) this.items.push(item);
    else this.items[this.minAt] = item;
    this.minAt = 0;
    for (let i = 1; i < this.items.length; i++) if (this.items[i].value < this.items[this.minAt].value) this.minAt = i;
  }
}

/** Top and bottom `k` of `values` over `vocab` (or every index). */
function extremes(values: Float32Array, k: number, vocab: readonly number[] | null): { top: { token: number; value: number }[]; bottom: { token: number; value: number }[] } {
  const ids = vocab ?? Array.from({ length: values.length }, (_, i) => i);
  const order = [...ids].sort((a, b) => values[b] - values[a] || a - b);
  const pick = (list: number[]) => list.map((token) => ({ token, value: round(values[token]) }));
  return { top: pick(order.slice(0, k)), bottom: pick(order.slice(-k).reverse()) };
}

/**
 * Logit weights W_dec[f] · W_U of `features` (default every feature), top and bottom `k` over `vocab`
 * (default every token), in blocks of features.
 */
export async function logitWeights(
  model: HookedTransformer,
  sae: Sae,
  k: number,
  opts: { vocab?: readonly number[] | null; features?: readonly number[] } = {},
): Promise<FeatureDashboard['logits'][]> {
  const { d_in, d_sae } = sae.cfg;
  if (d_in !== model.cfg.d_model) throw new Error(`logit weights read W_dec · W_U: the SAE's d_in (${d_in}) must be the model's d_model (${model.cfg.d_model})`);
  const features = opts.features ?? Array.from({ length: d_sae }, (_, f) => f);
  const W_U = model.W_U; // [d_model, d_vocab]
  const V = model.cfg.d_vocab;
  const out: FeatureDashboard['logits'][] = [];
  const block = 64;
  for (let f0 = 0; f0 < features.length; f0 += block) {
    const chunk = features.slice(f0, f0 + block);
    const rows = new Float32Array(chunk.length * d_in);
    chunk.forEach((f, r) => rows.set(sae.featureDirection(f), r * d_in));
    const prod = await model.kernels.matmul({ data: rows, shape: [chunk.length, d_in] }, { data: W_U.data, shape: W_U.shape }); // [n, d_vocab]
    for (let r = 0; r < chunk.length; r++) out.push(extremes(prod.data.subarray(r * V, (r + 1) * V), k, opts.vocab ?? null));
  }
  return out;
}

/** Computes the dashboards of every feature of `sae` (spliced into `model` with its error term, so later layers see clean values) over `contexts`. */
export async function computeFeatureDashboards(
  model: HookedTransformer,
  sae: Sae,
  contexts: AsyncIterable<number[]> | Iterable<number[]>,
  opts: DashboardOptions = {},
): Promise<FeatureDashboards> {
  const { d_sae } = sae.cfg;
  const topK = opts.topK ?? 10;
  const before = opts.windowBefore ?? 10;
  const after = opts.windowAfter ?? 4;
  const bins = opts.bins ?? 24;
  const sampleSize = opts.sampleSize ?? 1000;
  const logitK = opts.logitK ?? 10;
  const batchSize = opts.batchSize ?? 16;
  const bos = model.tokenizer?.bosTokenId ?? model.cfg.eos_token_id;
  const hook = sae.cfg.hook_name as ModelHookName;
  const acts = saeHook(hook, 'hook_sae_acts_post');
  const stop = stopLayerFor(model, hook);
  const rng = new Rng(opts.seed ?? 0);
  const tops = Array.from({ length: d_sae }, () => new TopList(topK));
  const fires = new Float64Array(d_sae);
  const sums = new Float64Array(d_sae);
  const maxes = new Float32Array(d_sae);
  const samples = Array.from({ length: d_sae }, () => [] as number[]);
  let positions = 0;
  let nContexts = 0;
  let contextSize = 0;

  const runBatch = async (batch: number[][]) => {
    const pos = batch[0].length;
    contextSize = pos;
    const [, cache] = await model.runWithCacheWithSaes(batch, {
      saes: sae,
      useErrorTerm: true,
      namesFilter: [acts as HookName],
      ...(stop !== null ? { stopAtLayer: Math.min(stop, model.cfg.n_layers) } : { returnType: 'none' as const }),
    });
    const a = cache.get(acts).data; // [batch, pos, d_sae]
    for (let b = 0; b < batch.length; b++) {
      for (let p = 0; p < pos; p++) {
        if (batch[b][p] === bos) continue;
        positions++;
        const row = (b * pos + p) * d_sae;
        for (let f = 0; f < d_sae; f++) {
          const v = a[row + f];
          if (v <= 0) continue;
          fires[f]++;
          sums[f] += v;
          if (v > maxes[f]) maxes[f] = v;
          // Reservoir sample of the feature's activations for its histogram.
          const s = samples[f];
          if (s.length < sampleSize) s.push(v);
          else {
            const j = Math.floor(rng.next() * fires[f]);
            if (j < sampleSize) s[j] = v;
          }
          if (!tops[f].admits(v)) continue;
          const from = Math.max(0, p - before);
          const to = Math.min(pos, p + after + 1);
          const tokens = batch[b].slice(from, to);
          // BOS positions are not read (their activations are left out everywhere): shown as 0.
          const windowActs = tokens.map((t, i) => (t === bos ? 0 : round(a[(b * pos + from + i) * d_sae + f])));
          tops[f].add({ tokens, acts: windowActs, at: p - from, value: round(v) });
        }
      }
    }
    nContexts += batch.length;
    opts.onProgress?.(positions, opts.maxTokens ?? null);
  };

  await forEachBatch(contexts, batchSize, runBatch, { done: () => opts.maxTokens !== undefined && positions >= opts.maxTokens, signal: opts.signal, what: 'dashboards' });
  if (positions === 0) throw new Error('feature dashboards: no position to read (the contexts hold only BOS)');

  const logits = await logitWeights(model, sae, logitK, { vocab: opts.vocab ?? null });
  const features: FeatureDashboard[] = [];
  const used = new Set<number>();
  for (let f = 0; f < d_sae; f++) {
    const max = maxes[f];
    const counts = new Array<number>(bins).fill(0);
    for (const v of samples[f]) counts[Math.min(bins - 1, Math.floor((v / max) * bins))]++;
    const top = [...tops[f].items].sort((x, y) => y.value - x.value);
    for (const t of top) for (const id of t.tokens) used.add(id);
    for (const l of [...logits[f].top, ...logits[f].bottom]) used.add(l.token);
    features.push({
      feature: f,
      density: fires[f] / positions,
      maxAct: round(max),
      meanAct: fires[f] > 0 ? round(sums[f] / fires[f]) : 0,
      top,
      histogram: { edges: Array.from({ length: bins + 1 }, (_, i) => round((max * i) / bins)), counts },
      logits: logits[f],
    });
  }
  const tokenStrings: Record<string, string> = {};
  for (const id of [...used].sort((x, y) => x - y)) tokenStrings[id] = model.tokenizer ? model.tokenizer.decode([id]) : String(id);
  return {
    version: 1,
    sae: { name: sae.name, hook_name: sae.cfg.hook_name, architecture: sae.cfg.architecture, d_in: sae.cfg.d_in, d_sae, k: sae.cfg.k },
    model: model.cfg.model_name,
    corpus: { name: opts.corpus?.name ?? 'contexts', split: opts.corpus?.split ?? 'all', tokens: positions, contexts: nContexts, contextSize },
    options: { topK, windowBefore: before, windowAfter: after, bins, logitK },
    tokenStrings,
    features,
  };
}

/** Writes the dashboards as `feature_dashboards.json.gz` into `dir` (beside the SAE); returns the path. */
export async function saveFeatureDashboards(dir: string, dashboards: FeatureDashboards): Promise<string> {
  const path = join(dir, DASHBOARD_FILE);
  await writeFile(path, gzipSync(Buffer.from(JSON.stringify(dashboards)), { level: 9 }));
  return path;
}

/** Reads `feature_dashboards.json.gz` from `dir`, or null when there is none. */
export async function loadFeatureDashboards(dir: string): Promise<FeatureDashboards | null> {
  const path = join(dir, DASHBOARD_FILE);
  let raw: Buffer;
  try {
    raw = await readFile(path);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw e;
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(gunzipSync(raw).toString('utf8'));
  } catch (e) {
    throw new Error(`${path}: not a gzipped JSON dashboard file (${(e as Error).message})`);
  }
  const d = parsed as FeatureDashboards;
  if (d?.version !== 1 || !Array.isArray(d.features)) throw new Error(`${path}: not a version-1 feature dashboard file`);
  return d;
}
