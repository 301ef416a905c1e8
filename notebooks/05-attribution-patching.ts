/** Notebook 05 (source of 05-attribution-patching.ipynb): gradients at hook points, attribution patching against activation patching, and input saliency. */
// %% [markdown]
// # 05 · Attribution patching
//
// Activation patching (notebook 03) runs the corrupted prompt once **per patch**: every head × position of a 12-layer
// model on 20 tokens is 2,880 runs. **Attribution patching** (Nanda 2023, *Attribution Patching: Activation Patching
// At Industrial Scale*) replaces each run by a first-order Taylor expansion around the corrupted run:
//
// $$\text{metric}(\text{patched}) \approx \text{metric}(\text{corrupted}) + (a_\text{clean} - a_\text{corrupted}) \cdot \frac{\partial\, \text{metric}}{\partial a}\Big|_\text{corrupted}$$
//
// so one forward and one backward pass of the corrupted prompt (plus the clean run's cache) estimate every patch at
// once. It is exact when the metric is linear in the activation along the way from corrupted to clean, and fails where
// it is not. This notebook measures both on the embedded model's IOI, with Lensboard's gradients:
// `runWithCache(…, { inclBwd: true, backwardFrom })` (TransformerLens's `incl_bwd`), the `getAttrPatch*` functions
// (each shaped like its `getActPatch*` twin), and input saliency.

// %%
import {
  getActPatchAttnHeadKAllPos, getActPatchAttnHeadOutAllPos, getActPatchAttnHeadOutByPos, getActPatchAttnHeadPatternAllPos,
  getActPatchAttnHeadQAllPos, getActPatchAttnHeadVAllPos, getActPatchAttnOut, getActPatchMlpOut, getActPatchResidPre,
  getAttrPatchAttnHeadKAllPos, getAttrPatchAttnHeadOutAllPos, getAttrPatchAttnHeadOutByPos, getAttrPatchAttnHeadPatternAllPos,
  getAttrPatchAttnHeadQAllPos, getAttrPatchAttnHeadVAllPos, getAttrPatchAttnOut, getAttrPatchMlpOut, getAttrPatchResidPre,
  inputSaliency, logitDiffMetric, normalisedMetric, pearsonCorrelation, type PatchingOptions,
} from '../hooks/analysis/index.ts';
import type { DifferentiableMetric } from '../hooks/gradients.ts';
import type { ActivationCache } from '../hooks/ActivationCache.ts';
import { fillIoiTemplate } from '../hooks/datasets/ioi.ts';
import { attributionScatterFigure, patchingFigure, saliencyFigure, type FigureSpec } from '../hooks/figures/index.ts';
import { getActName } from '../hooks/hookPoints.ts';
import type { HookedTransformer, ModelInput } from '../hooks/HookedTransformer.ts';
import { patchFrom } from '../hooks/interventions.ts';
import type { Tensor } from '../hooks/tensor.ts';
import { patchData } from './lib/data.ts';
import { plot, setupPlotly, table } from './lib/display.ts';
import { describeModel, loadNotebookModel } from './lib/model.ts';

const model = await loadNotebookModel();
console.log(describeModel(model));

// %%
// Loads plotly.js into the page once (inline, no CDN) for the HTML figures below.
await setupPlotly();

// %% [markdown]
// ## Clean and corrupted
//
// The clean prompt is an ABBA IOI sentence; the corrupted one is the same sentence with the two names swapped, so the
// right answer swaps too. The metric is the logit difference `logit(" Mary") − logit(" John")` at the last position,
// normalised so that the clean run scores 1 and the corrupted run 0 (TransformerLens's patching convention). Every
// result below is in those units: a patch scoring 1 restores the clean behaviour entirely.

// %%
const cleanPrompt = fillIoiTemplate(0, 'Mary', 'John', 'ABBA', 'store', 'drink').prompt;
const corruptedPrompt = fillIoiTemplate(0, 'John', 'Mary', 'ABBA', 'store', 'drink').prompt;
const clean = model.toTokens(cleanPrompt);
const corrupted = model.toTokens(corruptedPrompt);
const diff = logitDiffMetric({ correct: model.toSingleToken(' Mary'), incorrect: model.toSingleToken(' John') });
const [cleanLogits, cleanCache] = await model.runWithCache(clean);
const cleanDiff = diff(cleanLogits);
const corruptedDiff = diff(await model.forward(corrupted));
const metric = normalisedMetric(diff, cleanDiff, corruptedDiff);
console.log(`clean:     ${cleanPrompt}  → logit difference ${cleanDiff.toFixed(3)}`);
console.log(`corrupted: ${corruptedPrompt}  → logit difference ${corruptedDiff.toFixed(3)}`);

