/**
 * Exports trainer parameters as a Hugging Face GPT-2 checkpoint directory (config.json,
 * model.safetensors in HF Conv1D layout, GPT-2 tokenizer files), expanding the grouped vocabulary:
 * each seen token gets its own embedding row and every unseen token gets the shared row u.
 */
import { hookedToHfConfig } from '../hooks/loading/hfConfig.ts';
import { copyFile, mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { HookedTransformerConfig } from '../hooks/config.ts';
import { writeSafetensors, type SafetensorsDtype } from '../hooks/loading/safetensors.ts';
import { transposed } from '../hooks/ops/index.ts';
import { DEFAULT_GPT2_TOKENIZER_DIR } from '../hooks/tokenizer.ts';
import type { BlockWeights, TransformerWeights } from '../hooks/weights.ts';
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

/** Lensboard's TransformerWeights (full vocabulary, W_U = lm_headᵀ, or W_Eᵀ when tied; b_U = 0) for the trainer's parameters. */
export function toTransformerWeights(cfg: HookedTransformerConfig, vocab: SeenVocab, params: ParamSet): TransformerWeights {
  const { d_model: D, d_vocab: V } = cfg;
  const H = cfg.n_heads * cfg.d_head;
  const P = (n: string) => Float32Array.from(getParam(params, n));
  const W_E = expandEmbedding(cfg, vocab, getParam(params, 'wte.weight'));
  const blocks: BlockWeights[] = [];
  for (let l = 0; l < cfg.n_layers; l++) {
    const h = `h.${l}.`;
    const cAttn = getParam(params, `${h}attn.c_attn.weight`); // [D, 3H]
    const cBias = getParam(params, `${h}attn.c_attn.bias`); // [3H]
    const split = (part: number) => {
      const w = new Float32Array(D * H);
      for (let i = 0; i < D; i++) w.set(cAttn.subarray(i * 3 * H + part * H, i * 3 * H + (part + 1) * H), i * H);
      return w;
    };
    blocks.push({
      ln1: { w: P(`${h}ln_1.weight`), b: P(`${h}ln_1.bias`) },
      W_Q: split(0), b_Q: cBias.slice(0, H),
      W_K: split(1), b_K: cBias.slice(H, 2 * H),
      W_V: split(2), b_V: cBias.slice(2 * H, 3 * H),
      W_O: P(`${h}attn.c_proj.weight`), b_O: P(`${h}attn.c_proj.bias`),
      ln2: { w: P(`${h}ln_2.weight`), b: P(`${h}ln_2.bias`) },
      W_in: P(`${h}mlp.c_fc.weight`), b_in: P(`${h}mlp.c_fc.bias`),
      W_out: P(`${h}mlp.c_proj.weight`), b_out: P(`${h}mlp.c_proj.bias`),
    });
  }
  const head = unembedParamName(params) === 'wte.weight' ? W_E : expandEmbedding(cfg, vocab, getParam(params, 'lm_head.weight'));
  const W_U = transposed(head, V, D); // [d_model, d_vocab]
  return { W_E, W_pos: P('wpe.weight'), blocks, ln_final: { w: P('ln_f.weight'), b: P('ln_f.bias') }, W_U, b_U: new Float32Array(V) };
}

export interface ExportOptions {
  /** 'auto' (default): F32 when the weights fit in `maxBytes` (default 29e6, leaving room for the 2.6 MB of tokenizer files under 32 MB), else F16. */
  dtype?: SafetensorsDtype | 'auto';
  maxBytes?: number;
  /** Copy the GPT-2 tokenizer files (default true). */
  tokenizer?: boolean;
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
  if (opts.tokenizer ?? true) {
    for (const f of TOKENIZER_FILES) await copyFile(join(DEFAULT_GPT2_TOKENIZER_DIR, f), join(dir, f));
  }
  return dtype;
}
