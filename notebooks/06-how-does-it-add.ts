/** Notebook 06 (source of 06-how-does-it-add.ipynb): how the addition model adds — attention to digits, heads by place value, the carry by patching. */
// %% [markdown]
// # 06 · How does it add?
//
// `models/addition` is a small GPT-2 trained by Lensboard's trainer (`npm run train -- --task addition`) on one task:
// the prompt `A+B=` (A and B between 0 and 99,999, **zero-padded to five digits**, as minGPT's adder pads its
// operands), the answer the six digits of A + B, **least significant first**, then end-of-text: `00123+04567=` →
// `096400`. Padding gives every problem the same layout: the units digit of A is always the token before `+`. Its vocabulary has 13 tokens — the digits, `+`, `=` and `<|endoftext|>`,
// which is also BOS — and every tool of the workbench works on it as on GPT-2.
//
// Writing the answer backwards is what makes the task learnable left to right: the units digit comes first, and each
// later digit needs only the two input digits of its place and the **carry** from the place below, which the model can
// read off digits it has already seen. This notebook looks for that algorithm in the weights and activations:
//
// 1. which input digits each answer digit attends to;
// 2. which heads carry which digits, and what breaks without them;
// 3. where the carry travels, by activation patching.

// %%
import { getActPatchAttnHeadOutAllPos, getActPatchResidPre, logitDiffMetric, normalisedMetric } from '../hooks/analysis/index.ts';
import { patchingFigure } from '../hooks/figures/index.ts';
import type { HookName } from '../hooks/hookPoints.ts';
import { ablateHeads } from '../hooks/interventions.ts';
import { Rng } from '../hooks/random.ts';
import { additionAnswer, additionPrompt, heldOutAdditionProblems, type AdditionProblem } from '../training/data/addition.ts';
import { greedyAdditionAnswers, HELD_OUT_SEED } from '../training/addition.ts';
import {
  additionModelDir, loadAdditionModel, matrixFigure, posOfA, posOfB, posPredicting, ROW_LABELS, teacherForcedRow,
} from './lib/addition.ts';
import { patchData } from './lib/data.ts';
import { plot, setupPlotly, table } from './lib/display.ts';

const model = await loadAdditionModel();
const c = model.cfg;
console.log(`${c.model_name}: ${c.n_layers} layers × ${c.n_heads} heads, d_model ${c.d_model}, d_vocab ${c.d_vocab}, n_ctx ${c.n_ctx} (from ${additionModelDir()})`);

// %%
// Loads plotly.js into the page once (inline, no CDN) for the HTML figures below.
await setupPlotly();

// %% [markdown]
// ## The format, through the public API
//
// `toTokens` prepends BOS (here `<|endoftext|>`) as for GPT-2; `generate` with `doSample: false` is greedy decoding and
// stops at end-of-text.

// %%
console.log(model.toStrTokens('00123+04567=').join(' | '));
const examples: AdditionProblem[] = [{ a: 123, b: 4567 }, { a: 99_999, b: 1 }, { a: 5, b: 5 }, { a: 31_415, b: 92_653 }, { a: 0, b: 0 }];
const exampleAnswers = await greedyAdditionAnswers(model, examples);
await table(['prompt', 'greedy answer', 'A + B reversed', 'right?'], examples.map((p, i) => [
  additionPrompt(p), exampleAnswers[i], `${additionAnswer(p)}<|endoftext|>`, exampleAnswers[i] === `${additionAnswer(p)}<|endoftext|>` ? 'yes' : 'no',
]));

// %% [markdown]
// The model was only ever shown padded operands. The same problems typed without the padding (`123+4567=`) put the
// digits at other positions:

// %%
const unpadded = await Promise.all(examples.map(async (p) => {
  const tokens = model.toTokens(`${p.a}+${p.b}=`);
  const out = (await model.generate(tokens, { maxNewTokens: 7, doSample: false, returnType: 'tokens' })) as number[][];
  return model.toString(out[0].slice(tokens[0].length));
}));
await table(['unpadded prompt', 'greedy answer', 'A + B reversed', 'right?'], examples.map((p, i) => [
  `${p.a}+${p.b}=`, unpadded[i], `${additionAnswer(p)}<|endoftext|>`, unpadded[i] === `${additionAnswer(p)}<|endoftext|>` ? 'yes' : 'no',
]));

// %% [markdown]
// How often is it right? The first 2,000 of the 10,000 held-out problems (training never drew them); the tests check
// all 10,000.

// %%
const heldOut = heldOutAdditionProblems(2000, HELD_OUT_SEED);
const heldOutAnswers = await greedyAdditionAnswers(model, heldOut);
const exact = heldOutAnswers.filter((a, i) => a === `${additionAnswer(heldOut[i])}<|endoftext|>`).length;
console.log(`exact match: ${exact} / ${heldOut.length} (${((100 * exact) / heldOut.length).toFixed(2)} %)`);

