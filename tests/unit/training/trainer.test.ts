/** The training loop (determinism, resume, learning), the HF export read back by HookedTransformer, and the `train` command. */
import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { HookedTransformer } from '../../../hooks/HookedTransformer.ts';
import { gpt2Config } from '../../../hooks/init.ts';
import { Rng } from '../../../hooks/random.ts';
import { runTrainCli } from '../../../training/cli.ts';
import { exportHfCheckpoint } from '../../../training/export.ts';
import { forwardBackward, fullVocabLogits, type ClassBatch } from '../../../training/model/forwardBackward.ts';
import { getParam, initParams, type ParamSet } from '../../../training/model/params.ts';
import { buildSeenVocab } from '../../../training/model/vocab.ts';
import { OrtKernels } from '../../../training/ops/kernels.ts';
import { batchClasses, train, type TrainOptions } from '../../../training/trainer.ts';

const dirs: string[] = [];
async function tmp(): Promise<string> {
  const d = await mkdtemp(join(tmpdir(), 'lensboard-train-'));
  dirs.push(d);
  return d;
}
const kernels = await OrtKernels.create(1);
afterAll(async () => {
  await kernels.dispose();
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

// A toy language over 40 of 60 tokens: next = (3·t + 1) mod 40 with 10 % noise.
const cfg = gpt2Config({ n_layers: 1, d_model: 16, n_heads: 2, d_vocab: 60, n_ctx: 16 });
const vocab = buildSeenVocab(Array.from({ length: 40 }, (_, i) => i), cfg.d_vocab);
function toyBatch(seed: number, rows = 4, pos = 12): ClassBatch {
  const rng = new Rng(seed);
  const inputs = new Int32Array(rows * pos);
  const targets = new Int32Array(rows * pos);
  for (let b = 0; b < rows; b++) {
    let t = rng.int(0, 40);
    for (let p = 0; p < pos; p++) {
      inputs[b * pos + p] = vocab.classOf[t];
      t = rng.next() < 0.1 ? rng.int(0, 40) : (3 * t + 1) % 40;
      targets[b * pos + p] = vocab.classOf[t];
    }
  }
  return { batch: rows, pos, inputs, targets };
}
const base = (over: Partial<TrainOptions> = {}): TrainOptions => ({
  cfg, vocab, batchAt: (s) => toyBatch(1000 + s), steps: 6, seed: 7, lr: 1e-2, warmupSteps: 2, kernels, log: () => {}, ...over,
});
const same = (a: ParamSet, b: ParamSet) => a.specs.every((s) => getParam(a, s.name).every((v, i) => v === getParam(b, s.name)[i]));

describe('train', () => {
  it('is deterministic: two runs with the same seed give identical weights; another seed differs', async () => {
    const a = await train(base());
    const b = await train(base());
    expect(same(a.params, b.params)).toBe(true);
    const c = await train(base({ seed: 8 }));
    expect(same(a.params, c.params)).toBe(false);
  });

  it('resumes exactly: 3 steps + resume to 6 equals 6 steps straight', async () => {
    const dir = await tmp();
    const straight = await train(base());
    await train(base({ steps: 6, outDir: dir, checkpointEvery: 3, batchAt: (s) => { if (s >= 3) throw new Error('stop'); return toyBatch(1000 + s); } })).catch((e: Error) => {
      if (e.message !== 'stop') throw e;
    });
    const files = await readdir(join(dir, 'trainer'));
    expect(files.sort()).toEqual(['state.json', 'state.safetensors']);
    const resumed = await train(base({ outDir: dir, resume: true }));
    expect(resumed.step).toBe(6);
    expect(same(straight.params, resumed.params)).toBe(true);
    await expect(train(base({ outDir: await tmp(), resume: true }))).rejects.toThrow(/--resume needs a checkpoint/);
  });

  it('an untied unembedding trains, checkpoints and resumes exactly; resuming with the other setting is refused', async () => {
    const dir = await tmp();
    const straight = await train(base({ untied: true }));
    expect(straight.params.data.has('lm_head.weight')).toBe(true);
    await train(base({ untied: true, steps: 6, outDir: dir, checkpointEvery: 3, batchAt: (s) => { if (s >= 3) throw new Error('stop'); return toyBatch(1000 + s); } })).catch((e: Error) => {
      if (e.message !== 'stop') throw e;
    });
    await expect(train(base({ outDir: dir, resume: true }))).rejects.toThrow(/has an untied unembedding; resume with the same setting/);
    const resumed = await train(base({ untied: true, outDir: dir, resume: true }));
    expect(same(straight.params, resumed.params)).toBe(true);
  });

  it('lazy embedding rows: from lazyEmbeddingFrom on, only the rows of classes in the batch (inputs or targets) change', async () => {
    // steps 3–5: every row is class a → class b, so every other embedding row is absent from those batches
    const [a, b] = [vocab.classOf[5], vocab.classOf[16]];
    const pair = (): ClassBatch => ({ batch: 2, pos: 12, inputs: new Int32Array(24).fill(a), targets: new Int32Array(24).fill(b) });
    const batchAt = (s: number) => (s < 3 ? toyBatch(1000 + s) : pair());
    expect(Array.from(batchClasses(pair(), vocab.nClasses)).flatMap((f, c) => (f ? [c] : []))).toEqual([a, b].sort((x, y) => x - y));
    const first3 = await train(base({ steps: 3, batchAt }));
    const lazy = await train(base({ batchAt, lazyEmbeddingFrom: 3 }));
    const plain = await train(base({ batchAt }));
    const D = cfg.d_model;
    const row = (p: ParamSet, c: number) => Array.from(getParam(p, 'wte.weight').subarray(c * D, (c + 1) * D));
    for (let c = 0; c < vocab.nClasses; c++) {
      if (c === a || c === b) expect(row(lazy.params, c)).not.toEqual(row(first3.params, c));
      else expect(row(lazy.params, c), `class ${c}`).toEqual(row(first3.params, c));
    }
    expect(row(plain.params, 0)).not.toEqual(row(first3.params, 0));
    // before lazyEmbeddingFrom the run is the plain one
    expect(same((await train(base({ batchAt, lazyEmbeddingFrom: 6 }))).params, plain.params)).toBe(true);
  });

  it('a short run lowers the held-out loss', async () => {
    const evalSets = [{ name: 'held_out', batches: [toyBatch(99, 8)] }];
    const before = (await forwardBackward(cfg, vocab, initParams(cfg, vocab.nClasses, { seed: 7 }), evalSets[0].batches[0], kernels)).loss;
    const res = await train(base({ steps: 60, lr: 2e-2, evalSets, evalEvery: 60 }));
    const after = res.evals[res.evals.length - 1].losses.held_out;
    expect(before).toBeGreaterThan(3.5); // ≈ ln 41 at init
    expect(after).toBeLessThan(before - 1);
  });
});

describe('export', () => {
  const big = gpt2Config({ n_layers: 2, d_model: 16, n_heads: 4, n_ctx: 16 }); // GPT-2's full 50257 vocabulary
  const seenTokens = [50256, ...Array.from({ length: 300 }, (_, i) => 200 + 7 * i)];
  const bigVocab = buildSeenVocab(seenTokens, big.d_vocab);
  const params = initParams(big, bigVocab.nClasses, { seed: 5, std: 0.3, randomAffine: true });
  // inputs and targets include unseen tokens (1, 2, 3, 50000)
  const tokens = [[50256, 207, 1, 214, 2, 221, 221, 50000], [50256, 3, 228, 235, 207, 2, 242, 249]];
  const batch: ClassBatch = { batch: 2, pos: 8, inputs: Int32Array.from(tokens.flat().map((t) => bigVocab.classOf[t])), targets: new Int32Array(16).fill(-1) };
  tokens.forEach((row, b) => row.forEach((_, p) => { if (p < 7) batch.targets[b * 8 + p] = bigVocab.classOf[row[p + 1]]; }));

  it('writes an HF checkpoint that HookedTransformer loads, with the trainer forward logits (|Δ| ≤ 1e-4) and loss: full-vocab loss = grouped loss', async () => {
    const dir = await tmp();
    expect(await exportHfCheckpoint(dir, big, bigVocab, params)).toBe('F32');
    expect((await readdir(dir)).sort()).toEqual(['config.json', 'merges.txt', 'model.safetensors', 'special_tokens_map.json', 'tokenizer.json', 'tokenizer_config.json', 'vocab.json']);
    expect(JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8')).vocab_size).toBe(50257);
    const model = await HookedTransformer.fromPretrainedNoProcessing(dir, { threads: 1 });
    const logits = await model.forward(tokens);
    const mine = await fullVocabLogits(big, bigVocab, params, batch, kernels);
    expect(logits.shape).toEqual([2, 8, 50257]);
    let maxDiff = 0;
    for (let i = 0; i < mine.length; i++) maxDiff = Math.max(maxDiff, Math.abs(mine[i] - logits.data[i]));
    expect(maxDiff).toBeLessThan(1e-4);
    // every unseen token reads the shared row u: equal logits for 1 and 50000
    expect(logits.data[5 * 50257 + 1]).toBe(logits.data[5 * 50257 + 50000]);
    const fullLoss = (await model.forward(tokens, { returnType: 'loss' })) as number;
    const grouped = await forwardBackward(big, bigVocab, params, batch, kernels);
    expect(Math.abs(fullLoss - grouped.loss)).toBeLessThan(1e-4);
    await model.dispose();
  });

  it('an untied unembedding exports as lm_head.weight (tie_word_embeddings false) and loads as W_U, with the trainer forward logits (|Δ| ≤ 1e-4)', async () => {
    const untied = initParams(big, bigVocab.nClasses, { seed: 5, std: 0.3, randomAffine: true, untied: true });
    const dir = await tmp();
    await exportHfCheckpoint(dir, big, bigVocab, untied);
    expect(JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8')).tie_word_embeddings).toBe(false);
    const tiedDir = await tmp();
    await exportHfCheckpoint(tiedDir, big, bigVocab, params, { tokenizer: false });
    expect(JSON.parse(readFileSync(join(tiedDir, 'config.json'), 'utf8')).tie_word_embeddings).toBe(true);
    const model = await HookedTransformer.fromPretrainedNoProcessing(dir, { threads: 1 });
    const logits = await model.forward(tokens);
    const mine = await fullVocabLogits(big, bigVocab, untied, batch, kernels);
    let maxDiff = 0;
    for (let i = 0; i < mine.length; i++) maxDiff = Math.max(maxDiff, Math.abs(mine[i] - logits.data[i]));
    expect(maxDiff).toBeLessThan(1e-4);
    // W_U is lm_headᵀ, not W_Eᵀ: row 207's unembedding column differs from its embedding
    const W_U = model.W_U;
    const W_E = model.W_E;
    const col = Array.from({ length: big.d_model }, (_, d) => W_U.data[d * big.d_vocab + 207]);
    expect(col).not.toEqual(Array.from(W_E.data.subarray(207 * big.d_model, 208 * big.d_model)));
    const fullLoss = (await model.forward(tokens, { returnType: 'loss' })) as number;
    expect(Math.abs(fullLoss - (await forwardBackward(big, bigVocab, untied, batch, kernels)).loss)).toBeLessThan(1e-4);
    await model.dispose();
  });

  it('the grouped softmax sums the full softmax over unseen tokens: p(unseen class) = n_unseen · p(one unseen token)', async () => {
    const full = await fullVocabLogits(big, bigVocab, params, batch, kernels);
    const r = 3; // one row
    const row = full.subarray(r * 50257, (r + 1) * 50257);
    let max = -Infinity;
    for (const v of row) max = Math.max(max, v);
    let z = 0;
    for (const v of row) z += Math.exp(v - max);
    let unseenMass = 0;
    for (let t = 0; t < 50257; t++) if (bigVocab.classOf[t] === bigVocab.unseenClass) unseenMass += Math.exp(row[t] - max) / z;
    const oneUnseen = Math.exp(row[1] - max) / z;
    expect(unseenMass / oneUnseen).toBeCloseTo(bigVocab.nUnseen, 3);
  });
});

describe('train command', () => {
  it('trains on a text file and writes a directory HookedTransformer.fromPretrained opens', async () => {
    const dir = await tmp();
    const data = join(dir, 'input.txt');
    await writeFile(data, readFileSync(new URL('../../../data/tinyshakespeare.txt', import.meta.url), 'utf8').slice(0, 4000));
    const out = join(dir, 'model');
    const lines: string[] = [];
    const res = await runTrainCli(['--data', data, '--out', out, '--layers', '1', '--d-model', '16', '--heads', '2', '--ctx', '16', '--steps', '4', '--batch', '2', '--lr', '3e-3', '--threads', '1', '--init-std', '0.05'], (l) => lines.push(l));
    expect(res.step).toBe(4);
    expect(lines.some((l) => /step 4\/4 {2}loss \d+\.\d+ .* tok\/s .* ETA/.test(l))).toBe(true);
    expect(lines.some((l) => l.startsWith('eval step 4: held_out'))).toBe(true);
    const model = await HookedTransformer.fromPretrained(out, { threads: 1 });
    expect(model.cfg.n_layers).toBe(1);
    expect(model.cfg.d_model).toBe(16);
    expect(model.toStrTokens('First Citizen')).toEqual(['<|endoftext|>', 'First', ' Citizen']);
    const loss = (await model.forward('First Citizen:', { returnType: 'loss' })) as number;
    expect(Number.isFinite(loss)).toBe(true);
    await model.dispose();
  });

  it('rejects bad arguments with a clear message', async () => {
    await expect(runTrainCli(['--out', 'x'])).rejects.toThrow(/missing required option --data/);
    await expect(runTrainCli(['--data', 'x', '--out', 'y', '--d-model', '10', '--heads', '4'])).rejects.toThrow(/divisible/);
    await expect(runTrainCli(['--data', 'x', '--out', 'y', '--bogus', '1'])).rejects.toThrow(/unknown option --bogus/);
    await expect(runTrainCli(['--data', '/nonexistent/file.txt', '--out', 'y'])).rejects.toThrow(/cannot read training data/);
  });
});
