/**
 * Every neuron's top activating examples over a corpus (as Neuronpedia and the Transformer Debugger show them),
 * harvested in one streamed pass — a few contexts per forward pass, each layer's mlp.hook_post read and dropped — and
 * kept on disk per model, so it is computed once. For each neuron (mlp.hook_post of a layer) the store keeps its `k`
 * best contexts (one example per context: the position of its largest activation there, BOS left out), its largest
 * activation and its density (the share of corpus tokens where it is above 0). The default corpus is the held-out tail
 * of Tiny Shakespeare (the last 10 % of its tokens, which the embedded model was not trained on), cut into contexts of
 * 64 tokens that start with BOS.
 */
import { createHash } from 'node:crypto';
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { dirname, join } from 'node:path';
import { contextsOf, readHeldOutTokens, TINY_SHAKESPEARE } from '../datasets/text.ts';
import type { HookedTransformer } from '../HookedTransformer.ts';
import { blockHook, type HookName } from '../hookPoints.ts';

const MAGIC = 'LBNEURONS1\n';
/** Bumped whenever the harvest or the file changes meaning: older files are then ignored. */
const FORMAT_VERSION = 1;

export interface NeuronExample {
  /** The context (an index into the store's contexts) and the position in it of the neuron's largest activation there. */
  context: number;
  position: number;
  value: number;
}

export interface CorpusInfo {
  /** The corpus file's name and SHA-256, and which part of it. */
  name: string;
  sha256: string;
  split: string;
  /** Tokens in the contexts (BOS included) and the contexts' length. */
  tokens: number;
  contextSize: number;
}

export interface NeuronExamplesMeta {
  version: number;
  /** The model's identity (WeightStore.digest()) and shape. */
  model: string;
  n_layers: number;
  d_mlp: number;
  /** Examples kept per neuron. */
  k: number;
  corpus: CorpusInfo;
}

/** The harvest's result: the contexts and, per neuron, its top examples (best first), largest activation and density. */
export class NeuronExamples {
  constructor(
    readonly meta: NeuronExamplesMeta,
    /** [contexts, contextSize] token ids. */
    private readonly contextTokens: Int32Array,
    /** [n_layers · d_mlp · k] each: context index (−1: an empty slot), position, value; best first per neuron. */
    private readonly ctx: Int32Array,
    private readonly pos: Int32Array,
    private readonly values: Float32Array,
    /** [n_layers · d_mlp]: the share of corpus tokens (BOS left out) where the neuron is above 0. */
    private readonly density: Float32Array,
  ) {}

  get contexts(): number {
    return this.contextTokens.length / this.meta.corpus.contextSize;
  }

  private index(layer: number, neuron: number): number {
    const { n_layers, d_mlp } = this.meta;
    if (!Number.isInteger(layer) || layer < 0 || layer >= n_layers) throw new Error(`neuron examples: layer ${layer} is out of range; allowed 0..${n_layers - 1}`);
    if (!Number.isInteger(neuron) || neuron < 0 || neuron >= d_mlp) throw new Error(`neuron examples: neuron ${neuron} is out of range; allowed 0..${d_mlp - 1}`);
    return layer * d_mlp + neuron;
  }

  /** The neuron's top examples, best first (at most k). */
  examples(layer: number, neuron: number): NeuronExample[] {
    const g = this.index(layer, neuron);
    const { k } = this.meta;
    const out: NeuronExample[] = [];
    for (let i = g * k; i < (g + 1) * k; i++) if (this.ctx[i] >= 0) out.push({ context: this.ctx[i], position: this.pos[i], value: this.values[i] });
    return out;
  }

  /** The share of corpus tokens where the neuron is above 0. */
  densityOf(layer: number, neuron: number): number {
    return this.density[this.index(layer, neuron)];
  }

  /** Context `i`'s tokens (BOS first). */
  context(i: number): number[] {
    const C = this.meta.corpus.contextSize;
    if (!Number.isInteger(i) || i < 0 || i >= this.contexts) throw new Error(`neuron examples: context ${i} is out of range; allowed 0..${this.contexts - 1}`);
    return Array.from(this.contextTokens.subarray(i * C, (i + 1) * C));
  }

