/**
 * The SAE pipeline on a tiny GPT-2 with the real tokenizer: corpus contexts (chunked tokenization =
 * the whole text's tokens; train/held-out parts), harvesting (= the cache's rows without BOS),
 * evaluateSae against the same metrics computed here with JS hooks and the plain-TypeScript SAE, and
 * `npm run train:sae` end to end (SAELens files that load, training.json, the CLI's errors).
 */
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HookedTransformer } from '../../../hooks/HookedTransformer.ts';
import { corpusContexts, fileTokens } from '../../../hooks/sae/corpus.ts';
import { evaluateSae } from '../../../hooks/sae/evaluate.ts';
import { harvestActivations } from '../../../hooks/sae/harvest.ts';
import { Sae } from '../../../hooks/sae/Sae.ts';
import { Tensor } from '../../../hooks/tensor.ts';
import { runTrainSaeCli } from '../../../training/sae/cli.ts';
import { randomSaeWeights, refEncodeRow, refReconstructRow, type RefSaeConfig } from '../../helpers/sae.ts';
import { writeTinyCheckpoint } from '../cli/tinyModel.ts';

const BOS = 50256;
let work: string;
let modelDir: string;
let corpus: string;
let text: string;
let model: HookedTransformer;

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'lensboard-sae-pipeline-'));
  modelDir = join(work, 'tiny');
  await writeTinyCheckpoint(modelDir, 3);
  text = (await readFile(new URL('../../../data/tinyshakespeare.txt', import.meta.url), 'utf8')).slice(0, 30_000);
  corpus = join(work, 'corpus.txt');
  await writeFile(corpus, text);
  model = await HookedTransformer.fromPretrained(modelDir, { threads: 1 });
});
afterAll(async () => {
  await model?.dispose();
  await rm(work, { recursive: true, force: true });
});

async function collect<T>(it: AsyncIterable<T>, max = Infinity): Promise<T[]> {
  const out: T[] = [];
  for await (const v of it) {
    out.push(v);
    if (out.length >= max) break;
  }
  return out;
}

describe('corpus contexts', () => {
  it('tokenizing the file in small chunks gives the tokens of the whole text', async () => {
    const chunks = await collect(fileTokens(corpus, model.tokenizer!, 0, Buffer.byteLength(text), 2048));
    expect(chunks.length).toBeGreaterThan(5);
    expect(chunks.flat()).toEqual(model.tokenizer!.encode(text));
  });

  it('contexts are BOS + consecutive tokens; train and held-out parts split the file at a line', async () => {
    const whole = model.tokenizer!.encode(text);
    const ctxs = await collect(corpusContexts(corpus, model.tokenizer!, { contextSize: 16, chunkBytes: 4096 }));
    expect(ctxs.every((c) => c.length === 16 && c[0] === BOS)).toBe(true);
    expect(ctxs.flatMap((c) => c.slice(1))).toEqual(whole.slice(0, ctxs.length * 15));
    expect(ctxs.length).toBe(Math.floor(whole.length / 15));
    const train = (await collect(corpusContexts(corpus, model.tokenizer!, { contextSize: 16, split: 'train' }))).flatMap((c) => c.slice(1));
    const held = (await collect(corpusContexts(corpus, model.tokenizer!, { contextSize: 16, split: 'heldOut' }))).flatMap((c) => c.slice(1));
    const cut = Math.floor(Buffer.byteLength(text) * 0.9);
    const heldText = text.slice(text.indexOf('\n', cut) + 1);
    expect(held).toEqual(model.tokenizer!.encode(heldText).slice(0, held.length));
    expect(train.length + held.length).toBeGreaterThan(whole.length - 40);
    expect(train.length).toBeGreaterThan(held.length * 7);
    // Looping passes start at shifted offsets.
    const looped = await collect(corpusContexts(corpus, model.tokenizer!, { contextSize: 16, split: 'heldOut', loop: true, seed: 3 }), 2 * (held.length / 15) + 2);
    expect(looped.length).toBeGreaterThan(held.length / 15);
    await expect(collect(corpusContexts(join(work, 'nope.txt'), model.tokenizer!, { contextSize: 16 }))).rejects.toThrow(/cannot read the corpus .*nope\.txt: no such file/);
    await expect(collect(corpusContexts(corpus, model.tokenizer!, { contextSize: 100_000 }))).rejects.toThrow(/fewer than 99999 tokens/);
  });
});

