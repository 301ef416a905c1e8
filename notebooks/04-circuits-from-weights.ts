/** Notebook 04 (source of 04-circuits-from-weights.ipynb): QK/OV circuits, composition and copying scores read from the weights alone. */
// %% [markdown]
// # 04 · Circuits from the weights
//
// Notebooks 02 and 03 watched the model *run*. "A Mathematical Framework for Transformer Circuits" (Elhage et al., 2021)
// reads much of the same story from the **weights alone**. Each attention head splits into two low-rank circuits:
//
// - the **QK circuit** `W_Q W_Kᵀ` (`d_model × d_model`): which residual-stream directions attend to which — *where the head looks*;
// - the **OV circuit** `W_V W_O` (`d_model × d_model`): what the head writes, given what it attends to — *what the head moves*.
//
// Both have rank at most `d_head`, so Lensboard keeps them **factored** (`FactoredMatrix`, as TransformerLens): products,
// norms, SVDs and eigenvalues come from the small factors, never from the dense `d_model × d_model` matrix.

// %%
import { detectHead, generateRepeatedTokens } from '../hooks/analysis/index.ts';
import {
  allCompositionScores, blockZeroMlpInputs, compositionBaseline, copyingScores, effectiveEmbedding, embeddingTokenSet, mlpLinearization,
  positionalPattern, previousTokenScoresFromWeights, topCopiedTokens,
} from '../hooks/circuits/index.ts';
import {
  compositionFigure, copyingFigure, headGridFigure, positionalFigure, rankHeads, topCopiedFigure, type CompositionData,
} from '../hooks/figures/index.ts';
import { headGrid } from './lib/data.ts';
import { plot, setupPlotly, table } from './lib/display.ts';
import { describeModel, loadNotebookModel } from './lib/model.ts';

const model = await loadNotebookModel();
console.log(describeModel(model));

// %%
// Loads plotly.js into the page once (inline, no CDN) for the HTML figures below.
await setupPlotly();

// %% [markdown]
// ## QK and OV as factored matrices
//
// `model.QK` and `model.OV` hold every head at once: shape `[n_layers, n_heads, d_model, d_model]`, stored as the factors
// `A = W_V [.., d_model, d_head]` and `B = W_O [.., d_head, d_model]`. Index one head and take its SVD: at most `d_head`
// singular values are non-zero.

// %%
const OV = model.OV;
const QK = model.QK;
console.log(`OV: shape [${OV.shape.join(', ')}], factors A [${OV.A.shape.join(', ')}] and B [${OV.B.shape.join(', ')}]`);
const ov00 = OV.index(0, 0);
const S = ov00.svd().S; // [d_head]
console.log(`OV of L0H0: ${S.data.filter((v) => v > 1e-6 * S.data[0]).length} non-zero singular values (d_head = ${model.cfg.d_head}); the largest:`);
await table(['i', 'singular value of OV of L0H0'], Array.from(S.data.slice(0, 8)).map((v, i) => [i, v]));

// %%
const norms = OV.norm(); // [n_layers, n_heads] Frobenius norms, from the factors
await plot(headGridFigure(headGrid(norms), { title: 'Frobenius norm of each head\'s OV circuit', valueName: '‖W_V W_O‖_F', scale: 'sequential', name: 'ov-norms' }));

// %% [markdown]
// ## Which heads copy?
//
// The **full OV circuit** `W_E W_V W_O W_U` (`d_vocab × d_vocab`) says which output token each input token raises when
// the head attends to it. A head that *copies* — raises the very token it attends to — has a full OV circuit with mostly
// positive eigenvalues. The framework's summary is `Σλ / Σ|λ|`: near 1 for a copying head, near −1 for an anti-copying one.
// The eigenvalues come from the `d_head × d_head` product of the factors, so the 50257 × 50257 matrix is never formed.

// %%
const copying = await copyingScores(model); // [n_layers, n_heads]
const copyingGrid = headGrid(copying);
await plot(copyingFigure({ layers: copyingGrid.layers, heads: copyingGrid.heads, scores: copyingGrid.values }));

