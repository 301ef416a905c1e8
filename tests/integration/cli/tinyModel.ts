/** A random tiny GPT-2 checkpoint with the real GPT-2 vocabulary (d_vocab 50257) and tokenizer files, so text prompts work. */
import { cp, mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { HookedTransformerConfig } from '../../../hooks/config.ts';
import { gpt2Config, randomWeights } from '../../../hooks/init.ts';
import { writeHfCheckpoint } from '../../helpers/checkpoints.ts';

export const TOKENIZER_DIR = fileURLToPath(new URL('../../../models/gpt2-tokenizer/', import.meta.url));
const TOKENIZER_FILES = ['vocab.json', 'merges.txt', 'tokenizer.json', 'tokenizer_config.json', 'special_tokens_map.json'];

/** 2 layers, d_model 32, 4 heads, d_vocab 50257, n_ctx 64. */
export function tinyGpt2Config(): HookedTransformerConfig {
  return gpt2Config({ model_name: 'tiny-gpt2', n_layers: 2, d_model: 32, n_heads: 4, d_vocab: 50257, n_ctx: 64 });
}

/** Writes the checkpoint (random weights of `seed`, float32 safetensors) and the tokenizer files into `dir`. */
export async function writeTinyCheckpoint(dir: string, seed = 7): Promise<HookedTransformerConfig> {
  const cfg = tinyGpt2Config();
  await mkdir(dir, { recursive: true });
  await writeHfCheckpoint(dir, cfg, randomWeights(cfg, { seed, randomAffine: true, std: 0.3 }), {
    dtype: 'F32', prefix: false, buffers: false, lmHead: false,
  });
  for (const f of TOKENIZER_FILES) await cp(join(TOKENIZER_DIR, f), join(dir, f));
  return cfg;
}
