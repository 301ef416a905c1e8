/**
 * `npx tsx bench/toolkit.bench.ts` (part of `npm run bench`): the toolkit on a GPT-2-small-shaped
 * random model (randomWeights(gpt2Config(), { seed: 1 })) at 20 tokens on this machine's CPU:
 *   - the 144-head zero-ablation sweep, batched (headAblationSweep) vs sequential (one forward pass
 *     per head with the same ablation as an in-graph intervention, as TransformerLens loops); target ≥ 5×.
 *     The metric is the logit difference at the last position, given three ways: the library's
 *     logitDiffMetric (which tells the sweep where it reads), a hand-written closure (full logits), and the
 *     closure with logitPositions;
 *   - greedy generation of 100 tokens with vs without the key/value cache; target ≥ 5×;
 *   - the logit lens and direct logit attribution of the prompt, against a plain forward pass.
 * The sequential sweep is timed on a subset of heads (3 per layer) and extrapolated to 144 unless
 * `--full` is given. Prints a markdown table and the ratios.
 */
import { cpus, loadavg } from 'node:os';
import { headAblationSweep } from '../hooks/analysis/ablation.ts';
import { directLogitAttribution } from '../hooks/analysis/directLogitAttribution.ts';
import { logitLens } from '../hooks/analysis/logitLens.ts';
import { logitDiffMetric } from '../hooks/analysis/metrics.ts';
import { HookedTransformer } from '../hooks/HookedTransformer.ts';
import { gpt2Config, randomWeights } from '../hooks/init.ts';
import { ablateHeads } from '../hooks/interventions.ts';
import { Rng } from '../hooks/random.ts';
import type { Tensor } from '../hooks/tensor.ts';

const full = process.argv.includes('--full');
const POS = 20;
const NEW_TOKENS = 100;
const cfg = gpt2Config();
const fmt = (ms: number) => (ms >= 1000 ? `${(ms / 1000).toFixed(2)} s` : `${ms.toFixed(1)} ms`);
async function time<T>(fn: () => Promise<T>): Promise<[T, number]> {
  const t0 = performance.now();
  const r = await fn();
  return [r, performance.now() - t0];
}

console.log(`load average at start: ${loadavg().map((x) => x.toFixed(1)).join(', ')} (other processes share these cores: wall times include waiting for them)`);
console.log(`Lensboard toolkit benchmark — ${cfg.n_layers} layers × ${cfg.n_heads} heads, d_model ${cfg.d_model}, d_vocab ${cfg.d_vocab}, ${POS} tokens, CPU (${cpus().length} cores)`);
const model = await HookedTransformer.fromWeights(cfg, randomWeights(cfg, { seed: 1 }), { device: 'cpu' });
const rng = new Rng(7);
const tokens = [Array.from({ length: POS }, () => rng.int(0, cfg.d_vocab))];
const [A, B] = [rng.int(0, cfg.d_vocab), rng.int(0, cfg.d_vocab)];
/** Logit difference A − B at the last position of the (only) prompt; logits [1, pos | k, d_vocab]. */
const metric = (logits: Tensor) => {
  const at = logits.shape[1] - 1;
  return logits.get(0, at, A) - logits.get(0, at, B);
};
const libMetric = logitDiffMetric({ correct: A, incorrect: B }); // the same metric, declaring its position (last)
const rows: string[][] = [];
const ratios: string[] = [];

// ---- head ablation sweep ----------------------------------------------------------------------
// A sweep's first call builds one graph variant per start block (12 here); later sweeps reuse them,
// as the sequential loop reuses its one variant. Each sweep is timed warm, after one cold call.
const [, tBatchedCold] = await time(() => headAblationSweep(model, tokens, metric));
const [batched, tBatched] = await time(() => headAblationSweep(model, tokens, metric));
const [, tBatchedLastCold] = await time(() => headAblationSweep(model, tokens, metric, { logitPositions: [[POS - 1]] }));
const [batchedLast, tBatchedLast] = await time(() => headAblationSweep(model, tokens, metric, { logitPositions: [[POS - 1]] }));
const [, tBatchedLibCold] = await time(() => headAblationSweep(model, tokens, libMetric));
const [batchedLib, tBatchedLib] = await time(() => headAblationSweep(model, tokens, libMetric));
const heads = Array.from({ length: cfg.n_layers * cfg.n_heads }, (_, i) => ({ layer: Math.floor(i / cfg.n_heads), head: i % cfg.n_heads }))
  .filter((h) => full || h.head % 4 === 0); // 3 per layer unless --full