  /** The file: MAGIC, a uint32 header length, the JSON header (meta), then the arrays (little-endian). */
  serialize(): Buffer {
    const header = Buffer.from(JSON.stringify(this.meta), 'utf8');
    const len = Buffer.alloc(4);
    len.writeUInt32LE(header.length);
    const bytes = (a: Int32Array | Float32Array) => Buffer.from(a.buffer, a.byteOffset, a.byteLength);
    return Buffer.concat([Buffer.from(MAGIC, 'latin1'), len, header, bytes(this.contextTokens), bytes(this.ctx), bytes(this.pos), bytes(this.values), bytes(this.density)]);
  }

  /** Reads a file written by serialize(); null when it is not one (another version, cut short). */
  static deserialize(buf: Buffer): NeuronExamples | null {
    if (buf.length < MAGIC.length + 4 || buf.subarray(0, MAGIC.length).toString('latin1') !== MAGIC) return null;
    const hl = buf.readUInt32LE(MAGIC.length);
    let o = MAGIC.length + 4;
    let meta: NeuronExamplesMeta;
    try {
      meta = JSON.parse(buf.subarray(o, o + hl).toString('utf8')) as NeuronExamplesMeta;
    } catch {
      return null;
    }
    if (meta.version !== FORMAT_VERSION) return null;
    o += hl;
    const N = meta.n_layers * meta.d_mlp;
    const take = <T extends Int32Array | Float32Array>(Ctor: new (n: number) => T, n: number): T | null => {
      if (o + n * 4 > buf.length) return null;
      const out = new Ctor(n);
      new Uint8Array(out.buffer).set(buf.subarray(o, o + n * 4)); // a copy: aligned whatever the header's length
      o += n * 4;
      return out;
    };
    const tokens = take(Int32Array, meta.corpus.tokens);
    const ctx = take(Int32Array, N * meta.k);
    const pos = take(Int32Array, N * meta.k);
    const values = take(Float32Array, N * meta.k);
    const density = take(Float32Array, N);
    if (!tokens || !ctx || !pos || !values || !density || o !== buf.length) return null;
    return new NeuronExamples(meta, tokens, ctx, pos, values, density);
  }
}

export interface HarvestOptions {
  /** Examples kept per neuron (default 20). */
  k?: number;
  /** Contexts per forward pass (default 8). */
  batchSize?: number;
  /** Called after each forward pass with the contexts done; it may throw to stop the harvest (a cancelled job). */
  onBatch?: (done: number, total: number) => void;
}

/**
 * Harvests every neuron's top-k examples over `contexts` (equal lengths, each starting with BOS, whose position is left
 * out). `corpus` describes them in the result. Memory: one batch's mlp.hook_post of every layer, and k slots per neuron.
 */
