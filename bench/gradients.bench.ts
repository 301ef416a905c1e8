/**
 * `npx tsx bench/gradients.bench.ts` (part of `npm run bench`): gradients on a GPT-2-small-shaped
 * random model (randomWeights(gpt2Config(), { seed: 1 })) at 20 tokens on this machine's CPU:
 *   - a forward + backward pass caching every hook point and its gradient (runWithCache with inclBwd,
 *     from the loss and from a logit difference) against a plain forward pass; target ≤ 3×;
 *   - attribution patching of every head × position (getAttrPatchAttnHeadOutByPos: one forward +
 *     backward pass of the corrupted prompt) against activation patching by head and position
 *     (getActPatchAttnHeadOutByPos: 2,880 patched runs, batched); target ≥ 50× faster;
 *   - the process's peak RSS.
 * Medians of interleaved runs (see engine.bench.ts's medians); prints a markdown table and the ratios.
 */
import { cpus, loadavg } from 'node:os';
import { getAttrPatchAttnHeadOutByPos, pearsonCorrelation } from '../hooks/analysis/attribution.ts';
import { logitDiffMetric, normalisedMetric } from '../hooks/analysis/metrics.ts';
import { getActPatchAttnHeadOutByPos } from '../hooks/analysis/patching.ts';
import { HookedTransformer } from '../hooks/HookedTransformer.ts';
import { listHookPoints } from '../hooks/hookPoints.ts';
import { gpt2Config, randomWeights } from '../hooks/init.ts';
import { Rng } from '../hooks/random.ts';
import { peakRssMiB } from './peakRss.ts';

const POS = 20;
const cfg = gpt2Config();
const fmt = (ms: number) => (ms >= 1000 ? `${(ms / 1000).toFixed(2)} s` : `${ms.toFixed(1)} ms`);

/** Medians of `runs` timed calls of each function, in turns (order reversed every other round), after one warm-up call each. */
async function medians(fns: Record<string, () => Promise<unknown>>, runs: number): Promise<Record<string, number>> {
  for (const fn of Object.values(fns)) await fn();
  const times: Record<string, number[]> = Object.fromEntries(Object.keys(fns).map((k) => [k, []]));
  const order = Object.entries(fns);
  for (let i = 0; i < runs; i++) {
    for (const [k, fn] of i % 2 === 0 ? order : [...order].reverse()) {
      await new Promise((r) => setTimeout(r, 20)); // let the previous session's threads stop spinning
      const t0 = performance.now();
      await fn();
      times[k].push(performance.now() - t0);
    }
  }
  return Object.fromEntries(Object.entries(times).map(([k, t]) => [k, [...t].sort((x, y) => x - y)[Math.floor(t.length / 2)]]));
}

console.log(`load average at start: ${loadavg().map((x) => x.toFixed(1)).join(', ')} (other processes share these cores: wall times include waiting for them)`);
console.log(`Lensboard gradients benchmark — ${cfg.n_layers} layers × ${cfg.n_heads} heads, d_model ${cfg.d_model}, d_vocab ${cfg.d_vocab}, ${POS} tokens, CPU (${cpus().length} cores)`);
const model = await HookedTransformer.fromWeights(cfg, randomWeights(cfg, { seed: 1 }), { device: 'cpu' });
const rng = new Rng(7);
const clean = [Array.from({ length: POS }, () => rng.int(0, cfg.d_vocab))];
const corrupted = [clean[0].map((t, p) => (p % 5 === 3 ? rng.int(0, cfg.d_vocab) : t))]; // every fifth token changed
const [A, B] = [rng.int(0, cfg.d_vocab), rng.int(0, cfg.d_vocab)];
const diff = logitDiffMetric({ correct: A, incorrect: B });
const every = listHookPoints(cfg).map((h) => h.name).filter((n) => !n.endsWith('attn.hook_result')); // runWithCache's default
const rows: string[][] = [];
const ratios: string[] = [];

// ---- forward + backward --------------------------------------------------------------------------
const t = await medians({
  forward: () => model.forward(clean),
  cache: () => model.runWithCache(clean, { namesFilter: every }),
  lossGrads: () => model.runWithCache(clean, { returnType: 'loss', inclBwd: true, namesFilter: every }),
  diffGrads: () => model.runWithCache(clean, { inclBwd: true, backwardFrom: diff, namesFilter: every }),
}, 9);
rows.push([`one prompt, ${POS} tokens`, 'forward (logits)', fmt(t.forward)]);
rows.push(['', `runWithCache, every hook point (${every.length})`, fmt(t.cache)]);
rows.push(['', 'runWithCache returnType loss, inclBwd: every hook point and its gradient', fmt(t.lossGrads)]);
rows.push(['', 'runWithCache backwardFrom logitDiffMetric, inclBwd: every hook point and its gradient (logits returned)', fmt(t.diffGrads)]);
ratios.push(`forward + backward with every gradient cached / forward: from the loss ${(t.lossGrads / t.forward).toFixed(2)}×, from a logit difference ${(t.diffGrads / t.forward).toFixed(2)}× (target ≤ 3); ` +
  `/ runWithCache of every hook point: ${(t.lossGrads / t.cache).toFixed(2)}× / ${(t.diffGrads / t.cache).toFixed(2)}×`);

// ---- attribution vs activation patching, every head × position ------------------------------------
const [cleanLogits, cleanCache] = await model.runWithCache(clean, { namesFilter: (n) => n.endsWith('attn.hook_z') });
const metric = normalisedMetric(diff, diff(cleanLogits), diff(await model.forward(corrupted)));
const ta = await medians({ attribution: () => getAttrPatchAttnHeadOutByPos(model, corrupted, cleanCache, metric) }, 5);
const t0 = performance.now();
const act = await getActPatchAttnHeadOutByPos(model, corrupted, cleanCache, metric); // ~a minute: timed once
const tAct = performance.now() - t0;
const attr = await getAttrPatchAttnHeadOutByPos(model, corrupted, cleanCache, metric);
const n = cfg.n_layers * POS * cfg.n_heads;
rows.push([`every head × position (${n}), ${POS} tokens`, 'attribution patching (getAttrPatchAttnHeadOutByPos: one forward + backward)', fmt(ta.attribution)]);
rows.push(['', `activation patching (getActPatchAttnHeadOutByPos: ${n} patched runs, batched; one run)`, fmt(tAct)]);
ratios.push(`attribution patching of every head × position: ${(tAct / ta.attribution).toFixed(0)}× faster than activation patching (target ≥ 50); ` +
  `Pearson r between them on this random model: ${pearsonCorrelation(attr.data, act.data).toFixed(3)}`);

console.log();
console.log('| task | run | time |');
console.log('|---|---|---|');
for (const r of rows) console.log(`| ${r.join(' | ')} |`);
console.log();
for (const r of ratios) console.log(r);
console.log(`peak RSS: ${peakRssMiB().toFixed(0)} MiB (the weights: ${(model.weights.byteLength / 2 ** 20).toFixed(0)} MiB fp32)`);
await model.dispose();