let worst = 0;
await model.forward(tokens, { interventions: [ablateHeads(0, 0)] }); // build the sequential loop's variant before timing it
const [, tSeqSubset] = await time(async () => {
  for (const h of heads) {
    const logits = await model.forward(tokens, { interventions: [ablateHeads(h.layer, h.head)] });
    const m = metric(logits);
    worst = Math.max(worst, Math.abs(m - batched.get(h.layer, h.head)), Math.abs(m - batchedLast.get(h.layer, h.head)), Math.abs(m - batchedLib.get(h.layer, h.head)));
  }
});
const tSeq = (tSeqSubset / heads.length) * 144;
const seqLabel = full ? 'sequential, 144 passes' : `sequential, ${heads.length} of 144 passes timed, extrapolated ×${(144 / heads.length).toFixed(0)}`;
rows.push(['144-head zero-ablation sweep', 'batched, logitDiffMetric (no options)', `${fmt(tBatchedLib)} (first call ${fmt(tBatchedLibCold)})`]);
rows.push(['', 'batched, hand-written closure (full logits)', `${fmt(tBatched)} (first call ${fmt(tBatchedCold)})`]);
rows.push(['', 'batched, closure + logitPositions = last', `${fmt(tBatchedLast)} (first call ${fmt(tBatchedLastCold)})`]);
rows.push(['', seqLabel, fmt(tSeq)]);
ratios.push(`ablation sweep: sequential / batched with logitDiffMetric ${(tSeq / tBatchedLib).toFixed(1)}× (target ≥ 5); closure (full logits) ${(tSeq / tBatched).toFixed(1)}×; closure + logitPositions ${(tSeq / tBatchedLast).toFixed(1)}× ` +
  `(first calls, building the variants: ${(tSeq / tBatchedCold).toFixed(1)}× / ${(tSeq / tBatchedLastCold).toFixed(1)}×); ` +
  `max |metric difference| batched vs sequential over the ${heads.length} heads compared: ${worst.toExponential(1)}`);

// ---- generation ---------------------------------------------------------------------------------
const greedy = { maxNewTokens: NEW_TOKENS, doSample: false, stopAtEos: false, returnType: 'tokens' } as const;
const [, tBuild] = await time(() => model.generate(tokens, { ...greedy, maxNewTokens: 2 })); // builds the decoding session
// With the cache: the median of 3 runs (each ~100 short steps, the more sensitive to other load on the cores).
const kvRuns: [number[][], number][] = [];
for (let i = 0; i < 3; i++) kvRuns.push(await time(() => model.generate(tokens, greedy)));
const [withCache, tKv] = kvRuns.sort((a, b) => a[1] - b[1])[1];
const [withoutCache, tNoKv] = await time(() => model.generate(tokens, { ...greedy, useKvCache: false }));
const same = JSON.stringify(withCache) === JSON.stringify(withoutCache);
rows.push([`greedy generation, ${POS} + ${NEW_TOKENS} tokens`, 'with the KV cache (median of 3)', fmt(tKv)]);
rows.push(['', 'without (forward on the whole sequence per step)', fmt(tNoKv)]);
ratios.push(`generation: without / with the KV cache ${(tNoKv / tKv).toFixed(1)}× (target ≥ 5); same tokens: ${same}; ` +
  `first call (builds the decoding session, 2 tokens): ${fmt(tBuild)}`);

// ---- logit lens and direct logit attribution -------------------------------------------------------
// Each runs the model with a cache, then reads W_U (and W_O, W_out) transposed as the model stores them.
// Medians of 3, interleaved with a plain forward pass of the same tokens.
const lensT: Record<string, number[]> = { forward: [], logitLens: [], dla: [] };
for (let i = 0; i < 4; i++) {
  const [, tf] = await time(() => model.forward(tokens));
  const [, tl] = await time(() => logitLens(model, tokens, { topK: 5, target: 'next' }));
  const [, td] = await time(() => directLogitAttribution(model, tokens, { correct: A, incorrect: B }));
  if (i === 0) continue; // the first round builds the cached variants
  lensT.forward.push(tf);
  lensT.logitLens.push(tl);
  lensT.dla.push(td);
}
const mid3 = (a: number[]) => [...a].sort((x, y) => x - y)[1];
const [tFwd, tLens, tDla] = [mid3(lensT.forward), mid3(lensT.logitLens), mid3(lensT.dla)];
rows.push([`analyses of one prompt, ${POS} tokens`, 'forward (for scale)', fmt(tFwd)]);
rows.push(['', 'logitLens (13 residual streams × 20 positions, top 5 + next-token target)', fmt(tLens)]);
rows.push(['', 'directLogitAttribution (heads, neurons, layers)', fmt(tDla)]);
ratios.push(`analyses: logitLens / forward ${(tLens / tFwd).toFixed(1)}×; directLogitAttribution / forward ${(tDla / tFwd).toFixed(1)}×`);

console.log();
console.log('| task | run | time |');
console.log('|---|---|---|');
for (const r of rows) console.log(`| ${r.join(' | ')} |`);
console.log();
for (const r of ratios) console.log(r);
await model.dispose();