export async function harvestNeuronExamples(
  model: HookedTransformer,
  contexts: readonly Int32Array[],
  corpus: Omit<CorpusInfo, 'tokens' | 'contextSize'>,
  opts: HarvestOptions = {},
): Promise<NeuronExamples> {
  const { n_layers, d_mlp, n_ctx } = model.cfg;
  const k = opts.k ?? 20;
  if (!Number.isInteger(k) || k < 1) throw new Error(`harvestNeuronExamples: k must be a positive integer; got ${k}`);
  if (contexts.length === 0) throw new Error('harvestNeuronExamples: no contexts to harvest');
  const C = contexts[0].length;
  if (C < 2 || C > n_ctx) throw new Error(`harvestNeuronExamples: contexts of ${C} tokens; allowed 2..n_ctx = ${n_ctx}`);
  for (const c of contexts) if (c.length !== C) throw new Error(`harvestNeuronExamples: every context must have ${C} tokens; one has ${c.length}`);
  const N = n_layers * d_mlp;
  const ctx = new Int32Array(N * k).fill(-1);
  const pos = new Int32Array(N * k);
  const values = new Float32Array(N * k).fill(-Infinity);
  const filled = new Int32Array(N);
  const minAt = new Int32Array(N); // the slot of each neuron's weakest kept example (once full)
  const positive = new Float64Array(N);
  const names: HookName[] = Array.from({ length: n_layers }, (_v, l) => blockHook(l, 'mlp.hook_post'));
  const batchSize = Math.max(1, opts.batchSize ?? 8);
  const rowMax = new Float32Array(d_mlp);
  const rowArg = new Int32Array(d_mlp);
  for (let c0 = 0; c0 < contexts.length; c0 += batchSize) {
    const rows = contexts.slice(c0, c0 + batchSize);
    const [, cache] = await model.runWithCache(rows.map((r) => Array.from(r)), { namesFilter: names, returnType: 'none' });
    for (let l = 0; l < n_layers; l++) {
      const post = cache.get(names[l]).data; // [rows, C, d_mlp]
      for (let r = 0; r < rows.length; r++) {
        rowMax.fill(-Infinity);
        for (let p = 1; p < C; p++) {
          const o = (r * C + p) * d_mlp;
          for (let n = 0; n < d_mlp; n++) {
            const v = post[o + n];
            if (v > 0) positive[l * d_mlp + n]++;
            if (v > rowMax[n]) {
              rowMax[n] = v;
              rowArg[n] = p;
            }
          }
        }
        for (let n = 0; n < d_mlp; n++) {
          const g = l * d_mlp + n;
          const v = rowMax[n];
          const base = g * k;
          if (filled[g] < k) {
            const s = base + filled[g]++;
            ctx[s] = c0 + r;
            pos[s] = rowArg[n];
            values[s] = v;
            if (filled[g] === k) minAt[g] = weakest(values, base, k);
          } else if (v > values[base + minAt[g]]) {
            const s = base + minAt[g];
            ctx[s] = c0 + r;
            pos[s] = rowArg[n];
            values[s] = v;
            minAt[g] = weakest(values, base, k);
          }
        }
      }
    }
    opts.onBatch?.(Math.min(contexts.length, c0 + batchSize), contexts.length);
  }
  // Best first per neuron (ties: the earlier context).
  for (let g = 0; g < N; g++) {
    const base = g * k;
    const slots = Array.from({ length: filled[g] }, (_v, i) => base + i).sort((a, b) => values[b] - values[a] || ctx[a] - ctx[b]);
    const c = slots.map((s) => ctx[s]);
    const p = slots.map((s) => pos[s]);
    const v = slots.map((s) => values[s]);
    for (let i = 0; i < k; i++) {
      ctx[base + i] = i < c.length ? c[i] : -1;
      pos[base + i] = i < p.length ? p[i] : 0;
      values[base + i] = i < v.length ? v[i] : 0;
    }
  }
  const counted = contexts.length * (C - 1);
  const density = Float32Array.from(positive, (x) => x / counted);
  const tokens = new Int32Array(contexts.length * C);
  contexts.forEach((c, i) => tokens.set(c, i * C));
  const meta: NeuronExamplesMeta = {
    version: FORMAT_VERSION, model: model.weights.digest(), n_layers, d_mlp, k,
    corpus: { ...corpus, tokens: tokens.length, contextSize: C },
  };
  return new NeuronExamples(meta, tokens, ctx, pos, values, density);
}

/** The slot of the smallest of values[base .. base + k). */
function weakest(values: Float32Array, base: number, k: number): number {
  let m = 0;
  for (let i = 1; i < k; i++) if (values[base + i] < values[base + m]) m = i;
  return m;
}

/** Lensboard's cache folder: $LENSBOARD_CACHE_DIR, else $XDG_CACHE_HOME/lensboard, else ~/.cache/lensboard. */
export function lensboardCacheDir(env: NodeJS.ProcessEnv = process.env): string {
  if (env.LENSBOARD_CACHE_DIR) return env.LENSBOARD_CACHE_DIR;
  return join(env.XDG_CACHE_HOME || join(homedir(), '.cache'), 'lensboard');
}

export interface CachedHarvestOptions extends HarvestOptions {
  /** Where the file goes (default lensboardCacheDir()); under it, neuron-examples/<model digest>/<corpus key>.bin. */
  cacheDir?: string;
  /** The corpus file (default Tiny Shakespeare) and the held-out share of its tokens harvested (default 0.1). */
  corpusPath?: string;
  heldOutFraction?: number;
  /** Tokens per context, BOS included (default 64, at most n_ctx). */
  contextSize?: number;
  /** Stop after this many contexts (default all). */
  maxContexts?: number;
  /** Called before the forward passes start (the corpus tokenized): the number of contexts. */
  onStart?: (contexts: number) => void;
}

/** The cache file of a model and harvest settings. */
export async function neuronExamplesPath(model: HookedTransformer, opts: CachedHarvestOptions = {}): Promise<string> {
  const corpusPath = opts.corpusPath ?? TINY_SHAKESPEARE;
  const bytes = await readFile(corpusPath).catch((e: NodeJS.ErrnoException) => {
    throw new Error(`cannot read the corpus ${corpusPath}: ${e.code === 'ENOENT' ? 'no such file' : e.message}`);
  });
  const settings = {
    v: FORMAT_VERSION, corpus: createHash('sha256').update(bytes).digest('hex'), heldOutFraction: opts.heldOutFraction ?? 0.1,
    contextSize: Math.min(opts.contextSize ?? 64, model.cfg.n_ctx), k: opts.k ?? 20, maxContexts: opts.maxContexts ?? null,
  };
  const key = createHash('sha256').update(JSON.stringify(settings)).digest('hex').slice(0, 24);
  return join(opts.cacheDir ?? lensboardCacheDir(), 'neuron-examples', model.weights.digest().slice(0, 32), `${key}.bin`);
}

