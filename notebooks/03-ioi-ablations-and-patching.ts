/** Notebook 03 (source of 03-ioi-ablations-and-patching.ipynb): indirect object identification traced with attribution, ablations and activation patching. */
// %% [markdown]
// # 03 · IOI: ablations and activation patching
//
// *"When Mary and John went to the store, John gave a drink to"* → `" Mary"`. To finish this sentence a model must find
// the name that appears **once** (the *indirect object*, IO) and avoid the one that appears twice (the *subject*, S).
// Wang et al. (2022) traced this **indirect object identification** (IOI) circuit in GPT-2 small.
//
// The metric throughout is the **logit difference** `logit(IO) − logit(S)` at the last position: positive means the model
// prefers the right name. We ask which components it depends on, in three ways:
//
// 1. **direct logit attribution** — which heads write the answer directly into the final residual stream;
// 2. **ablation** — which heads the answer breaks without;
// 3. **activation patching** — which activations carry the information that distinguishes a clean prompt from a corrupted one.

// %%
import {
  getActPatchAttnHeadOutAllPos, getActPatchResidPre, headAblationSweep, ioiCorruptedAbc, ioiDataset, ioiHeadAttribution, logitDiffMetric, normalisedMetric,
} from '../hooks/analysis/index.ts';
import {
  ablationSweepFigure, ioiAttributionFigure, ioiLogitDiffFigure, patchingFigure, rankHeads,
} from '../hooks/figures/index.ts';
import { getActName } from '../hooks/hookPoints.ts';
import { headGrid, ioiData, patchData } from './lib/data.ts';
import { plot, setupPlotly, table } from './lib/display.ts';
import { describeModel, loadNotebookModel } from './lib/model.ts';

const model = await loadNotebookModel();
console.log(describeModel(model));

// %%
// Loads plotly.js into the page once (inline, no CDN) for the HTML figures below.
await setupPlotly();

// %% [markdown]
// ## A dataset of IOI prompts
//
// `ioiDataset` fills a template with names that are single tokens in the model's tokenizer, alternating the orders
// ABBA (*Mary and John … John … → Mary*) and BABA (*John and Mary … John … → Mary*). Every prompt has the same length,
// so they run as one batch.

// %%
const ds = ioiDataset(model.tokenizer!, { n: 16, seed: 0 });
await table(['prompt', 'IO', 'S'], ds.prompts.slice(0, 6).map((p) => [p.prompt, p.io, p.s]));

// %% [markdown]
// ## Does the model do the task? Which heads write the answer?
//
// `ioiHeadAttribution` runs the batch, takes each head's output at the last position, applies the final LayerNorm's
// scale (frozen from the real run) and projects it onto the direction `W_U[:, IO] − W_U[:, S]`. The projections of all
// heads, plus everything else in the residual stream, add up to the logit difference — so each head's share is exact,
// but *direct* only: a head that helps through later heads scores near zero here.

// %%
const dla = await ioiHeadAttribution(model, ds);
const ioi = ioiData(ds.prompts, dla.logitDiff, dla.mean.heads);
await plot(ioiLogitDiffFigure(ioi));

// %%
await plot(ioiAttributionFigure(ioi));

// %% [markdown]
// Blue heads push towards the IO, red heads towards S. In GPT-2 small the big blue ones are the *name mover* heads,
// which attend to the IO token and copy it.
//
// ## Ablation: which heads does the answer need?
//
// `headAblationSweep` replaces one head's output at a time and re-measures the metric. Here the ablation is a
// **mean ablation** over the corrupted "ABC" prompts (three different names, so no IOI signal): the head keeps its
// average behaviour but loses the information about *these* names. The sweep runs batched — each row of a forward pass
// ablates a different head — so all heads cost a few passes, not one pass each. The metric is the library's
// `logitDiffMetric` (TransformerLens's `logits_to_ave_logit_diff`): it declares the one position per prompt it reads, so
// the sweep computes logits only there instead of at every position (about 2× faster at these lengths).

// %%
const abc = ioiCorruptedAbc(model.tokenizer!, ds, { seed: 1 });
const meanLogitDiff = logitDiffMetric({ correct: ds.ioTokens, incorrect: ds.sTokens, positions: ds.endPos });
const cleanValue = meanLogitDiff(await model.forward(ds.tokens));
const ablated = await headAblationSweep(model, ds.tokens, meanLogitDiff, { kind: 'mean', reference: abc.tokens }); // [n_layers, n_heads]
const sweepGrid = headGrid(ablated);
await plot(ablationSweepFigure({
  metric: { kind: 'logit_diff', label: 'mean logit(IO) − logit(S)' },
  layers: sweepGrid.layers, heads: sweepGrid.heads, clean: cleanValue,
  values: sweepGrid.values, delta: headGrid(ablated.sub(cleanValue)).values,
}, { mode: 'mean' }));

// %%
const hurt = rankHeads(headGrid(ablated.sub(cleanValue).neg()), 5);
await table(['head', 'drop of the logit difference when mean-ablated'], hurt.map((h) => [h.label, h.value]));

// %% [markdown]
// ## Activation patching: where does the information live?
//
// Patching runs the **corrupted** prompt but copies one activation from the **clean** run into it, and asks how much of
// the clean behaviour comes back. With the metric normalised, 1 means "this activation alone restores the clean
// answer" and 0 means "no effect". (TransformerLens: `get_act_patch_resid_pre`, `get_act_patch_attn_head_out_all_pos`.)
//
// Clean: the first prompt. Corrupted: the same sentence with other names (its ABC version).

// %%
const clean = [ds.tokens[0]];
const corrupted = [abc.tokens[0]];
const io = ds.ioTokens[0];
const s = ds.sTokens[0];
const end = ds.endPos[0];
const logitDiff = logitDiffMetric({ correct: io, incorrect: s, positions: end });
const names = Array.from({ length: model.cfg.n_layers }, (_v, l) => [getActName('resid_pre', l), getActName('z', l)]).flat();
const [cleanLogits, cleanCache] = await model.runWithCache(clean, { namesFilter: names });
const cleanLd = logitDiff(cleanLogits);
const corruptedLd = logitDiff(await model.forward(corrupted));
console.log(`clean: ${ds.prompts[0].prompt}\ncorrupted: ${abc.corruptedPrompts[0]}\nlogit difference clean ${cleanLd.toFixed(3)}, corrupted ${corruptedLd.toFixed(3)}`);
const metric = normalisedMetric(logitDiff, cleanLd, corruptedLd);
const residPre = await getActPatchResidPre(model, corrupted, cleanCache, metric); // [n_layers, pos]
const headOut = await getActPatchAttnHeadOutAllPos(model, corrupted, cleanCache, metric); // [n_layers, n_heads]
const patched = patchData(model, clean[0], cleanLd, corruptedLd, [
  { kind: 'resid_pre', values: residPre },
  { kind: 'head_out_all_pos', values: headOut },
]);
await plot(patchingFigure(patched, 0));

// %% [markdown]
// The residual stream at a position carries what the model knows there. Early on, restoring the clean stream at the
// positions of the names restores the answer; late, only the last position matters — the information has been
// **moved** to where the prediction is made. Attention heads did the moving; patching each head's output shows which.

// %%
await plot(patchingFigure(patched, 1));

// %%
await model.dispose();