// %% [markdown]
// ## Which input digits does each answer digit attend to?
//
// Every problem has the same layout, so problems compare position by position. Feed the answer teacher-forced: the
// row is `BOS a₄…a₀ + b₄…b₀ = c₀…c₄`, and position 12 + i (the `=` for i = 0) predicts answer
// digit cᵢ. `a₀` and `b₀` are the units digits. For every head, the mean attention from the position predicting each
// answer digit to every earlier position, over 256 problems:

// %%
const rng = new Rng(6);
const operand = (): number => rng.int(0, 100_000);
const problems = Array.from({ length: 256 }, () => ({ a: operand(), b: operand() }));
const rows = problems.map((p) => teacherForcedRow(model, p)); // [256, 18]
const T = rows[0].length;
const patternNames = Array.from({ length: c.n_layers }, (_v, l) => `blocks.${l}.attn.hook_pattern` as HookName);
const [, cache] = await model.runWithCache(rows, { namesFilter: patternNames, returnType: 'none' });
const answerLabels = Array.from({ length: 6 }, (_v, i) => `→ c${i}`);
/** meanAttention[l][h][i][k]: attention from the position predicting c_i to position k, averaged over the problems. */
const meanAttention = patternNames.map((name) => {
  const p = cache.get(name); // [batch, head, query_pos, key_pos]
  return Array.from({ length: c.n_heads }, (_h, h) => answerLabels.map((_x, i) => Array.from({ length: T }, (_k, k) => {
    let s = 0;
    for (let b = 0; b < rows.length; b++) s += p.get(b, h, posPredicting(i), k);
    return s / rows.length;
  })));
});
for (let l = 0; l < c.n_layers; l++) {
  for (let h = 0; h < c.n_heads; h++) {
    await plot(matrixFigure(`attention_L${l}H${h}`, `L${l}H${h}: attention from the position predicting each answer digit`, meanAttention[l][h], answerLabels, ROW_LABELS, { valueName: 'attention', zmin: 0, zmax: 1 }));
  }
}

// %% [markdown]
// ## Which heads carry which digits?
//
// The answer digit cᵢ = (aᵢ + bᵢ + carryᵢ) mod 10 needs the two digits of its own place, and the carry needs the place
// below (aᵢ₋₁, bᵢ₋₁, and the answer digit cᵢ₋₁ already written, which is the current token). For each head and answer
// digit, the attention on each of these places:

// %%
const placeRows: (string | number)[][] = [];
for (let l = 0; l < c.n_layers; l++) {
  for (let h = 0; h < c.n_heads; h++) {
    for (let i = 0; i < 6; i++) {
      const att = meanAttention[l][h][i];
      const own = i < 5 ? att[posOfA(i)] + att[posOfB(i)] : 0;
      const below = i >= 1 ? att[posOfA(i - 1)] + att[posOfB(i - 1)] : 0;
      placeRows.push([`L${l}H${h}`, `c${i}`, own, below, att[posPredicting(i)]]);
    }
  }
}
const placeFigure = (column: number, what: string) => matrixFigure(
  `place_${column}`, what,
  Array.from({ length: c.n_layers * c.n_heads }, (_v, j) => placeRows.slice(j * 6, j * 6 + 6).map((r) => Number(r[column]))),
  Array.from({ length: c.n_layers * c.n_heads }, (_v, j) => `L${Math.floor(j / c.n_heads)}H${j % c.n_heads}`), answerLabels.map((s) => s.slice(2)),
  { valueName: 'attention', zmin: 0, zmax: 1 },
);
await plot(placeFigure(2, 'attention on the digits of the same place (aᵢ + bᵢ)'));
await plot(placeFigure(3, 'attention on the digits of the place below (aᵢ₋₁ + bᵢ₋₁): the carry'));

// %% [markdown]
// Attention says where a head looks, not whether the answer needs it. Zero-ablating one head at a time (its `hook_z`)
// and measuring how often each answer digit is still predicted right (teacher-forced argmax, same 256 problems) shows
// what each head is *for*:

