/** The model the notebooks load: models/embedded (trained for this repo), or the checkpoint in $LENSBOARD_NOTEBOOK_MODEL. */
import { existsSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { HookedTransformer } from '../../hooks/HookedTransformer.ts';

export const EMBEDDED_DIR = fileURLToPath(new URL('../../models/embedded/', import.meta.url));

/** The checkpoint directory: $LENSBOARD_NOTEBOOK_MODEL when set (a directory or a model name), else models/embedded. */
export function notebookModelDir(): string {
  const env = process.env.LENSBOARD_NOTEBOOK_MODEL;
  return env ? (existsSync(env) ? resolve(env) : env) : EMBEDDED_DIR;
}

/** Loads the notebook model with TransformerLens's default weight processing. */
export async function loadNotebookModel(): Promise<HookedTransformer> {
  const dir = notebookModelDir();
  if (dir === EMBEDDED_DIR && !existsSync(join(dir, 'config.json'))) {
    throw new Error(`the embedded model is not in ${dir}; train it (npm run train:embedded) or set LENSBOARD_NOTEBOOK_MODEL to a checkpoint directory`);
  }
  return HookedTransformer.fromPretrained(dir);
}

/** One line about the model: its shape and where it came from. */
export function describeModel(model: HookedTransformer): string {
  const c = model.cfg;
  return `${c.model_name}: ${c.n_layers} layers × ${c.n_heads} heads, d_model ${c.d_model}, d_head ${c.d_head}, d_mlp ${c.d_mlp}, d_vocab ${c.d_vocab}, n_ctx ${c.n_ctx} (from ${notebookModelDir()})`;
}

/**
 * The tokens a model was trained to do induction on: `induction_pool` of the checkpoint's training_vocab.json (the
 * embedded model saw only part of GPT-2's vocabulary; unseen tokens share one embedding, so a model cannot copy them).
 * Undefined for a checkpoint without the file: then any token will do.
 */
export function inductionPool(): number[] | undefined {
  const file = join(notebookModelDir(), 'training_vocab.json');
  if (!existsSync(file)) return undefined;
  const pool = (JSON.parse(readFileSync(file, 'utf8')) as { induction_pool?: number[] }).induction_pool;
  return pool && pool.length > 0 ? pool : undefined;
}
