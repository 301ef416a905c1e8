/**
 * Exports trainer parameters as a Hugging Face GPT-2 checkpoint directory (config.json,
 * model.safetensors in HF Conv1D layout, GPT-2's tokenizer files or the caller's), expanding the grouped vocabulary:
 * each seen token gets its own embedding row and every unseen token gets the shared row u.
 */
import { hookedToHfConfig } from '../hooks/loading/hfConfig.ts';
import { copyFile, mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { HookedTransformerConfig } from '../hooks/config.ts';
import { writeSafetensors, type SafetensorsDtype } from '../hooks/loading/safetensors.ts';
import { DEFAULT_GPT2_TOKENIZER_DIR } from '../hooks/tokenizer.ts';
import type { TransformerWeights } from '../hooks/weights.ts';
import { weightsFromHf } from '../hooks/loading/hfWeights.ts';
import { getParam, unembedParamName, type ParamSet } from './model/params.ts';
import type { SeenVocab } from './model/vocab.ts';

export const TOKENIZER_FILES = ['tokenizer.json', 'tokenizer_config.json', 'vocab.json', 'merges.txt', 'special_tokens_map.json'];

/** The full [d_vocab, d_model] token embedding: seen rows from the classes, the unseen row u everywhere else. */
export function expandEmbedding(cfg: HookedTransformerConfig, vocab: SeenVocab, wteClasses: Float32Array): Float32Array {
  const D = cfg.d_model;
  if (wteClasses.length !== vocab.nClasses * D) throw new Error(`expandEmbedding: class embedding has ${wteClasses.length} values; expected ${vocab.nClasses}·${D}`);
  const out = new Float32Array(cfg.d_vocab * D);
  for (let t = 0; t < cfg.d_vocab; t++) {
    const c = vocab.classOf[t];
    out.set(wteClasses.subarray(c * D, (c + 1) * D), t * D);
  }
  return out;
}

/** The config.json Hugging Face writes for a GPT-2 with this config. */
export const hfConfig = hookedToHfConfig;

/** HF tensor name → [shape, data], with the token embedding (and an untied lm_head) expanded to d_vocab rows; no lm_head when tied. */
export function hfTensorsFromParams(cfg: HookedTransformerConfig, vocab: SeenVocab, params: ParamSet): Map<string, [number[], Float32Array]> {
  const out = new Map<string, [number[], Float32Array]>();
  for (const s of params.specs) {
    if (s.name === 'wte.weight' || s.name === 'lm_head.weight') out.set(s.name, [[cfg.d_vocab, cfg.d_model], expandEmbedding(cfg, vocab, getParam(params, s.name))]);
    else out.set(s.name, [s.shape, getParam(params, s.name)]);
  }
  return out;
}

/**
 * Lensboard's TransformerWeights (full vocabulary, W_U = lm_headᵀ, or W_Eᵀ when tied; b_U = 0) for the
 * trainer's parameters: the exported HF tensors through the loader's own mapping (weightsFromHf), every
 * array a copy (a model built from them owns them and transposes them in place).
 */
export function toTransformerWeights(cfg: HookedTransformerConfig, vocab: SeenVocab, params: ParamSet): Promise<TransformerWeights> {
  const tensors = hfTensorsFromParams(cfg, vocab, params);
  return weightsFromHf(cfg, (name) => Float32Array.from(tensors.get(name)![1]), (name) => tensors.has(name));
}

export interface ExportOptions {
  /** 'auto' (default): F32 when the weights fit in `maxBytes` (default 29e6, leaving room for the 2.6 MB of tokenizer files under 32 MB), else F16. */
  dtype?: SafetensorsDtype | 'auto';
  maxBytes?: number;
  /** Copy the GPT-2 tokenizer files (default true; ignored when `tokenizerFiles` is given). */
  tokenizer?: boolean;
  /** Write these tokenizer files (name → text) instead of GPT-2's, e.g. the addition model's character-level ones. */
  tokenizerFiles?: Record<string, string>;
  /** Extra string metadata in model.safetensors. */
  metadata?: Record<string, string>;
}

/** Writes config.json, model.safetensors and the tokenizer files into `dir`; returns the dtype used. */
export async function exportHfCheckpoint(dir: string, cfg: HookedTransformerConfig, vocab: SeenVocab, params: ParamSet, opts: ExportOptions = {}): Promise<SafetensorsDtype> {
  await mkdir(dir, { recursive: true });
  const tensors = hfTensorsFromParams(cfg, vocab, params);
  let total = 0;
  for (const [, [, d]] of tensors) total += d.length;
  const dtype: SafetensorsDtype = opts.dtype === undefined || opts.dtype === 'auto' ? (total * 4 <= (opts.maxBytes ?? 29e6) ? 'F32' : 'F16') : opts.dtype;
  const record = Object.fromEntries([...tensors].map(([name, [shape, data]]) => [name, { dtype, shape, data }]));
  const config = { ...hfConfig(cfg), tie_word_embeddings: unembedParamName(params) === 'wte.weight' };
  await writeFile(join(dir, 'config.json'), JSON.stringify(config, null, 2) + '\n');
  await writeSafetensors(join(dir, 'model.safetensors'), record, { format: 'pt', ...opts.metadata });
  if (opts.tokenizerFiles) {
    for (const [f, text] of Object.entries(opts.tokenizerFiles)) await writeFile(join(dir, f), text);
  } else if (opts.tokenizer ?? true) {
    for (const f of TOKENIZER_FILES) await copyFile(join(DEFAULT_GPT2_TOKENIZER_DIR, f), join(dir, f));
  }
  return dtype;
}