// %%
const answerTokens = problems.map((p) => model.toTokens(additionAnswer(p), { prependBos: false })[0]);
async function digitAccuracy(interventions = [] as ReturnType<typeof ablateHeads>[]): Promise<number[]> {
  const logits = await model.forward(rows, { interventions }); // [batch, pos, d_vocab]
  return Array.from({ length: 6 }, (_v, i) => {
    let right = 0;
    for (let b = 0; b < rows.length; b++) {
      let best = 0;
      for (let v = 1; v < c.d_vocab; v++) if (logits.get(b, posPredicting(i), v) > logits.get(b, posPredicting(i), best)) best = v;
      if (best === answerTokens[b][i]) right++;
    }
    return right / rows.length;
  });
}
const cleanAccuracy = await digitAccuracy();
const ablatedAccuracy: number[][] = [];
for (let l = 0; l < c.n_layers; l++) for (let h = 0; h < c.n_heads; h++) ablatedAccuracy.push(await digitAccuracy([ablateHeads(l, [h])]));
await plot(matrixFigure(
  'ablation', 'accuracy of each answer digit with one head zero-ablated', ablatedAccuracy,
  Array.from({ length: c.n_layers * c.n_heads }, (_v, j) => `L${Math.floor(j / c.n_heads)}H${j % c.n_heads}`), answerLabels.map((s) => s.slice(2)),
  { valueName: 'accuracy', zmin: 0, zmax: 1 },
));
await table(['', ...answerLabels.map((s) => s.slice(2))], [['no head ablated', ...cleanAccuracy]]);

// %% [markdown]
// ## The carry, isolated by patching
//
// A clean and a corrupted problem that differ **only in whether a carry leaves the units place**: the units digits are
// 8 + 9 (= 17: digit 7, carry 1) in the clean problem and 3 + 4 (= 7: digit 7, carry 0) in the corrupted one. Every other
// digit is the same, and so is the first answer digit c₀ = 7, so the two rows `A+B=c₀` differ in two input tokens and
// the model must still predict c₁ one higher in the clean problem. The metric is the logit difference at the position
// predicting c₁: logit(clean c₁) − logit(corrupted c₁), normalised so the clean run scores 1 and the corrupted run 0.
//
// Patching the clean run's residual stream into the corrupted run, one layer and position at a time, shows where the
// carry is: at the units digits early on, and at the position predicting c₁ once a head has moved it there.

// %%
const pairs = Array.from({ length: 64 }, () => {
  const aHigh = rng.int(0, 10_000);
  const bHigh = rng.int(0, 10_000);
  return { clean: { a: aHigh * 10 + 8, b: bHigh * 10 + 9 }, corrupted: { a: aHigh * 10 + 3, b: bHigh * 10 + 4 } };
});
const prefix = (p: AdditionProblem) => model.toTokens(`${additionPrompt(p)}${additionAnswer(p)[0]}`)[0]; // [BOS] A + B = c₀: 14 tokens
const cleanRows = pairs.map((q) => prefix(q.clean));
const corruptedRows = pairs.map((q) => prefix(q.corrupted));
const digitToken = (d: string) => model.toSingleToken(d);
const carryMetric = logitDiffMetric({
  correct: pairs.map((q) => digitToken(additionAnswer(q.clean)[1])),
  incorrect: pairs.map((q) => digitToken(additionAnswer(q.corrupted)[1])),
  positions: -1,
});
const patchNames = Array.from({ length: c.n_layers }, (_v, l) => [`blocks.${l}.hook_resid_pre`, `blocks.${l}.attn.hook_z`] as HookName[]).flat();
const [cleanLogits, cleanCache] = await model.runWithCache(cleanRows, { namesFilter: patchNames });
const cleanValue = carryMetric(cleanLogits);
const corruptedValue = carryMetric(await model.forward(corruptedRows));
console.log(`${pairs.length} pairs; e.g. clean ${additionPrompt(pairs[0].clean)}${additionAnswer(pairs[0].clean)[0]}, corrupted ${additionPrompt(pairs[0].corrupted)}${additionAnswer(pairs[0].corrupted)[0]}`);
console.log(`mean logit difference (clean c₁ − corrupted c₁) at the position predicting c₁: clean ${cleanValue.toFixed(2)}, corrupted ${corruptedValue.toFixed(2)}`);
const metric = normalisedMetric(carryMetric, cleanValue, corruptedValue);
const residPre = await getActPatchResidPre(model, corruptedRows, cleanCache, metric); // [n_layers, pos]
const headOut = await getActPatchAttnHeadOutAllPos(model, corruptedRows, cleanCache, metric); // [n_layers, n_heads]
const patched = patchData(model, cleanRows[0], cleanValue, corruptedValue, [
  { kind: 'resid_pre', values: residPre },
  { kind: 'head_out_all_pos', values: headOut },
]);
await plot(patchingFigure(patched, 0));

// %% [markdown]
// The heads whose clean output alone brings the carry back (each head's `hook_z` at every position patched in):

// %%
await plot(patchingFigure(patched, 1));
const carriers = Array.from({ length: c.n_layers * c.n_heads }, (_v, j) => ({ label: `L${Math.floor(j / c.n_heads)}H${j % c.n_heads}`, value: headOut.get(Math.floor(j / c.n_heads), j % c.n_heads) }))
  .sort((x, y) => y.value - x.value);
await table(['head', 'share of the carry restored (1 = all)'], carriers.map((h) => [h.label, h.value]));

// %%
await model.dispose();
