/**
 * `npx tsx bench/circuits.bench.ts`: circuits from the weights on a GPT-2-small-shaped random model
 * (12 layers, 12 heads, d_model 768, d_head 64, d_vocab 50257; randomWeights(gpt2Config(), { seed: 1 }), LayerNorms folded),
 * on this machine's CPU. Times all composition scores (Q, K, V; target < 10 s together), copying scores,
 * the random baseline, reading past block 0's MLP (effective embedding, MLP linearisation), and the SVD of a rank-64 768×768 FactoredMatrix from its factors vs a dense SVD of
 * the same product. Prints a markdown table. `--quick` skips the dense SVD (the slow reference).
 */
import { cpus, loadavg } from 'node:os';
import { SingularValueDecomposition, Matrix } from 'ml-matrix';
import {
  FactoredMatrix, allCompositionScores, blockZeroMlpInputs, compositionBaseline, copyingScores, effectiveEmbedding, embeddingTokenSet,
  mlpLinearization, type CompositionMode,
} from '../hooks/circuits/index.ts';
import { gpt2Config, randomWeights } from '../hooks/init.ts';
import { Rng } from '../hooks/random.ts';
import { HookedTransformer } from '../hooks/HookedTransformer.ts';
import { Tensor } from '../hooks/tensor.ts';

const quick = process.argv.includes('--quick');
const cfg = gpt2Config();
const fmt = (ms: number) => (ms >= 1000 ? `${(ms / 1000).toFixed(2)} s` : `${ms.toFixed(1)} ms`);
const cpuNotes: string[] = [];
/** Runs fn, returning its result and wall time; records this process's CPU time (user + system, all threads) too. */
async function time<T>(fn: () => Promise<T> | T): Promise<[T, number]> {
  const c0 = process.cpuUsage();
  const t0 = performance.now();
  const r = await fn();
  const wall = performance.now() - t0;
  const c = process.cpuUsage(c0);
  cpuNotes.push(fmt((c.user + c.system) / 1000));
  return [r, wall];
}

console.log(`load average at start: ${loadavg().map((x) => x.toFixed(1)).join(', ')} (other processes share these cores: wall times include waiting for them)`);
console.log(`Lensboard circuits benchmark — ${cfg.n_layers} layers × ${cfg.n_heads} heads, d_model ${cfg.d_model}, d_head ${cfg.d_head}, d_vocab ${cfg.d_vocab}, CPU (${cpus().length} cores)`);
// LayerNorms folded (what reading past block 0's MLP needs); model.weight(name) makes a fresh TransformerLens-shaped copy per call (the copies are timed too).
const model = await HookedTransformer.fromWeights(cfg, randomWeights(cfg, { seed: 1 }), { foldLn: true });

const rows: [string, string, string, string][] = [];
let total = 0;
let totalCpu = 0;
for (const mode of ['Q', 'K', 'V'] as CompositionMode[]) {
  const c0 = process.cpuUsage();
  const [s, ms] = await time(() => allCompositionScores(model, mode));
  const c = process.cpuUsage(c0);
  totalCpu += (c.user + c.system) / 1000;
  total += ms;
  let max = 0;
  for (const v of s.data) max = Math.max(max, v);
  rows.push([`allCompositionScores('${mode}') [12, 12, 12, 12]`, fmt(ms), cpuNotes.at(-1)!, `max score ${max.toFixed(3)}${mode === 'Q' ? ' (includes building the onnxruntime sessions)' : ''}`]);
}
rows.push(['all composition scores, Q + K + V', fmt(total), fmt(totalCpu), total < 10_000 ? 'target < 10 s (wall): met' : 'target < 10 s (wall): missed on this run']);

const [base, msBase] = await time(() => compositionBaseline(model, 'K', { samples: 100, seed: 0 }));
rows.push(['compositionBaseline (100 random pairs)', fmt(msBase), cpuNotes.at(-1)!, `mean ${base.mean.toFixed(4)} ± ${base.std.toFixed(4)} (1/√d_model = ${(1 / Math.sqrt(cfg.d_model)).toFixed(4)})`]);

const [cs, msCopy] = await time(() => copyingScores(model));
rows.push(['copyingScores [12, 12] (incl. W_U W_E, 768×50257×768)', fmt(msCopy), cpuNotes.at(-1)!, `range ${Math.min(...cs.data).toFixed(3)} … ${Math.max(...cs.data).toFixed(3)}`]);

// Reading past block 0's MLP (the weights are random, so only the times mean something).
const mlpModel = model;
const tokenSet = embeddingTokenSet(mlpModel);
const [emb, msEmb] = await time(() => effectiveEmbedding(mlpModel, tokenSet));
rows.push([`effectiveEmbedding (${tokenSet.length} tokens)`, fmt(msEmb), cpuNotes.at(-1)!, `[${emb.vectors.shape.join(', ')}]`]);
const [csPast, msCopyPast] = await time(() => copyingScores(model, { embedding: emb }));
rows.push(['copyingScores through it', fmt(msCopyPast), cpuNotes.at(-1)!, `range ${Math.min(...csPast.data).toFixed(3)} … ${Math.max(...csPast.data).toFixed(3)}`]);
const [M0, msLin] = await time(async () => mlpLinearization(mlpModel, 0, blockZeroMlpInputs(mlpModel, tokenSet)));
rows.push(['blockZeroMlpInputs (256) + mlpLinearization of block 0', fmt(msLin), cpuNotes.at(-1)!, `[${M0.shape.join(', ')}]`]);
const [, msKPast] = await time(() => allCompositionScores(model, 'K', { outputMaps: [M0] }));
rows.push(["allCompositionScores('K', {outputMaps: [M0]})", fmt(msKPast), cpuNotes.at(-1)!, 'layer-0 heads read past block 0\'s MLP']);

// SVD of a rank-64 768×768 product: from the factors vs dense.
const rng = new Rng(2);
const A = new Tensor(rng.normals(768 * 64), [768, 64]);
const B = new Tensor(rng.normals(64 * 768), [64, 768]);
const [svd, msFactored] = await time(() => new FactoredMatrix(A, B).svd());
rows.push(['FactoredMatrix.svd(), rank 64, 768×768 (from factors)', fmt(msFactored), cpuNotes.at(-1)!, `S[0] = ${svd.S.data[0].toFixed(3)}, S[63] = ${svd.S.data[63].toFixed(3)}`]);
if (!quick) {
  const fm = new FactoredMatrix(A, B);
  const [dense, msAB] = await time(() => fm.AB);
  const rowsArr = Array.from({ length: 768 }, (_, i) => Array.from(dense.data.subarray(i * 768, (i + 1) * 768)));
  const cpuAB = cpuNotes.pop()!;
  const [dsvd, msDense] = await time(() => new SingularValueDecomposition(new Matrix(rowsArr)));
  const cpuSvd = cpuNotes.pop()!;
  let worst = 0;
  for (let i = 0; i < 64; i++) worst = Math.max(worst, Math.abs(dsvd.diagonal[i] - svd.S.data[i]) / dsvd.diagonal[0]);
  rows.push(['dense AB + dense SVD of it (ml-matrix)', fmt(msDense + msAB), `${cpuAB} + ${cpuSvd}`, `${((msDense + msAB) / msFactored).toFixed(0)}× slower; max |ΔS|/S[0] = ${worst.toExponential(1)}`]);
}

console.log('\n| what | wall | CPU (all threads) | notes |\n|---|---|---|---|');
for (const [a, b, c, d] of rows) console.log(`| ${a} | ${b} | ${c} | ${d} |`);
await model.dispose();
