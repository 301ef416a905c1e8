/**
 * Measures the circuits of a trained model directory (default models/embedded) through the workbench API and prints
 * them as JSON — the figures of its model card and of issue 19's targets: induction on random tokens from GPT-2's whole
 * vocabulary (50 rows BOS + span + span, spans 20–40) and on five repeated held-out sentences, TransformerLens's head
 * detector, ablation of the induction heads, TransformerLens's 8 IOI prompts, IOI on held-out and training names, and
 * logit-lens accuracy on held-out Shakespeare.
 * Usage: npx tsx training/evalEmbedded.ts [DIR]
 */
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { HookedTransformer } from '../hooks/HookedTransformer.ts';
import { detectHead } from '../hooks/analysis/headDetector.ts';
import { IOI_HELDOUT_NAMES, IOI_TRAIN_NAMES } from '../hooks/datasets/ioi.ts';
import type { Tensor } from '../hooks/tensor.ts';
import { Gpt2Tokenizer } from '../hooks/tokenizer.ts';
import {
  ablationOf, ioiMetrics, logitLensAccuracy, repeatedRows, repeatedRowStats, repeatedSentenceRows, TL_IOI_PROMPTS, tlIoiLogitDiffs, wholeVocabulary,
} from './circuits.ts';
import { consecutiveWindows } from './data/batches.ts';
import { readTokenizedText } from './data/text.ts';

const ROOT = fileURLToPath(new URL('..', import.meta.url));

async function main(): Promise<void> {
  const dir = process.argv[2] ?? join(ROOT, 'models', 'embedded');
  const t0 = performance.now();
  const model = await HookedTransformer.fromPretrained(dir);
  const { n_layers: L, n_heads: H } = model.cfg;
  const round = (x: number) => Math.round(x * 1000) / 1000;
  const grid = (g: number[][]) => g.map((r) => r.map(round));
  const tensorGrid = (t: Tensor) => Array.from({ length: L }, (_v, l) => Array.from({ length: H }, (_w, h) => round(t.get(l, h))));
  const vocab = repeatedRows(model.cfg.bos_token_id, wholeVocabulary(model.cfg), { n: 50, minSpan: 20, maxSpan: 40, seed: 0 });
  const clean = await repeatedRowStats(model, vocab.rows, vocab.spans);
  const inductionHeads = clean.secondCopyStripe.flatMap((hs, l) => hs.flatMap((v, h) => (l >= 1 && v >= 0.3 ? [[l, h] as [number, number]] : [])));
  const ablated = inductionHeads.length > 0 ? await repeatedRowStats(model, vocab.rows, vocab.spans, ablationOf(inductionHeads)) : null;
  const sentences = repeatedSentenceRows(model);
  const text = await repeatedRowStats(model, sentences.rows, sentences.spans);
  const tlIoi = await tlIoiLogitDiffs(model);
  const ioiHeld = await ioiMetrics(model, IOI_HELDOUT_NAMES, { n: 100 });
  const ioiTrain = await ioiMetrics(model, IOI_TRAIN_NAMES, { n: 50, seed: 5 });
  const tok = await Gpt2Tokenizer.default();
  const shakespeare = await readTokenizedText(tok, join(ROOT, 'data', 'tinyshakespeare.txt'));
  const lens = await logitLensAccuracy(model, consecutiveWindows(shakespeare.heldOut, 8, model.cfg.n_ctx - 1, [50256]));
  console.log(JSON.stringify({
    dir,
    whole_vocabulary_repeats: {
      first_copy_loss: round(clean.first), second_copy_loss: round(clean.second), drop: round(clean.first - clean.second),
      second_copy_stripe: grid(clean.secondCopyStripe), previous_token: grid(clean.previousToken),
      detect_head_induction: tensorGrid(await detectHead(model, vocab.rows, 'induction_head')),
      detect_head_previous_token: tensorGrid(await detectHead(model, vocab.rows, 'previous_token_head')),
      induction_heads: inductionHeads,
      ablated_second_copy_loss: ablated ? round(ablated.second) : null,
      ablation_increase: ablated ? round(ablated.second - clean.second) : null,
    },
    repeated_sentences: {
      tokens: sentences.spans, first_copy_loss: round(text.first), second_copy_loss: round(text.second), drop: round(text.first - text.second),
      second_copy_stripe: grid(text.secondCopyStripe),
    },
    tl_ioi: TL_IOI_PROMPTS.map((p, i) => ({ prompt: p.prompt, correct: p.correct, logit_diff: round(tlIoi[i]) })),
    tl_ioi_mean: round(tlIoi.reduce((a, b) => a + b, 0) / tlIoi.length),
    ioi_heldout: Object.fromEntries(Object.entries(ioiHeld).map(([k, v]) => [k, round(v)])),
    ioi_train_names: Object.fromEntries(Object.entries(ioiTrain).map(([k, v]) => [k, round(v)])),
    logit_lens_top1: lens.map(round),
    seconds: Math.round((performance.now() - t0) / 1000),
  }, null, 2));
  await model.dispose();
}

main().catch((e: unknown) => {
  console.error(e instanceof Error ? e.stack : e);
  process.exit(1);
});
