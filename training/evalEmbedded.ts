/**
 * Measures the circuits of a trained model directory (default models/embedded) with the workbench API
 * and prints them as JSON: repeated-token losses, induction / previous-token head scores, induction-head
 * ablation, IOI on held-out names, logit-lens accuracy on held-out Shakespeare.
 * Usage: npx tsx training/evalEmbedded.ts [DIR]
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { HookedTransformer } from '../hooks/HookedTransformer.ts';
import { Gpt2Tokenizer } from '../hooks/tokenizer.ts';
import { consecutiveWindows } from './data/batches.ts';
import { IOI_HELDOUT_NAMES, IOI_TRAIN_NAMES } from '../hooks/datasets/ioi.ts';
import { readTokenizedText } from './data/text.ts';
import { ablationOf, headScores, ioiMetrics, logitLensAccuracy, repeatedTokenLosses } from './circuits.ts';

const ROOT = fileURLToPath(new URL('..', import.meta.url));

/** The induction-row token pool (training_vocab.json, or trainer/state.json of a run directory). */
export async function seenPool(dir: string): Promise<number[]> {
  try {
    return (JSON.parse(await readFile(join(dir, 'training_vocab.json'), 'utf8')) as { induction_pool: number[] }).induction_pool;
  } catch {
    return (JSON.parse(await readFile(join(dir, 'trainer', 'state.json'), 'utf8')) as { info: { inductionPool: number[] } }).info.inductionPool;
  }
}

async function main(): Promise<void> {
  const dir = process.argv[2] ?? join(ROOT, 'models', 'embedded');
  const t0 = performance.now();
  const model = await HookedTransformer.fromPretrained(dir);
  const pool = await seenPool(dir);
  const rep = await repeatedTokenLosses(model, pool, { n: 50 });
  const scores = await headScores(model, pool);
  // heads scoring above 0.3, and the repeated-token losses with them zero-ablated
  const headsAbove = (grid: number[][]) => grid.flatMap((hs, l) => hs.flatMap((v, h) => (v > 0.3 ? [[l, h] as [number, number]] : [])));
  const ablate = async (heads: [number, number][]) => (heads.length > 0 ? repeatedTokenLosses(model, pool, { n: 50, interventions: ablationOf(heads) }) : null);
  const inductionHeads = headsAbove(scores.induction);
  const ablated = await ablate(inductionHeads);
  const shiftedHeads = headsAbove(scores.shiftedInduction);
  const shiftedAblated = await ablate(shiftedHeads);
  const ioiHeld = await ioiMetrics(model, IOI_HELDOUT_NAMES, { n: 100 });
  const ioiTrain = await ioiMetrics(model, IOI_TRAIN_NAMES, { n: 50, seed: 5 });
  const tok = await Gpt2Tokenizer.default();
  const text = await readTokenizedText(tok, join(ROOT, 'data', 'tinyshakespeare.txt'));
  const lens = await logitLensAccuracy(model, consecutiveWindows(text.heldOut, 8, model.cfg.n_ctx - 1, [50256]));
  const round = (x: number) => Math.round(x * 1000) / 1000;
  console.log(JSON.stringify({
    dir,
    repeated_tokens: { first_repeat_loss: round(rep.first), second_repeat_loss: round(rep.second), drop: round(rep.first - rep.second) },
    induction_scores: scores.induction.map((r) => r.map(round)),
    previous_token_scores: scores.previousToken.map((r) => r.map(round)),
    induction_heads: inductionHeads,
    ablated_second_repeat_loss: ablated ? round(ablated.second) : null,
    ablation_increase: ablated ? round(ablated.second - rep.second) : null,
    shifted_induction_scores: scores.shiftedInduction.map((r) => r.map(round)),
    shifted_induction_heads: shiftedHeads,
    shifted_heads_ablated_second_repeat_loss: shiftedAblated ? round(shiftedAblated.second) : null,
    shifted_heads_ablation_increase: shiftedAblated ? round(shiftedAblated.second - rep.second) : null,
    ioi_heldout: Object.fromEntries(Object.entries(ioiHeld).map(([k, v]) => [k, round(v)])),
    ioi_train_names: Object.fromEntries(Object.entries(ioiTrain).map(([k, v]) => [k, round(v)])),
    logit_lens_top1: lens.map(round),
    seconds: Math.round((performance.now() - t0) / 1000),
  }, null, 2));
  await model.dispose();
}

if (process.argv[1]?.endsWith('evalEmbedded.ts')) {
  main().catch((e: unknown) => {
    console.error(e instanceof Error ? e.stack : e);
    process.exit(1);
  });
}