// %% [markdown]
// ## Composition: how heads build on each other
//
// A later head can read what an earlier head wrote through its **queries** (Q-composition), **keys** (K-composition) or
// **values** (V-composition). The score is `‖W_A W_B‖_F / (‖W_A‖_F ‖W_B‖_F)` with `W_A` the earlier head's OV circuit and
// `W_B` the later head's QK (or OV) circuit: how much of the earlier head's output lands in the later head's input space.
// Random matrices of the same shapes give a baseline: only scores clearly above it mean something.
//
// Induction heads are the textbook case of **K-composition**: their keys read the previous-token head's output.
// First we find the heads from activations (as in notebook 02), then check the weights.

// %%
const seqLen = Math.min(20, Math.floor((model.cfg.n_ctx - 1) / 2));
const repeated = generateRepeatedTokens(model.cfg, { seqLen, batch: 4, seed: 0 });
const induction = rankHeads(headGrid(await detectHead(model, repeated, 'induction_head')), 1)[0];
const previous = rankHeads(headGrid(await detectHead(model, repeated, 'previous_token_head')), 1)[0];
console.log(`from activations: induction head ${induction.label} (${induction.value.toFixed(3)}), previous-token head ${previous.label} (${previous.value.toFixed(3)})`);

// %%
const kScores = await allCompositionScores(model, 'K'); // [n_layers, n_heads, n_layers, n_heads], 0 unless layer1 < layer2
const kBaseline = compositionBaseline(model, 'K', { samples: 100, seed: 0 });
const kData: CompositionData = {
  mode: 'K',
  layers: headGrid(norms).layers,
  heads: headGrid(norms).heads,
  scores: kScores.toArray() as number[][][][],
  baseline: { mean: kBaseline.mean, std: kBaseline.std, samples: kBaseline.scores.length },
};
await plot(compositionFigure(kData), { height: 560 });

// %% [markdown]
// Read the column of the induction head: which earlier head does it K-compose with most? In the framework's two-layer
// attention-only model the answer is a previous-token head, far above the random baseline. On the embedded model it is not: its layer-1
// induction heads (found from their attention above) score at or below the baseline against every layer-0 head. The next section shows why, and how to read the circuit from the weights anyway.

// %%
const into = [];
for (let l = 0; l < induction.layer; l++) {
  for (let h = 0; h < model.cfg.n_heads; h++) into.push({ head: `L${l}H${h}`, score: kScores.get(l, h, induction.layer, induction.head) });
}
into.sort((a, b) => b.score - a.score);
if (into.length === 0) console.log(`${induction.label} is in layer 0: no earlier head can compose with it (an induction head needs one).`);
await table(['earlier head', `K-composition into ${induction.label}`, 'baseline mean + 2 std'], into.slice(0, 5).map((r) => [
  r.head, r.score, kBaseline.mean + 2 * kBaseline.std,
]));

// %% [markdown]
// ## Reading past block 0's MLP
//
// The framework's scores skip the MLPs, which suits its attention-only models. In a model with MLPs, the heads of layer 1
// read the residual stream *after* block 0's MLP — tokens and the previous-token head's output included. In the embedded
// model that is where the circuit runs: replacing L0H3's direct write into layer 1's keys by its mean barely changes the
// induction loss (+0.04 nats), while doing the same to MLP0's output destroys it (+11.8; the model card has the numbers).
// Lensboard (as an extension of TransformerLens) reads the weights past that MLP:
//
// - `effectiveEmbedding`: a token as a layer-1 head sees it — `W_E[t]` + mean `W_pos` (+ block 0's `b_O`), plus block 0's MLP
//   of that, then LayerNorm. Copying scores read through it use `eff · W_OV · W_U` over a set of tokens;
// - `mlpLinearization`: `I +` the mean Jacobian of block 0's MLP at points built from the weights (`blockZeroMlpInputs`).
//   Passing it as `outputMaps` scores composition with each layer-0 head's output taken through that MLP, against a
//   baseline mapped the same way.

// %%
const tokenSet = embeddingTokenSet(model); // 1,024 tokens sampled from the whole vocabulary
const effective = await effectiveEmbedding(model, tokenSet);
const copyingPast = await copyingScores(model, { embedding: effective });
const copyingPastGrid = headGrid(copyingPast);
await plot(copyingFigure({ layers: copyingPastGrid.layers, heads: copyingPastGrid.heads, scores: copyingPastGrid.values, pastMlp0: true, tokens: tokenSet.length }));
console.log(`${induction.label}: copying score ${copying.get(induction.layer, induction.head).toFixed(2)} from W_E, ${copyingPast.get(induction.layer, induction.head).toFixed(2)} past block 0's MLP (layer-0 heads read W_E itself: their first score is the one that applies)`);