// %% [markdown]
// ## Gradients at hook points
//
// `runWithCache` with `inclBwd: true` runs the backward pass too (in onnxruntime, from a backward graph built like the
// forward one) and caches, beside each hook point, `<hook>_grad`: the gradient of the scalar — here the metric, given
// by `backwardFrom` — with respect to that hook point's value. One backward pass gives every hook point's gradient.

// %%
const zNames = Array.from({ length: model.cfg.n_layers }, (_, l) => getActName('z', l));
const [, grads] = await model.runWithCache(corrupted, { returnType: 'none', inclBwd: true, backwardFrom: metric, namesFilter: zNames });
console.log(`metric at the corrupted run (the scalar differentiated): ${grads.backwardValue!.toFixed(4)}`);
console.log(grads.keys().join('\n'));
console.log(`blocks.0.attn.hook_z_grad: [${grads.get('blocks.0.attn.hook_z_grad').shape.join(', ')}] (the shape of hook_z)`);

// %% [markdown]
// ## Head outputs: where the approximation holds
//
// `getAttrPatchAttnHeadOutAllPos` takes the same arguments as `getActPatchAttnHeadOutAllPos` and returns the same
// `[n_layers, n_heads]` grid. Each point of the scatter plot is one head: activation patching on x, attribution
// patching on y; on the dotted line they agree.

// %%
/** Times one call. */
async function timed<T>(fn: () => Promise<T>): Promise<[T, number]> {
  const t0 = performance.now();
  const out = await fn();
  return [out, performance.now() - t0];
}
type PatchFn = (m: HookedTransformer, c: ModelInput, cache: ActivationCache, metric: DifferentiableMetric, opts?: PatchingOptions) => Promise<Tensor>;
const headLabels = (t: Tensor) => Array.from({ length: t.data.length }, (_, i) => `L${Math.floor(i / t.shape[1])}H${i % t.shape[1]}`);
const strTokens = model.toStrTokens(clean[0]);
const posLabels = (t: Tensor) => Array.from({ length: t.data.length }, (_, i) => `L${Math.floor(i / t.shape[1])} ${i % t.shape[1]}:${strTokens[i % t.shape[1]]}`);

const [headAct, tHeadAct] = await timed(() => getActPatchAttnHeadOutAllPos(model, corrupted, cleanCache, metric));
const [headAttr, tHeadAttr] = await timed(() => getAttrPatchAttnHeadOutAllPos(model, corrupted, cleanCache, metric));
const rHeads = pearsonCorrelation(headAttr.data, headAct.data);
await plot(attributionScatterFigure({ kind: 'head outputs (all positions)', labels: headLabels(headAct), activation: [...headAct.data], attribution: [...headAttr.data], r: rHeads }));
console.log(`activation patching ${tHeadAct.toFixed(0)} ms, attribution patching ${tHeadAttr.toFixed(0)} ms; Pearson r = ${rHeads.toFixed(3)}`);

// %% [markdown]
// On the embedded model (v4) r over all heads is 0.66, and one point makes it so: the previous-token head L0H3, patched
// at every position at once, moves the metric by 0.94 of the clean − corrupted gap while its gradient estimate is 0.16.
// Its output reaches layer 1's keys through block 0's MLP (see notebook 04), a non-linear path, and a whole-prompt patch
// of it is a large change. Without layer 0, r is ≥ 0.9; patched one position at a time
// (`getAttrPatchAttnHeadOutByPos`, below in the table of every kind) head outputs give r ≈ 0.96, L0H3 included.

// %%
// The two grids (patchingFigure draws either: they share shape and units).
await plot(patchingFigure(patchData(model, clean[0], cleanDiff, corruptedDiff, [{ kind: 'head_out_all_pos', values: headAct }]), 0));
await plot(patchingFigure(patchData(model, clean[0], cleanDiff, corruptedDiff, [{ kind: 'head_out_all_pos', values: headAttr }], 'attribution'), 0));

// %% [markdown]
// ## Every kind of patch
//
// The same comparison for the residual stream, attention and MLP outputs by layer and position, and for each head's
// queries, keys, values and attention pattern. The table gives Pearson's r, the largest effect of a patch, the largest
// disagreement, and the time of each method (activation patching batches its runs; attribution patching is one forward
// and one backward pass). Read r together with the largest effect: where no patch of a kind changes the metric much,
// r compares numbers close to zero and says little.

