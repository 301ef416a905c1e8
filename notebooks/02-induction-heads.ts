/** Notebook 02 (source of 02-induction-heads.ipynb): finding previous-token and induction heads with the head detector. */
// %% [markdown]
// # 02 · Finding induction heads
//
// An **induction head** completes patterns: having seen `… A B … A`, it predicts `B`. It attends from the second `A`
// to the token *after* the first `A` and copies it. It needs a partner: a **previous-token head** in an earlier layer
// that writes "the token before me was `A`" into each position, so that the induction head's keys can find it.
// Together they are the simplest circuit that spans two layers (Olsson et al., 2022).
//
// The cleanest test is **repeated random tokens**: `BOS, t₁ … tₙ, t₁ … tₙ`. The first copy is unpredictable noise;
// the second copy is perfectly predictable — but only for a model that can look back and copy.

// %%
import { detectHead, generateRepeatedTokens, lossByPosition } from '../hooks/analysis/index.ts';
import { attentionHeadFigure, headScoreFigure, lossByPositionFigure, rankHeads, type HeadsDetectData } from '../hooks/figures/index.ts';
import { getActName } from '../hooks/hookPoints.ts';
import { attentionData, headGrid, lossData } from './lib/data.ts';
import { plot, setupPlotly, table } from './lib/display.ts';
import { describeModel, loadNotebookModel } from './lib/model.ts';

const model = await loadNotebookModel();
console.log(describeModel(model));

// %%
// Loads plotly.js into the page once (inline, no CDN) for the HTML figures below.
await setupPlotly();

// %% [markdown]
// ## Loss on repeated random tokens
//
// `generateRepeatedTokens` draws a random span from the whole vocabulary (every token but BOS, uniformly) and repeats
// it, as TransformerLens's `generate_repeated_tokens` does. `lossByPosition` is the cross-entropy of predicting each next
// token, averaged over the batch.

// %%
const seqLen = Math.min(20, Math.floor((model.cfg.n_ctx - 1) / 2));
const repeated = generateRepeatedTokens(model.cfg, { seqLen, batch: 4, seed: 0 }); // [4, 1 + 2·seqLen]
const loss = await lossByPosition(model, repeated); // [2·seqLen]: entry i predicts token i + 1
const lossFig = lossData(loss, seqLen);
await plot(lossByPositionFigure(lossFig));

// %% [markdown]
// On the first copy the loss is high: the tokens are random, nothing in the context predicts them. On the second copy a
// model with induction heads does far better: the drop between the two dashed lines is the **in-context learning** the
// heads provide.

// %%
const lp = lossFig.lossByPosition!;
await table(['span', 'mean loss (nats)'], [['first copy', Number(lp.firstRepeat)], ['second copy', Number(lp.secondRepeat)]]);

// %% [markdown]
// ## Scoring every head
//
// `detectHead` (TransformerLens's `detect_head`) compares each head's attention pattern with an ideal pattern and
// scores the match in [0, 1]:
//
// - **previous-token**: each position attends to the one before it;
// - **induction**: each position in the second copy attends to the token after its earlier occurrence
//   (`seqLen − 1` positions back).
//
// Scores are averaged over the repeated sequences.

// %%
const prevScores = await detectHead(model, repeated, 'previous_token_head'); // [n_layers, n_heads]
const inductionScores = await detectHead(model, repeated, 'induction_head'); // [n_layers, n_heads]
const detect: HeadsDetectData = {
  ...headGrid(prevScores),
  scores: [
    { kind: 'previous_token', values: headGrid(prevScores).values },
    { kind: 'induction', values: headGrid(inductionScores).values },
  ],
  lossByPosition: null,
};
const topInduction = rankHeads(headGrid(inductionScores), 3);
const topPrevious = rankHeads(headGrid(prevScores), 3);
await plot(headScoreFigure(detect, 'previous_token', topPrevious.slice(0, 1)));

// %%
await plot(headScoreFigure(detect, 'induction', topInduction.slice(0, 1)));

// %%
await table(['rank', 'previous-token head', 'score', 'induction head', 'score'], [0, 1, 2].map((i) => [
  i + 1, topPrevious[i].label, topPrevious[i].value, topInduction[i].label, topInduction[i].value,
]));

// %% [markdown]
// The circuit predicts an order: the best previous-token head should sit in an **earlier layer** than the best
// induction head. Notebook 04 checks the same pair from the weights alone (K-composition).
//
// ## Seeing it: the induction head's attention
//
// On one repeated sequence, the induction head's pattern shows a stripe `seqLen − 1` below the diagonal: every token of the
// second copy looks at the token that followed its twin in the first copy.

// %%
const best = topInduction[0];
const one = repeated[0];
const [, cache] = await model.runWithCache([one], {
  namesFilter: Array.from({ length: model.cfg.n_layers }, (_v, l) => getActName('pattern', l)),
  returnType: 'none',
});
await plot(attentionHeadFigure(attentionData(model, cache, one), best.layer, best.head, { maxTicks: 12 }), { height: 560 });

// %% [markdown]
// And the previous-token head: a stripe right below the diagonal.
//
// On the embedded model (see its model card) this is the classic two-layer circuit: a previous-token head in layer 0
// (L0H3, score ≈ 0.64) and four induction heads in layer 1 (L1H0–L1H3, `detectHead` scores ≈ 0.40–0.41 on whole-vocabulary
// repeats, 0.81–0.83 of the second copy's attention on the stripe). Their keys are built from the previous-token head's output
// (K-composition); notebook 04 and the model card show that the weight-only scores computed from the raw token embeddings miss it here, and find it once read past block 0's MLP.

// %%
await plot(attentionHeadFigure(attentionData(model, cache, one), topPrevious[0].layer, topPrevious[0].head, { maxTicks: 12 }), { height: 560 });

// %%
console.log(`induction head ${best.label} (score ${best.value.toFixed(3)}), previous-token head ${topPrevious[0].label} (score ${topPrevious[0].value.toFixed(3)})`);
await model.dispose();
