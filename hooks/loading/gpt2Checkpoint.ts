/**
 * Load a Hugging Face GPT-2 checkpoint directory (config.json + model.safetensors, or
 * model.safetensors.index.json + shards) into Lensboard's TransformerWeights, one tensor at a time.
 */
import { stat } from 'node:fs/promises';
import { basename, join, resolve, sep } from 'node:path';
import type { HookedTransformerConfig } from '../config.ts';
import type { TransformerWeights } from '../weights.ts';
import { hfConfigToHooked } from './hfConfig.ts';
import { weightsFromHf } from './hfWeights.ts';
import { readJsonFile, resolveModelFile, type FileAccess } from './modelFiles.ts';
import { SafetensorsFile, isFile } from './safetensors.ts';

export interface LoadedCheckpoint {
  cfg: HookedTransformerConfig;
  weights: TransformerWeights;
  dir: string;
}

export interface LoadCheckpointOptions extends FileAccess {
  /** cfg.model_name; default: `org/name` for a Hugging Face cache snapshot, else the directory's name. */
  modelName?: string;
}

export const WEIGHTS_FILE = 'model.safetensors';
export const WEIGHTS_INDEX_FILE = 'model.safetensors.index.json';
const PREFIX = 'transformer.';
/** Non-persistent attention buffers that older GPT-2 checkpoints carry: the causal mask and its fill value. */
const IGNORED_BUFFER = /^h\.\d+\.attn\.(bias|masked_bias)$/;

const fmt = (shape: readonly number[]) => `[${shape.join(', ')}]`;

/** The model name a checkpoint directory implies (`org/name` inside a HF cache snapshot). */
export function modelNameFromDir(dir: string): string {
  const parts = resolve(dir).split(sep);
  const i = parts.lastIndexOf('snapshots');
  if (i >= 1 && i === parts.length - 2 && parts[i - 1].startsWith('models--')) {
    return parts[i - 1].slice('models--'.length).replace('--', '/');
  }
  return basename(resolve(dir));
}

/** HF GPT-2 tensor names (without `transformer.`) and shapes, in Conv1D's [in, out] layout. */
export function expectedHfShapes(cfg: HookedTransformerConfig): Map<string, number[]> {
  const { d_model: D, d_vocab: V, n_ctx: C, d_mlp: M } = cfg;
  const H = cfg.n_heads * cfg.d_head;
  const m = new Map<string, number[]>([
    ['wte.weight', [V, D]],
    ['wpe.weight', [C, D]],
  ]);
  for (let l = 0; l < cfg.n_layers; l++) {
    const p = `h.${l}.`;
    m.set(`${p}ln_1.weight`, [D]);
    m.set(`${p}ln_1.bias`, [D]);
    m.set(`${p}attn.c_attn.weight`, [D, 3 * H]);
    m.set(`${p}attn.c_attn.bias`, [3 * H]);
    m.set(`${p}attn.c_proj.weight`, [H, D]);
    m.set(`${p}attn.c_proj.bias`, [D]);
    m.set(`${p}ln_2.weight`, [D]);
    m.set(`${p}ln_2.bias`, [D]);
    m.set(`${p}mlp.c_fc.weight`, [D, M]);
    m.set(`${p}mlp.c_fc.bias`, [M]);
    m.set(`${p}mlp.c_proj.weight`, [M, D]);
    m.set(`${p}mlp.c_proj.bias`, [D]);
  }
  m.set('ln_f.weight', [D]);
  m.set('ln_f.bias', [D]);
  return m;
}

/** Where each tensor lives: canonical name (no `transformer.`) → file and stored key. */
type TensorIndex = Map<string, { file: SafetensorsFile; key: string }>;

/** A sharded checkpoint's model.safetensors.index.json: tensor name → shard file, and the distinct shard files. */
export async function readShardIndex(indexPath: string, access: FileAccess = {}): Promise<{ weightMap: Record<string, string>; shards: string[] }> {
  const index = await readJsonFile(indexPath, access);
  const weightMap = (index as { weight_map?: unknown } | null)?.weight_map;
  if (typeof weightMap !== 'object' || weightMap === null || Array.isArray(weightMap)) {
    throw new Error(`${indexPath} has no "weight_map" object mapping tensor names to shard files`);
  }
  const shards = [...new Set(Object.values(weightMap as Record<string, unknown>))];
  for (const shard of shards) {
    if (typeof shard !== 'string' || shard.includes('..') || shard.startsWith('/')) {
      throw new Error(`${indexPath} names an invalid shard file ${JSON.stringify(shard)}`);
    }
  }
  return { weightMap: weightMap as Record<string, string>, shards: shards as string[] };
}

async function openWeightFiles(dir: string, access: FileAccess): Promise<SafetensorsFile[]> {
  const single = join(dir, WEIGHTS_FILE);
  const indexPath = join(dir, WEIGHTS_INDEX_FILE);
  if (await isFile(single)) return [await SafetensorsFile.open(await resolveModelFile(single, access))];
  if (!(await isFile(indexPath))) {
    const hasBin = await isFile(join(dir, 'pytorch_model.bin'));
    throw new Error(
      `No ${WEIGHTS_FILE} in ${dir}: expected ${single} (or a sharded ${WEIGHTS_INDEX_FILE} with its shards)` +
        (hasBin ? '; the directory has pytorch_model.bin, but only safetensors weights are supported' : ''),
    );
  }
  const { weightMap, shards: shardNames } = await readShardIndex(indexPath, access);
  const files: SafetensorsFile[] = [];
  try {
    for (const shard of shardNames) {
      const shardPath = join(dir, shard);
      if (!(await isFile(shardPath))) throw new Error(`Missing shard ${shardPath} (listed in ${indexPath})`);
      files.push(await SafetensorsFile.open(await resolveModelFile(shardPath, access)));
    }
    for (const [name, shard] of Object.entries(weightMap)) {
      const f = files[shardNames.indexOf(shard)];
      if (!f.entries.has(name)) throw new Error(`${indexPath} places tensor '${name}' in ${f.path}, which does not contain it`);
    }
  } catch (err) {
    await Promise.all(files.map((f) => f.close()));
    throw err;
  }
  return files;
}