// %%
const kinds: [string, PatchFn, PatchFn, (t: Tensor) => string[]][] = [
  ['resid_pre by position', getActPatchResidPre, getAttrPatchResidPre, posLabels],
  ['attn_out by position', getActPatchAttnOut, getAttrPatchAttnOut, posLabels],
  ['mlp_out by position', getActPatchMlpOut, getAttrPatchMlpOut, posLabels],
  ['head outputs by position', getActPatchAttnHeadOutByPos, getAttrPatchAttnHeadOutByPos, (t) => Array.from({ length: t.data.length }, (_, i) => String(i))],
  ['head outputs (all positions)', getActPatchAttnHeadOutAllPos, getAttrPatchAttnHeadOutAllPos, headLabels],
  ['queries (all positions)', getActPatchAttnHeadQAllPos, getAttrPatchAttnHeadQAllPos, headLabels],
  ['keys (all positions)', getActPatchAttnHeadKAllPos, getAttrPatchAttnHeadKAllPos, headLabels],
  ['values (all positions)', getActPatchAttnHeadVAllPos, getAttrPatchAttnHeadVAllPos, headLabels],
  ['attention patterns (all positions)', getActPatchAttnHeadPatternAllPos, getAttrPatchAttnHeadPatternAllPos, headLabels],
];
const compared: { kind: string; act: Tensor; attr: Tensor; r: number; labels: string[] }[] = [];
const rows: (string | number)[][] = [];
for (const [kind, actFn, attrFn, labels] of kinds) {
  const [act, tAct] = await timed(() => actFn(model, corrupted, cleanCache, metric));
  const [attr, tAttr] = await timed(() => attrFn(model, corrupted, cleanCache, metric));
  const r = pearsonCorrelation(attr.data, act.data);
  compared.push({ kind, act, attr, r, labels: labels(act) });
  rows.push([kind, act.data.length, r.toFixed(3), act.abs().max().item().toFixed(3), attr.sub(act).abs().max().item().toFixed(3), `${tAct.toFixed(0)} ms`, `${tAttr.toFixed(0)} ms`]);
}
await table(['patched', 'components', 'Pearson r', 'largest |activation patching|', 'largest |attribution − activation|', 'activation patching', 'attribution patching'], rows);
const holds = compared.filter((c) => c.r >= 0.9).map((c) => c.kind);
const fails = compared.filter((c) => !(c.r >= 0.9)).map((c) => `${c.kind} (r = ${c.r.toFixed(2)})`);
console.log(`r ≥ 0.9: ${holds.join(', ') || 'none'}\nr < 0.9: ${fails.join(', ') || 'none'}`);

// %% [markdown]
// ## Where it fails, and why
//
// Nanda reports the approximation failing for the residual stream at early layers and for attention patterns (and
// the keys and queries that set them). The reason is the same in both: the patch is a **large** change to something
// the metric depends on non-linearly. Swapping the names changes the tokens themselves, so at the name positions
// `resid_pre` of layer 0 *is* a different token — far from the corrupted point, where the first-order term no longer
// describes what the LayerNorms, attention softmaxes and MLPs downstream do; in a model this shallow every layer's
// residual stream is still close to the tokens. Keys and queries act through a softmax: a patch that moves attention
// from one token to another all at once is not what a tangent line at the corrupted attention describes.
//
// The residual stream by layer and position, activation patching then attribution patching, and r layer by layer:

// %%
const resid = compared.find((c) => c.kind === 'resid_pre by position')!;
await plot(patchingFigure(patchData(model, clean[0], cleanDiff, corruptedDiff, [{ kind: 'resid_pre', values: resid.act }]), 0));
await plot(patchingFigure(patchData(model, clean[0], cleanDiff, corruptedDiff, [{ kind: 'resid_pre', values: resid.attr }], 'attribution'), 0));
await plot(attributionScatterFigure({ kind: 'resid_pre by position', labels: resid.labels, activation: [...resid.act.data], attribution: [...resid.attr.data], r: resid.r }));
// How the agreement changes with depth: r per layer.
const perLayer = Array.from({ length: model.cfg.n_layers }, (_, l) => {
  const n = resid.act.shape[1];
  return pearsonCorrelation(resid.attr.data.subarray(l * n, (l + 1) * n), resid.act.data.subarray(l * n, (l + 1) * n));
});
await table(['layer', 'r (resid_pre by position)'], perLayer.map((r, l) => [l, r.toFixed(3)]));