describe('harvesting and evaluation', () => {
  const contexts = (n: number) => {
    const t = model.tokenizer!.encode(text);
    return Array.from({ length: n }, (_, i) => [BOS, ...t.slice(i * 11, i * 11 + 11)]);
  };

  it('harvested rows are the cached hook values at every position but BOS, with their tokens and places', async () => {
    const ctxs = contexts(5);
    ctxs[2][6] = BOS; // a BOS in the middle is left out too
    const batches = await collect(harvestActivations(model, 'blocks.1.hook_resid_mid', ctxs, { batchSize: 2 }));
    expect(batches.map((b) => b.contexts.length)).toEqual([2, 2, 1]);
    const [, cache] = await model.runWithCache(ctxs, { namesFilter: 'blocks.1.hook_resid_mid' });
    const x = cache.get('blocks.1.hook_resid_mid');
    let rows = 0;
    batches.forEach((batch, k) => {
      for (let r = 0; r < batch.rows; r++) {
        const b = 2 * k + batch.context[r];
        const p = batch.position[r];
        expect(batch.tokens[r]).toBe(ctxs[b][p]);
        expect(ctxs[b][p]).not.toBe(BOS);
        for (let i = 0; i < 32; i++) expect(Math.abs(batch.acts[r * 32 + i] - x.get(b, p, i))).toBeLessThan(1e-5);
      }
      rows += batch.rows;
    });
    expect(rows).toBe(5 * 12 - 5 - 1);
  });

  it('evaluateSae = the metrics computed with JS hooks and the plain-TypeScript SAE (1e-4)', async () => {
    const hook = 'blocks.0.hook_resid_post';
    const ref: RefSaeConfig = { architecture: 'standard', d_in: 32, d_sae: 48, apply_b_dec_to_input: true, normalize_activations: 'none' };
    const w = randomSaeWeights('standard', 32, 48, 5);
    for (let f = 40; f < 48; f++) w.b_enc![f] = -100; // some features never fire
    const sae = Sae.fromWeights({ ...ref, hook_name: hook }, w);
    const ctxs = contexts(6);
    ctxs[3][5] = BOS;
    const result = await evaluateSae(model, sae, ctxs, { batchSize: 4, denseThreshold: 0.3 });

    const notBos = (b: number, p: number) => ctxs[b][p] !== BOS;
    const meanLoss = (loss: Tensor) => {
      let s = 0;
      let n = 0;
      for (let b = 0; b < 6; b++) for (let p = 0; p < 11; p++) if (notBos(b, p)) { s += loss.get(b, p); n++; }
      return s / n;
    };
    const replaceRows = (fn: (row: Float32Array) => ArrayLike<number>) => (x: Tensor) => {
      const out = x.clone();
      for (let b = 0; b < 6; b++) for (let p = 0; p < 12; p++) if (notBos(b, p)) out.data.set(Float32Array.from(fn(x.data.subarray((b * 12 + p) * 32, (b * 12 + p + 1) * 32))), (b * 12 + p) * 32);
      return out;
    };
    const clean = meanLoss((await model.forward(ctxs, { returnType: 'loss', lossPerToken: true })) as Tensor);
    const spliced = meanLoss((await model.runWithHooks(ctxs, { returnType: 'loss', lossPerToken: true, fwdHooks: [[hook, replaceRows((r) => refReconstructRow(ref, w, r))]] })) as Tensor);
    const ablated = meanLoss((await model.runWithHooks(ctxs, { returnType: 'loss', lossPerToken: true, fwdHooks: [[hook, replaceRows(() => new Float64Array(32))]] })) as Tensor);
    expect(result.ceLossClean).toBeCloseTo(clean, 4);
    expect(result.ceLossSpliced).toBeCloseTo(spliced, 4);
    expect(result.ceLossZeroAblated).toBeCloseTo(ablated, 4);
    expect(result.ceLossRecovered).toBeCloseTo((ablated - spliced) / (ablated - clean), 4);

    const [, cache] = await model.runWithCache(ctxs, { namesFilter: hook });
    const rows: Float32Array[] = [];
    for (let b = 0; b < 6; b++) for (let p = 0; p < 12; p++) if (notBos(b, p)) rows.push(cache.get(hook).data.subarray((b * 12 + p) * 32, (b * 12 + p + 1) * 32));
    const mean = new Float64Array(32);
    for (const r of rows) r.forEach((v, i) => (mean[i] += v / rows.length));
    let sse = 0;
    let sst = 0;
    let active = 0;
    const fires = new Float64Array(48);
    for (const r of rows) {
      const recon = refReconstructRow(ref, w, r);
      r.forEach((v, i) => { sse += (v - recon[i]) ** 2; sst += (v - mean[i]) ** 2; });
      refEncodeRow(ref, w, r).acts.forEach((a, f) => { if (a > 0) { active++; fires[f]++; } });
    }
    expect(result.tokens).toBe(rows.length);
    expect(result.explainedVariance).toBeCloseTo(1 - sse / sst, 4);
    expect(result.mse).toBeCloseTo(sse / rows.length, 4);
    expect(result.l0).toBeCloseTo(active / rows.length, 6);
    expect(Array.from(result.featureDensity)).toEqual(Array.from(fires, (c) => Math.fround(c / rows.length)));
    expect(result.deadFraction).toBe(fires.filter((c) => c === 0).length / 48);
    expect(result.deadFraction).toBeGreaterThanOrEqual(8 / 48);
    expect(result.denseFraction).toBe(fires.filter((c) => c / rows.length > 0.3).length / 48);
    expect(result.densityHistogram.dead + result.densityHistogram.counts.reduce((a, b) => a + b, 0)).toBe(48);
    await sae.dispose();
  });
});

