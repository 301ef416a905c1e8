/** Notebook 07 (source of 07-features-of-the-residual-stream.ipynb): a sparse autoencoder's features of the residual stream. */
// %% [markdown]
// # 07 · Features of the residual stream
//
// The residual stream is a vector of `d_model` numbers per token, but a model seems to represent far more concepts
// than it has dimensions, each as a *direction*, a few of them active at a time (superposition). A **sparse
// autoencoder** (SAE) looks for those directions: it encodes an activation `x` into `d_sae ≫ d_model` non-negative
// **features**, few of them non-zero, and decodes them back, `x̂ = Σ_f a_f · W_dec[f] + b_dec` (Bricken et al. 2023;
// Cunningham et al. 2023). This one is a TopK SAE (Gao et al. 2024): exactly the `k` largest pre-activations survive.
//
// The SAE here ships with the embedded model (`models/embedded/saes/`); `npm run train:sae` trains one like it in
// a few minutes. We splice it into the model the way TransformerLens's `HookedSAETransformer` does, measure how
// good a reconstruction it is, read one feature's dashboard, and then *use* features: ablate them, and steer with them.

// %%
import { featureActivationFigure, featureDensityFigure, featureLogitsFigure, promptFeaturesFigure } from '../hooks/figures/sae.ts';
import { saeHook } from '../hooks/hookPoints.ts';
import { corpusContexts, DEFAULT_CORPUS } from '../hooks/sae/corpus.ts';
import { loadFeatureDashboards } from '../hooks/sae/dashboard.ts';
import { evaluateSae } from '../hooks/sae/evaluate.ts';
import { ablateFeatures, steerFeatures } from '../hooks/sae/features.ts';
import { plot, setupPlotly, table } from './lib/display.ts';
import { describeModel, loadNotebookModel, loadNotebookSae } from './lib/model.ts';

const model = await loadNotebookModel();
const sae = await loadNotebookSae();
console.log(describeModel(model));
console.log(String(sae));

// %%
await setupPlotly();

// %% [markdown]
// ## Splicing the SAE in
//
// `runWithCacheWithSaes` runs the model with the SAE at its hook point, inside the same onnxruntime graph. The SAE
// adds its own hook points under the hook's name: the input, the pre- and post-activation features, the
// reconstruction, the error `x − x̂` and the output that flows on. With `useErrorTerm: true` the output is
// `x̂ + (x − x̂) = x`, so the run is the clean run — but every feature is there to read and edit.

// %%
const prompt = 'ROMEO:\nBut soft, what light through yonder window breaks?';
const hook = sae.cfg.hook_name as Parameters<typeof saeHook>[0];
const [spliced, cache] = await model.runWithCacheWithSaes(prompt, { saes: sae, useErrorTerm: true, namesFilter: (n) => n.startsWith(hook) });
for (const name of cache.keys()) console.log(name.padEnd(48), JSON.stringify(cache.get(name).shape));
const clean = await model.forward(prompt);
console.log('spliced with the error term vs clean logits: max |difference| =', spliced.sub(clean).abs().max().item().toExponential(2));

// %% [markdown]
// ## How good a reconstruction?
//
// SAELens's metrics, on text the SAE never trained on (the held-out tail of Tiny Shakespeare): the **explained
// variance** of `x` by `x̂`; **L0**, the features active per token; the **dead** features (never firing) and
// **dense** ones (firing on more than a tenth of the tokens); and the **CE loss recovered** — with the SAE's
// reconstruction in place of the residual stream, how much of the loss that zero-ablating it would cost is avoided.

// %%
const evaluation = await evaluateSae(model, sae, corpusContexts(DEFAULT_CORPUS, model.tokenizer!, { contextSize: sae.cfg.context_size ?? 128, split: 'heldOut' }), { maxTokens: 4096 });
await table(['metric', 'value'], [
  ['tokens', evaluation.tokens], ['explained variance', evaluation.explainedVariance], ['L0', evaluation.l0],
  ['dead features', evaluation.deadFraction], ['dense features', evaluation.denseFraction],
  ['CE loss clean', evaluation.ceLossClean], ['CE loss spliced', evaluation.ceLossSpliced], ['CE loss zero-ablated', evaluation.ceLossZeroAblated],
  ['CE loss recovered', evaluation.ceLossRecovered],
]);

// %% [markdown]
// How often each feature fires: a healthy SAE has few dead features and a broad spread of densities in between.

// %%
await plot(featureDensityFigure(evaluation.densityHistogram, sae.name));

// %% [markdown]
// ## A prompt's features
//
// Each token's strongest features (the SAE was trained without the BOS position, so it is left out here too). Most
// tokens share a few frequent features and add a handful of specific ones.