// %% [markdown]
// To see the non-linearity itself, take the component where the two disagree most and patch it **part of the way**:
// activation `corrupted + α · (clean − corrupted)` for α from 0 to 1. Activation patching is the curve's value at
// α = 1; attribution patching is the tangent line at α = 0, extended to α = 1.

// %%
// The residual-stream entry (layer, position) where attribution and activation patching differ most.
const gap = resid.attr.sub(resid.act).abs();
const worstIndex = gap.data.indexOf(gap.max().item());
const nPos = resid.act.shape[1];
const [wLayer, wPos] = [Math.floor(worstIndex / nPos), worstIndex % nPos];
const hook = getActName('resid_pre', wLayer);
const [, corruptedCache] = await model.runWithCache(corrupted, { namesFilter: [hook] });
const from = corruptedCache.get(hook);
const step = cleanCache.get(hook).sub(from);
const alphas = Array.from({ length: 11 }, (_, i) => i / 10);
const curve: number[] = [];
for (const a of alphas) curve.push(metric(await model.forward(corrupted, { interventions: [patchFrom(hook, from.add(step.mul(a)), { pos: [wPos] })] })));
const tangent = alphas.map((a) => a * resid.attr.data[worstIndex]); // attribution = metric(corrupted) (0) + slope
const path: FigureSpec = {
  name: 'attribution-path',
  data: [
    { type: 'scatter', mode: 'lines+markers', x: alphas, y: curve, name: 'patched part of the way (activation patching at α = 1)' },
    { type: 'scatter', mode: 'lines', x: alphas, y: tangent, name: 'tangent at α = 0 (attribution patching at α = 1)', line: { dash: 'dash' } },
  ],
  layout: {
    title: { text: `Patching ${hook} at position ${wPos} (${strTokens[wPos]}) part of the way`, font: { size: 13 }, x: 0, xanchor: 'left' },
    xaxis: { title: { text: 'α (0 = corrupted, 1 = clean)' } },
    yaxis: { title: { text: 'normalised metric' } },
    legend: { orientation: 'h', y: -0.25 },
    margin: { l: 60, r: 20, t: 50, b: 90 },
  },
  table: { columns: ['alpha', 'patched', 'tangent'], rows: alphas.map((a, i) => [a, curve[i], tangent[i]]) },
};
await plot(path);

// %% [markdown]
// ## Input saliency
//
// The same gradients, taken at the token embeddings (`hook_embed`), say how much each input token contributes to the
// metric. **Gradient × input** (Ecco's) is the first-order term of removing each token's embedding; **integrated
// gradients** (Sundararajan et al. 2017) average the gradient along the straight path from a baseline (here the zero
// embedding) to the input, and are *complete*: the token scores add up to metric(input) − metric(baseline). Here the
// metric is the clean prompt's raw logit difference.

// %%
const gxi = await inputSaliency(model, clean, diff, { method: 'grad_x_input' });
await plot(saliencyFigure({ tokens: clean[0], strTokens, method: 'grad_x_input', scores: [...gxi.scores.data] }));
const ig = await inputSaliency(model, clean, diff, { method: 'integrated_gradients', steps: 64 });
await plot(saliencyFigure({ tokens: clean[0], strTokens, method: 'integrated_gradients', scores: [...ig.scores.data] }));
const total = ig.scores.sum().item();
console.log(`integrated gradients: Σ scores ${total.toFixed(3)}; metric(input) − metric(baseline) = ${ig.value.toFixed(3)} − ${ig.baselineValue!.toFixed(3)} = ${(ig.value - ig.baselineValue!).toFixed(3)}`);

// %% [markdown]
// ## Summary
//
// - One backward pass gives the gradient at every hook point (`<hook>_grad`), and with the clean cache every
//   attribution-patching estimate; the table above puts its time beside activation patching's.
// - Where a patch moves an activation a little, or the metric responds to it nearly linearly (a head's output and
//   values reach the logits through a few linear maps and LayerNorms), attribution patching ranks components as
//   activation patching does. Where the patch is large and acts through softmaxes or every later layer (the residual
//   stream at the name positions), the tangent misses the curve, as the figure above shows — use attribution patching
//   to find candidates quickly, and confirm them with activation patching.