/**
 * The model's neuron examples: read from the disk cache, or harvested over the held-out corpus and written there
 * (atomically: a file is complete or absent). `fromCache` says which.
 */
export async function cachedNeuronExamples(model: HookedTransformer, opts: CachedHarvestOptions = {}): Promise<{ examples: NeuronExamples; path: string; fromCache: boolean }> {
  const path = await neuronExamplesPath(model, opts);
  const existing = await readFile(path).then((b) => NeuronExamples.deserialize(b), () => null);
  if (existing && existing.meta.model === model.weights.digest()) return { examples: existing, path, fromCache: true };
  if (!model.tokenizer) throw new Error('neuron examples: the corpus is text; this model was loaded without tokenizer files');
  const corpusPath = opts.corpusPath ?? TINY_SHAKESPEARE;
  const fraction = opts.heldOutFraction ?? 0.1;
  const heldOut = await readHeldOutTokens(model.tokenizer, corpusPath, fraction);
  const contextSize = Math.min(opts.contextSize ?? 64, model.cfg.n_ctx);
  let contexts = contextsOf(heldOut, contextSize, model.tokenizer.bosTokenId);
  if (opts.maxContexts !== undefined) contexts = contexts.slice(0, opts.maxContexts);
  if (contexts.length === 0) throw new Error(`neuron examples: the corpus ${corpusPath} holds out ${heldOut.length} tokens, fewer than one context of ${contextSize}`);
  opts.onStart?.(contexts.length);
  const sha256 = createHash('sha256').update(await readFile(corpusPath)).digest('hex');
  const examples = await harvestNeuronExamples(model, contexts, {
    name: corpusPath === TINY_SHAKESPEARE ? 'tinyshakespeare.txt' : corpusPath.split(/[\\/]/).pop()!, sha256,
    split: `last ${Math.round(fraction * 100)} % of the tokens`,
  }, opts);
  await mkdir(dirname(path), { recursive: true });
  const tmp = `${path}.${process.pid}.${Date.now()}.tmp`;
  await writeFile(tmp, examples.serialize());
  await rename(tmp, path);
  return { examples, path, fromCache: false };
}

export interface ExampleWindow extends NeuronExample {
  /** The window's first position in the context, its tokens and the neuron's activation on each. */
  start: number;
  tokens: number[];
  activations: number[];
}

/**
 * The neuron's top examples as windows of context (`before` tokens before the maximum, `after` after), with its
 * activation on every token — the contexts run again (a forward pass of at most `k` contexts, one layer cached).
 */
export async function neuronExampleWindows(
  model: HookedTransformer,
  store: NeuronExamples,
  layer: number,
  neuron: number,
  opts: { k?: number; before?: number; after?: number; batchSize?: number } = {},
): Promise<ExampleWindow[]> {
  const examples = store.examples(layer, neuron).slice(0, opts.k ?? 10);
  const before = opts.before ?? 12;
  const after = opts.after ?? 4;
  const d_mlp = model.cfg.d_mlp;
  const out: ExampleWindow[] = [];
  const batchSize = Math.max(1, opts.batchSize ?? 16);
  for (let e0 = 0; e0 < examples.length; e0 += batchSize) {
    const batch = examples.slice(e0, e0 + batchSize);
    const rows = batch.map((e) => store.context(e.context));
    const C = rows[0].length;
    const [, cache] = await model.runWithCache(rows, { namesFilter: [blockHook(layer, 'mlp.hook_post')], returnType: 'none' });
    const post = cache.get(blockHook(layer, 'mlp.hook_post')).data; // [rows, C, d_mlp]
    batch.forEach((e, r) => {
      const start = Math.max(0, e.position - before);
      const end = Math.min(C, e.position + after + 1);
      const acts: number[] = [];
      for (let p = start; p < end; p++) acts.push(post[(r * C + p) * d_mlp + neuron]);
      out.push({ ...e, start, tokens: rows[r].slice(start, end), activations: acts });
    });
  }
  return out;
}