function buildIndex(files: SafetensorsFile[]): TensorIndex {
  const index: TensorIndex = new Map();
  for (const file of files) {
    for (const key of file.names()) {
      const name = key.startsWith(PREFIX) ? key.slice(PREFIX.length) : key;
      const prev = index.get(name);
      if (prev) {
        throw new Error(`Tensor '${name}' appears twice: as '${prev.key}' in ${prev.file.path} and as '${key}' in ${file.path}`);
      }
      index.set(name, { file, key });
    }
  }
  return index;
}

/**
 * config.json against the tensors' header shapes, before anything the config sizes is built: a wrong count or width
 * is named by its config field (n_layer, n_embd, vocab_size, n_positions, n_inner), not found later as a shape mismatch
 * or a failed allocation.
 */
function checkConfigAgainstWeights(index: TensorIndex, cfg: HookedTransformerConfig, dir: string): void {
  const shape = (name: string) => {
    const t = index.get(name);
    return t ? t.file.entry(t.key).shape : null;
  };
  const blocks = new Set([...index.keys()].map((k) => /^h\.(\d+)\./.exec(k)?.[1]).filter((x) => x !== undefined)).size;
  const wrong: string[] = [];
  if (blocks !== cfg.n_layers) wrong.push(`n_layer is ${cfg.n_layers} but the weights hold ${blocks} blocks (h.0 …)`);
  const wte = shape('wte.weight');
  if (wte && wte.length === 2) {
    if (wte[0] !== cfg.d_vocab) wrong.push(`vocab_size is ${cfg.d_vocab} but wte.weight has ${wte[0]} rows`);
    if (wte[1] !== cfg.d_model) wrong.push(`n_embd is ${cfg.d_model} but wte.weight is ${fmt(wte)}`);
  }
  const wpe = shape('wpe.weight');
  if (wpe && wpe.length === 2 && wpe[0] !== cfg.n_ctx) wrong.push(`n_positions is ${cfg.n_ctx} but wpe.weight has ${wpe[0]} rows`);
  const fc = shape('h.0.mlp.c_fc.weight');
  if (fc && fc.length === 2 && fc[1] !== cfg.d_mlp) wrong.push(`n_inner is ${cfg.d_mlp} but h.0.mlp.c_fc.weight is ${fmt(fc)}`);
  if (wrong.length > 0) throw new Error(`config.json of ${dir} does not match its weights: ${wrong.join('; ')}`);
}

/** Check names and shapes of every tensor before reading any data. */
function validateIndex(index: TensorIndex, cfg: HookedTransformerConfig, dir: string): void {
  const expected = expectedHfShapes(cfg);
  const missing = [...expected.keys()].filter((k) => !index.has(k));
  if (missing.length > 0) {
    const list = missing.slice(0, 8).join(', ') + (missing.length > 8 ? `, … (${missing.length} in all)` : '');
    throw new Error(`Checkpoint ${dir} is missing tensor(s): ${list} (keys may carry the 'transformer.' prefix)`);
  }
  const unexpected: string[] = [];
  for (const [name, { file, key }] of index) {
    const e = file.entry(key);
    const want = name === 'lm_head.weight' ? [cfg.d_vocab, cfg.d_model] : expected.get(name);
    if (want === undefined) {
      if (!IGNORED_BUFFER.test(name)) unexpected.push(key);
      continue;
    }
    if (e.shape.length !== want.length || e.shape.some((d, i) => d !== want[i])) {
      throw new Error(`Tensor '${key}' in ${file.path} has shape ${fmt(e.shape)}, expected ${fmt(want)} for this config.json`);
    }
  }
  if (unexpected.length > 0) {
    throw new Error(
      `Checkpoint ${dir} has unexpected tensor(s) for GPT2LMHeadModel: ${unexpected.slice(0, 8).join(', ')}` +
        (unexpected.length > 8 ? `, … (${unexpected.length} in all)` : ''),
    );
  }
}

export async function loadGpt2Checkpoint(dir: string, opts: LoadCheckpointOptions = {}): Promise<LoadedCheckpoint> {
  const st = await stat(dir).catch(() => null);
  if (!st || !st.isDirectory()) {
    throw new Error(`Checkpoint directory ${dir} does not exist (expected a directory with config.json and ${WEIGHTS_FILE})`);
  }
  const configPath = join(dir, 'config.json');
  if (!(await isFile(configPath))) {
    throw new Error(`No config.json in ${dir}: a GPT-2 checkpoint directory needs config.json and ${WEIGHTS_FILE} (or ${WEIGHTS_INDEX_FILE} + shards)`);
  }
  const configJson = await readJsonFile(configPath, opts);
  const cfg = hfConfigToHooked(configJson, opts.modelName ?? modelNameFromDir(dir));

  const files = await openWeightFiles(dir, opts);
  try {
    const index = buildIndex(files);
    checkConfigAgainstWeights(index, cfg, dir);
    validateIndex(index, cfg, dir);
    const read = (name: string) => {
      const t = index.get(name)!;
      return t.file.readTensor(t.key);
    };
    const weights = await weightsFromHf(cfg, read, (name) => index.has(name));
    return { cfg, weights, dir };
  } finally {
    await Promise.all(files.map((f) => f.close()));
  }
}