// %%
const acts = cache.get(saeHook(hook, 'hook_sae_acts_post')); // [1, pos, d_sae]
const strTokens = model.toStrTokens(prompt);
const perToken = strTokens.map((_, p) => {
  const row = acts.data.subarray(p * sae.cfg.d_sae, (p + 1) * sae.cfg.d_sae);
  return [...row.keys()].filter((f) => row[f] > 0).sort((a, b) => row[b] - row[a]).slice(0, 8).map((f) => ({ feature: f, act: row[f] }));
});
const maxOf = new Map<number, number>();
perToken.slice(1).flat().forEach(({ feature, act }) => maxOf.set(feature, Math.max(maxOf.get(feature) ?? 0, act)));
const topFeatures = [...maxOf].map(([feature, maxAct]) => ({ feature, maxAct })).sort((a, b) => b.maxAct - a.maxAct);
await plot(promptFeaturesFigure({ tokens: model.toTokens(prompt)[0], strTokens, perToken, topFeatures }), { height: 520 });

// %% [markdown]
// ## One feature's dashboard
//
// `npm run lens -- sae-dashboard` runs the SAE over a corpus once and keeps, for every feature, the contexts where
// it fires most (with its activation on each token), a histogram of its activations, its density, and its **logit
// weights** — `W_dec[f] · W_U`, the tokens its direction pushes up and down when it reaches the unembedding. The
// file sits beside the SAE. Here is the most specific feature of the prompt's last token: of its eight strongest,
// the one that fires on the fewest tokens of the corpus.

// %%
const dashboards = await loadFeatureDashboards(sae.dir!);
if (!dashboards) throw new Error(`no feature_dashboards.json.gz beside ${sae.dir}; run npm run lens -- sae-dashboard --sae ${sae.dir}`);
const last = perToken[perToken.length - 1].map((a) => a.feature).sort((a, b) => dashboards.features[a].density - dashboards.features[b].density)[0];
const dash = dashboards.features[last];
console.log(`feature ${last}: fires on ${(100 * dash.density).toFixed(2)}% of tokens, max activation ${dash.maxAct}`);
for (const c of dash.top.slice(0, 6)) {
  console.log(c.tokens.map((t, i) => (i === c.at ? `[[${dashboards.tokenStrings[t]}]]` : dashboards.tokenStrings[t])).join('').replace(/\n/g, '↵'), ` (${c.value})`);
}

// %%
const str = (token: number) => dashboards.tokenStrings[token] ?? null;
const page = { feature: last, histogram: dash.histogram, logits: { top: dash.logits.top.map((l) => ({ ...l, str: str(l.token) })), bottom: dash.logits.bottom.map((l) => ({ ...l, str: str(l.token) })) } };
await plot(featureLogitsFigure(page), { height: 420 });
await plot(featureActivationFigure(page), { height: 300 });

// %% [markdown]
// ## Ablating features
//
// An intervention on `hook_sae_acts_post` sets features to zero inside the graph. With the error term kept, the
// run changes by exactly the ablated features' decoded contribution, `−Σ a_f W_dec[f]` (SAELens's semantics): the
// effect of those features and nothing else.

// %%
const next = [...model.toTokens(prompt)[0]];
const lossOf = async (interventions: Parameters<typeof model.runWithSaes>[1]['interventions']) =>
  (await model.runWithSaes(next, { saes: sae, useErrorTerm: true, returnType: 'loss', ...(interventions ? { interventions } : {}) })) as number;
const top3 = topFeatures.slice(0, 3).map((f) => f.feature);
await table(['run', 'loss on the prompt'], [
  ['clean', await lossOf(undefined)],
  [`features ${top3.join(', ')} ablated`, await lossOf([ablateFeatures(sae, top3)])],
]);

// %% [markdown]
// ## Steering
//
// Adding `α · W_dec[f]` to the residual stream at every position, while generating (the KV-cache decoder takes
// the same edit), pushes the model toward whatever the feature stands for. Same prompt and greedy decoding, with
// and without.

// %%
const steerPrompt = 'KING HENRY:\nNow, my lords,';
const steering = [{ feature: last, strength: 2 * Number(dash.maxAct) }];
const unsteered = await model.generate(steerPrompt, { maxNewTokens: 24, doSample: false });
const steered = await model.generate(steerPrompt, { maxNewTokens: 24, doSample: false, interventions: [steerFeatures(sae, steering)] });
await table(['run', 'text'], [['unsteered', String(unsteered)], [`steered with feature ${last} (α ${steering[0].strength.toFixed(1)})`, String(steered)]]);

// %% [markdown]
// In the dashboard, the **Features** view does all of this for any prompt: click a token for its features, a
// feature for its page, and steer or ablate with the ones you pick.