// %%
const M0 = await mlpLinearization(model, 0, blockZeroMlpInputs(model, tokenSet)); // [d_model, d_model]
const kPast = await allCompositionScores(model, 'K', { outputMaps: [M0] });
const kPastBaseline = compositionBaseline(model, 'K', { samples: 100, seed: 0, outputMap: M0 });
const intoPast = [];
for (let l = 0; l < induction.layer; l++) {
  for (let h = 0; h < model.cfg.n_heads; h++) intoPast.push({ head: `L${l}H${h}`, direct: kScores.get(l, h, induction.layer, induction.head), past: kPast.get(l, h, induction.layer, induction.head) });
}
intoPast.sort((a, b) => b.past - a.past);
await table(['earlier head', `K-composition into ${induction.label}`, "… with layer 0 read past block 0's MLP", 'mapped baseline mean + 2 std'], intoPast.slice(0, 5).map((r) => [
  r.head, r.direct, r.past, kPastBaseline.mean + 2 * kPastBaseline.std,
]));

// %% [markdown]
// Past the MLP, the induction head's strongest K-composition is with the previous-token head found from activations,
// far above the (mapped) random baseline, and its OV circuit copies. Weight-only scores are hypotheses to check against the
// activations; here the two agree once the weights are read along the path the activations take.

// %% [markdown]
// ## Previous-token heads from positional QK
//
// A previous-token head attends by **position**, so its QK circuit restricted to the positional embeddings,
// `W_pos W_Q W_Kᵀ W_posᵀ`, already shows the pattern: under a causal softmax each query position puts its weight on the
// position just before it. `previousTokenScoresFromWeights` scores that for every head.

// %%
const posScores = previousTokenScoresFromWeights(model); // [n_layers, n_heads]
const bestPos = rankHeads(headGrid(posScores), 1)[0];
await plot(headGridFigure(headGrid(posScores), {
  title: 'Previous-token score from the weights (positional QK)', valueName: 'score', scale: 'sequential', zmin: 0, zmax: 1, name: 'previous-token-from-weights',
  selected: [{ layer: bestPos.layer, head: bestPos.head }],
}));

// %%
const nPos = Math.min(model.cfg.n_ctx, 32);
const pattern = positionalPattern(model, bestPos.layer, bestPos.head, { nPos }); // [nPos, nPos]
await plot(positionalFigure({
  layer: bestPos.layer, head: bestPos.head, nPos, pattern: pattern.toArray() as number[][], previousTokenScore: bestPos.value,
}), { height: 560 });

// %% [markdown]
// ## What does the induction head copy?
//
// For a few source tokens, the tokens whose logits the head's full OV circuit raises most. A copying head maps a
// token to itself (and to close variants: other casings, with or without a leading space).

// %%
const sources = [' Mary', ' store', ' the', ' cat', ' London'].map((w) => model.tokenizer!.toSingleToken(w));
const rows = topCopiedTokens(model, induction.layer, induction.head, sources, 5);
const dec = (id: number) => model.tokenizer!.decode([id]);
await plot(topCopiedFigure({
  layer: induction.layer, head: induction.head,
  rows: rows.map((r) => ({ token: r.token, str: dec(r.token), top: r.ids.map((id, j) => ({ token: id, str: dec(id), value: r.values[j] })) })),
}), { height: 320 });

// %%
// The same head read past block 0's MLP: each source token through the effective embedding.
const rowsPast = topCopiedTokens(model, induction.layer, induction.head, sources, 5, { embedding: await effectiveEmbedding(model, sources) });
await plot(topCopiedFigure({
  layer: induction.layer, head: induction.head, pastMlp0: true,
  rows: rowsPast.map((r) => ({ token: r.token, str: dec(r.token), top: r.ids.map((id, j) => ({ token: id, str: dec(id), value: r.values[j] })) })),
}), { height: 320 });

// %%
console.log(`${induction.label}: copying score ${copying.get(induction.layer, induction.head).toFixed(3)}; QK of all heads: [${QK.shape.join(', ')}]`);
await model.dispose();
