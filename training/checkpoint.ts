/**
 * Training checkpoints: the Hugging Face model directory (export.ts) plus side files in
 * `<dir>/trainer/` (state.json: step, config, vocabulary, options, history; state.safetensors: the
 * parameters in the trainer's grouped layout and the AdamW moments) so a run can be resumed exactly.
 */
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type { HookedTransformerConfig } from '../hooks/config.ts';
import { readSafetensors, writeSafetensors } from '../hooks/loading/safetensors.ts';
import { exportHfCheckpoint, type ExportOptions } from './export.ts';
import { getParam, paramSpecs, type ParamSet } from './model/params.ts';
import { buildSeenVocab, type SeenVocab } from './model/vocab.ts';
import type { AdamWState } from './optim.ts';

export const TRAINER_DIR = 'trainer';

export interface TrainerStateJson {
  /** Number of completed optimisation steps. */
  step: number;
  cfg: HookedTransformerConfig;
  seenTokens: number[];
  /** Anything the caller wants to keep (options, data description, history). */
  info: Record<string, unknown>;
}

export interface SavedState {
  step: number;
  cfg: HookedTransformerConfig;
  vocab: SeenVocab;
  params: ParamSet;
  opt: AdamWState;
  info: Record<string, unknown>;
}

/** Writes the HF model and the trainer side files into `dir`. */
export async function saveCheckpoint(dir: string, s: SavedState, exportOpts: ExportOptions = {}): Promise<void> {
  await exportHfCheckpoint(dir, s.cfg, s.vocab, s.params, exportOpts);
  const tdir = join(dir, TRAINER_DIR);
  await mkdir(tdir, { recursive: true });
  const tensors: Record<string, { dtype: 'F32'; shape: number[]; data: Float32Array }> = {};
  for (const spec of s.params.specs) {
    tensors[`param/${spec.name}`] = { dtype: 'F32', shape: spec.shape, data: getParam(s.params, spec.name) };
    tensors[`adam_m/${spec.name}`] = { dtype: 'F32', shape: spec.shape, data: getParam(s.opt.m, spec.name) };
    tensors[`adam_v/${spec.name}`] = { dtype: 'F32', shape: spec.shape, data: getParam(s.opt.v, spec.name) };
  }
  await writeSafetensors(join(tdir, 'state.safetensors'), tensors, { adam_t: String(s.opt.t), step: String(s.step) });
  const json: TrainerStateJson = { step: s.step, cfg: s.cfg, seenTokens: Array.from(s.vocab.seen), info: s.info };
  await writeFile(join(tdir, 'state.json'), JSON.stringify(json) + '\n');
}

export function hasCheckpoint(dir: string): boolean {
  return existsSync(join(dir, TRAINER_DIR, 'state.json')) && existsSync(join(dir, TRAINER_DIR, 'state.safetensors'));
}

/** Reads the side files written by saveCheckpoint. */
export async function loadCheckpoint(dir: string): Promise<SavedState> {
  if (!hasCheckpoint(dir)) throw new Error(`No trainer checkpoint in ${dir}: expected ${TRAINER_DIR}/state.json and ${TRAINER_DIR}/state.safetensors (written by the trainer)`);
  const json = JSON.parse(await readFile(join(dir, TRAINER_DIR, 'state.json'), 'utf8')) as TrainerStateJson;
  const vocab = buildSeenVocab(json.seenTokens, json.cfg.d_vocab);
  const { tensors, metadata } = await readSafetensors(join(dir, TRAINER_DIR, 'state.safetensors'));
  const specs = paramSpecs(json.cfg, vocab.nClasses, 'param/lm_head.weight' in tensors);
  const take = (prefix: string): ParamSet => ({
    specs,
    data: new Map(specs.map((sp) => {
      const t = tensors[`${prefix}/${sp.name}`];
      if (!t) throw new Error(`${dir}: trainer state lacks ${prefix}/${sp.name}`);
      if (t.shape.join(',') !== sp.shape.join(',')) throw new Error(`${dir}: ${prefix}/${sp.name} has shape [${t.shape}] but the config needs [${sp.shape}]`);
      return [sp.name, t.data];
    })),
  });
  const t = Number(metadata.adam_t);
  if (!Number.isInteger(t) || t < 0) throw new Error(`${dir}: trainer state has no valid adam_t`);
  return { step: json.step, cfg: json.cfg, vocab, params: take('param'), opt: { t, m: take('adam_m'), v: take('adam_v') }, info: json.info };
}
