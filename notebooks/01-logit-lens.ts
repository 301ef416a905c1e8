/** Notebook 01 (source of 01-logit-lens.ipynb): the logit lens — what the residual stream "predicts" after each layer. */
// %% [markdown]
// # 01 · The logit lens
//
// A transformer builds its prediction in the **residual stream**: every attention layer and every MLP *adds* its output to it.
// Only at the very end is the stream turned into logits, by the final LayerNorm (`ln_final`) and the unembedding `W_U`.
//
// The **logit lens** (nostalgebraist, 2020) asks: what if we unembedded the stream *early*? Take the residual stream
// before layer 0, before layer 1, …, apply `ln_final` and `W_U` to each, and read off the most likely next token.
// If the model refines a guess layer by layer, we can watch the guess form.
//
// This notebook runs on Lensboard's embedded model (`models/embedded`), a small GPT-2 trained for this repository.

// %%
import { logitLens } from '../hooks/analysis/index.ts';
import { logitLensFigure } from '../hooks/figures/index.ts';
import { logitLensData } from './lib/data.ts';
import { plot, setupPlotly, table } from './lib/display.ts';
import { describeModel, loadNotebookModel } from './lib/model.ts';

const model = await loadNotebookModel();
console.log(describeModel(model));

// %%
// Loads plotly.js into the page once (inline, no CDN) for the HTML figures below.
await setupPlotly();

// %% [markdown]
// ## A prompt, token by token
//
// GPT-2 reads tokens, not words. A token usually carries its leading space (`" Mary"` ≠ `"Mary"`), and the model
// prepends `<|endoftext|>` as a beginning-of-sequence token. Every position predicts the *next* token.

// %%
const prompt = 'When Mary and John went to the store, John gave a drink to';
const tokens = model.toTokens(prompt)[0];
await table(['position', 'token id', 'token'], tokens.map((t, i) => [i, t, JSON.stringify(model.tokenizer!.decode([t]))]));

// %% [markdown]
// ## The lens
//
// `logitLens` caches `resid_pre` of every layer and the final `resid_post`, scales each by the final LayerNorm
// (TransformerLens's `accumulated_resid(apply_ln=True)`), unembeds it and keeps the top tokens. Rows are the
// residual stream after 0, 1, … layers; columns are positions; each cell shows the most likely next token and its
// colour its probability.

// %%
const lens = await logitLens(model, prompt, { topK: 5 });
const data = logitLensData(model, lens);
await plot(logitLensFigure(data));

// %% [markdown]
// Read a column from top to bottom: at the embedding (`L0 resid_pre`) the stream only knows the current token, so the
// "prediction" is a bigram guess. Deeper rows can use context that attention has moved in.
//
// ## Tracking one answer
//
// At the last position the right answer is `" Mary"` (the *indirect object*). Passing it as `target` tracks its
// probability and rank in every row — a rank of 0 means it is the top token.

// %%
const lensMary = await logitLens(model, prompt, { topK: 5, target: ' Mary' });
const dataMary = logitLensData(model, lensMary);
await plot(logitLensFigure(dataMary, { of: 0, metric: 'rank' }));

// %%
const last = tokens.length - 1;
const mary = dataMary.targets[0];
await table(['residual stream', 'P(" Mary")', 'rank of " Mary"', 'top token'], dataMary.labels.map((label, l) => [
  label, Number(mary.prob[l][last]), Number(mary.rank[l][last]), JSON.stringify(dataMary.top[l][last][0].str),
]));

// %% [markdown]
// The last row (`final`) is exactly the model's own output distribution. Where along the rows does `" Mary"` climb?
// The layers in which it jumps are the ones whose attention heads or MLPs write the answer — notebook 03 pins them down
// with ablations and patching.

// %%
await model.dispose();