describe('npm run train:sae', () => {
  it('trains a TopK SAE that loads with Sae.fromPretrained, with training.json and sparsity', async () => {
    const out = join(work, 'sae-out');
    const lines: string[] = [];
    const res = await runTrainSaeCli(
      ['--model', modelDir, '--hook', 'blocks.0.hook_resid_post', '--d-sae', '64', '--arch', 'topk', '--k', '4', '--tokens', '6144', '--out', out,
        '--data', corpus, '--ctx', '32', '--batch', '512', '--buffer', '2048', '--eval-tokens', '512', '--lr', '0.003', '--threads', '1'],
      (l) => lines.push(l),
    );
    expect(res.steps).toBe(12);
    expect(lines.some((l) => /step 12\/12 loss [\d.]+ \(mse [\d.]+ \+ [\d.]+\) L0 4\.0 dead [\d.]+% EV/.test(l))).toBe(true);
    const sae = await Sae.fromPretrained(out);
    expect(sae.cfg).toMatchObject({ architecture: 'topk', k: 4, d_in: 32, d_sae: 64, hook_name: 'blocks.0.hook_resid_post', hook_layer: 0, context_size: 32, normalize_activations: 'none' });
    expect(sae.logSparsity!.length).toBe(64);
    // The normalisation is folded in: decoder rows have norm 1 / factor.
    for (let f = 0; f < 64; f += 9) expect(Math.hypot(...sae.featureDirection(f))).toBeCloseTo(1 / res.scalingFactor, 4);
    const summary = JSON.parse(await readFile(join(out, 'training.json'), 'utf8'));
    expect(summary).toMatchObject({ command: 'train:sae', architecture: 'topk', k: 4, d_sae: 64, tokens: 6144, steps: 12 });
    expect(summary.heldOut.l0).toBeCloseTo(4, 5);
    expect(summary.heldOut.explainedVariance).toBeGreaterThan(0);
    // The trained SAE splices in and reconstructs better than nothing.
    expect(res.heldOut.ceLossRecovered).toBeGreaterThan(0);
    await sae.dispose();
  });

  it('refuses bad options, naming them', async () => {
    const base = ['--model', modelDir, '--hook', 'blocks.0.hook_resid_post', '--d-sae', '8', '--tokens', '10', '--out', join(work, 'x')];
    await expect(runTrainSaeCli([...base, '--arch', 'gated'])).rejects.toThrow(/--arch must be standard or topk; got 'gated'/);
    await expect(runTrainSaeCli([...base, '--arch', 'topk'])).rejects.toThrow(/--arch topk needs --k/);
    await expect(runTrainSaeCli([...base, '--arch', 'topk', '--k', '2', '--l1', '3'])).rejects.toThrow(/--l1 is the standard SAE's sparsity coefficient/);
    await expect(runTrainSaeCli([...base, '--arch', 'standard', '--batchsize', '3'])).rejects.toThrow(/unknown option --batchsize/);
    await expect(runTrainSaeCli(['--model', modelDir, '--hook', 'blocks.9.hook_resid_post', '--d-sae', '8', '--tokens', '10', '--out', join(work, 'x'), '--arch', 'standard', '--data', corpus])).rejects.toThrow(/'blocks\.9\.hook_resid_post' is not a hook point of this model/);
  });
});
