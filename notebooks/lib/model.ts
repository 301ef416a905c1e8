/** The model the notebooks load: models/embedded (trained for this repo), or the checkpoint in $LENSBOARD_NOTEBOOK_MODEL. */
import { existsSync, readdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { HookedTransformer } from '../../hooks/HookedTransformer.ts';
import { Sae } from '../../hooks/sae/Sae.ts';

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
 * The SAE notebook 07 reads: $LENSBOARD_NOTEBOOK_SAE (an SAE directory) when set, else the first SAE in the notebook
 * model's saes/ folder (the embedded model ships one).
 */
export async function loadNotebookSae(): Promise<Sae> {
  const env = process.env.LENSBOARD_NOTEBOOK_SAE;
  if (env) return Sae.fromPretrained(resolve(env));
  const root = join(notebookModelDir(), 'saes');
  const names = existsSync(root) ? readdirSync(root).filter((n) => existsSync(join(root, n, 'cfg.json'))).sort() : [];
  if (names.length === 0) throw new Error(`no SAE in ${root}; train one (npm run train:sae -- --out ${root}/NAME …) or set LENSBOARD_NOTEBOOK_SAE to an SAE directory`);
  return Sae.fromPretrained(join(root, names[0]));
}
