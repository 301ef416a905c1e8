/**
 * Neurons against brute force from the reference forward: the top neurons by activation, a neuron's output tokens
 * through W_U, every neuron's top-k corpus examples (one per context, BOS left out) and densities, the example
 * windows' activations; the disk cache (written once per model and corpus, read back equal, keyed by the weights'
 * digest, a damaged file ignored); the held-out corpus is the trainer's split, tokenized in pieces like the whole.
 */
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { withModel } from '../../../hooks/analysis/cache.ts';
import {
  cachedNeuronExamples, harvestNeuronExamples, lensboardCacheDir, NeuronExamples, neuronExampleWindows, neuronExamplesPath,
} from '../../../hooks/analysis/neuronExamples.ts';
import { neuronActivations, neuronOutputTokens, topNeuronsByActivation } from '../../../hooks/analysis/neurons.ts';
import { contextsOf, encodeInPieces, readHeldOutTokens, splitTokens, TINY_SHAKESPEARE } from '../../../hooks/datasets/text.ts';
import { HookedTransformer } from '../../../hooks/HookedTransformer.ts';
import { blockHook } from '../../../hooks/hookPoints.ts';
import { referenceForward } from '../../../hooks/reference.ts';
import { Gpt2Tokenizer } from '../../../hooks/tokenizer.ts';
import { cloneWeights, tinyConfig, tinyWeights, tokenBatch } from '../engine/helpers.ts';

const cfg = tinyConfig({ n_layers: 2, d_model: 16, n_heads: 4, d_vocab: 60, n_ctx: 32 });
let model: HookedTransformer;
let tok: Gpt2Tokenizer;
let tmp: string;

beforeAll(async () => {
  model = await HookedTransformer.fromWeights(cfg, cloneWeights(tinyWeights(cfg, 5)), {
    threads: 1, foldLn: true, centerWritingWeights: true, centerUnembed: true, foldValueBiases: true,
  });
  tok = await Gpt2Tokenizer.default();
  tmp = await mkdtemp(join(tmpdir(), 'lensboard-neurons-'));
});
afterAll(async () => {
  await model?.dispose();
  await rm(tmp, { recursive: true, force: true });
});

/** hook_post of `layer` from the reference forward, [rows, pos, d_mlp]. */
function referencePost(m: HookedTransformer, rows: number[][], layer: number) {
  return referenceForward(m.cfg, m.rawWeights, rows).cache.get(blockHook(layer, 'mlp.hook_post'))!;
}

describe('neurons of a prompt', () => {
  const [prompt] = tokenBatch(1, 12, cfg.d_vocab, 4);

  it('top neurons by activation: the largest activations over positions 1.. (BOS left out), brute force', async () => {
    const [, c] = await model.runWithCache([prompt]);
    const top = topNeuronsByActivation(withModel(c, model), 7);
    const all: { layer: number; neuron: number; activation: number; position: number }[] = [];
    for (let l = 0; l < 2; l++) {
      const post = referencePost(model, [prompt], l);
      for (let n = 0; n < cfg.d_mlp; n++) {
        let best = -Infinity;
        let at = -1;
        for (let p = 1; p < prompt.length; p++) if (post.get(0, p, n) > best) [best, at] = [post.get(0, p, n), p];
        all.push({ layer: l, neuron: n, activation: best, position: at });
      }
    }
    all.sort((a, b) => b.activation - a.activation);
    expect(top.map((t) => [t.layer, t.neuron, t.position])).toEqual(all.slice(0, 7).map((t) => [t.layer, t.neuron, t.position]));
    top.forEach((t, i) => expect(t.activation).toBeCloseTo(all[i].activation, 5));
    const acts = neuronActivations(withModel(c, model), 1, 3);
    const ref = referencePost(model, [prompt], 1);
    expect(Array.from(acts)).toEqual(Array.from({ length: 12 }, (_v, p) => expect.closeTo(ref.get(0, p, 3), 5)));
  });

  it('output tokens: W_out[n] · W_U, largest and smallest (brute force on the raw weights)', () => {
    const w = model.rawWeights;
    const { d_model, d_vocab } = cfg;
    const n = 9;
    const values = Array.from({ length: d_vocab }, (_v, t) => {
      let s = 0;
      for (let d = 0; d < d_model; d++) s += w.blocks[1].W_out[n * d_model + d] * w.W_U[d * d_vocab + t];
      return s;
    });
    const order = values.map((v, t) => [v, t] as const).sort((a, b) => b[0] - a[0]);
    const r = neuronOutputTokens(model, 1, n, 5);
    expect(r.top.map((x) => x.token)).toEqual(order.slice(0, 5).map((x) => x[1]));
    expect(r.bottom.map((x) => x.token)).toEqual(order.slice(-5).reverse().map((x) => x[1]));
    r.top.forEach((x) => expect(x.value).toBeCloseTo(values[x.token], 4));
    expect(() => neuronOutputTokens(model, 2, 0, 5)).toThrow(/layer 2 is out of range; allowed 0..1/);
  });
});

describe('corpus examples', () => {
  const C = 10;
  const contexts = tokenBatch(13, C - 1, cfg.d_vocab, 9).map((r) => Int32Array.from([0, ...r]));

  it('every neuron keeps its k best contexts (the max over positions 1.., one per context), best first, and its density (brute force)', async () => {
    const k = 4;
    const store = await harvestNeuronExamples(model, contexts, { name: 'test', sha256: 'x', split: 'all' }, { k, batchSize: 5 });
    expect(store.meta).toMatchObject({ n_layers: 2, d_mlp: cfg.d_mlp, k, model: model.weights.digest(), corpus: { tokens: 13 * C, contextSize: C } });
    for (let l = 0; l < 2; l++) {
      const post = referencePost(model, contexts.map((c) => Array.from(c)), l); // [13, C, d_mlp]
      for (const n of [0, 5, 31, cfg.d_mlp - 1]) {
        const perContext = contexts.map((_c, i) => {
          let best = -Infinity;
          let at = -1;
          for (let p = 1; p < C; p++) if (post.get(i, p, n) > best) [best, at] = [post.get(i, p, n), p];
          return { context: i, position: at, value: best };
        }).sort((a, b) => b.value - a.value);
        const got = store.examples(l, n);
        expect(got.map((e) => [e.context, e.position])).toEqual(perContext.slice(0, k).map((e) => [e.context, e.position]));
        got.forEach((e, i) => expect(e.value).toBeCloseTo(perContext[i].value, 5));
        let positive = 0;
        for (let i = 0; i < 13; i++) for (let p = 1; p < C; p++) if (post.get(i, p, n) > 0) positive++;
        expect(store.densityOf(l, n)).toBeCloseTo(positive / (13 * (C - 1)), 6);
      }
    }
    expect(store.context(3)).toEqual(Array.from(contexts[3]));
    // Round trip through the file format; a cut file or another format is not read.
    const again = NeuronExamples.deserialize(store.serialize())!;
    expect(again.meta).toEqual(store.meta);
    expect(again.examples(1, 5)).toEqual(store.examples(1, 5));
    expect(again.densityOf(0, 31)).toBe(store.densityOf(0, 31));
    expect(NeuronExamples.deserialize(store.serialize().subarray(0, 200))).toBeNull();
    expect(NeuronExamples.deserialize(Buffer.from('not a file'))).toBeNull();
  });

  it("windows: each example's tokens around its maximum with the neuron's activation on each (reference forward)", async () => {
    const store = await harvestNeuronExamples(model, contexts, { name: 'test', sha256: 'x', split: 'all' }, { k: 3 });
    const windows = await neuronExampleWindows(model, store, 1, 7, { k: 3, before: 3, after: 1, batchSize: 2 });
    expect(windows).toHaveLength(3);
    const post = referencePost(model, contexts.map((c) => Array.from(c)), 1);
    for (const w of windows) {
      expect(w.start).toBe(Math.max(0, w.position - 3));
      expect(w.tokens).toEqual(Array.from(contexts[w.context]).slice(w.start, Math.min(C, w.position + 2)));
      w.activations.forEach((a, i) => expect(a).toBeCloseTo(post.get(w.context, w.start + i, 7), 5));
      expect(w.activations[w.position - w.start]).toBeCloseTo(w.value, 5);
    }
  });

  it('refuses contexts of unequal length and an empty corpus', async () => {
    await expect(harvestNeuronExamples(model, [contexts[0], contexts[1].subarray(0, 5)], { name: 't', sha256: 'x', split: 'all' })).rejects.toThrow(/every context must have 10 tokens; one has 5/);
    await expect(harvestNeuronExamples(model, [], { name: 't', sha256: 'x', split: 'all' })).rejects.toThrow(/no contexts/);
  });
});

describe('the disk cache', () => {
  it('harvests the held-out tail once per model and corpus, then reads it back equal; another model or corpus gets its own file', async () => {
    const gcfg = tinyConfig({ n_layers: 1, d_model: 8, n_heads: 2, d_vocab: 50257, n_ctx: 24 });
    const m = await HookedTransformer.fromWeights(gcfg, tinyWeights(gcfg, 3), { threads: 1, tokenizer: tok });
    const other = await HookedTransformer.fromWeights(gcfg, tinyWeights(gcfg, 4), { threads: 1, tokenizer: tok });
    try {
      const corpus = join(tmp, 'corpus.txt');
      const text = (await readFile(TINY_SHAKESPEARE, 'utf8')).slice(0, 20_000);
      await writeFile(corpus, text);
      const opts = { cacheDir: join(tmp, 'cache'), corpusPath: corpus, contextSize: 16, k: 5 };
      const starts: number[] = [];
      const first = await cachedNeuronExamples(m, { ...opts, onStart: (n) => starts.push(n) });
      expect(first.fromCache).toBe(false);
      const heldOut = splitTokens(tok, text).heldOut;
      expect(starts).toEqual([Math.floor(heldOut.length / 15)]);
      expect(first.examples.context(0)).toEqual([tok.bosTokenId, ...Array.from(heldOut.subarray(0, 15))]);
      expect(first.path.startsWith(join(tmp, 'cache', 'neuron-examples', m.weights.digest().slice(0, 32)))).toBe(true);
      const second = await cachedNeuronExamples(m, { ...opts, onStart: () => starts.push(-1) });
      expect(second.fromCache).toBe(true);
      expect(starts).toHaveLength(1);
      expect(second.path).toBe(first.path);
      expect(second.examples.examples(0, 17)).toEqual(first.examples.examples(0, 17));
      expect(second.examples.meta.corpus).toMatchObject({ name: 'corpus.txt', split: 'last 10 % of the tokens', contextSize: 16 });
      expect(await neuronExamplesPath(other, opts)).not.toBe(first.path);
      await writeFile(corpus, `${text}\nMore text.\n`);
      expect(await neuronExamplesPath(m, opts)).not.toBe(first.path);
      // A damaged file is harvested again, not read.
      await writeFile(join(tmp, 'damaged.txt'), text);
      const d = { ...opts, corpusPath: join(tmp, 'damaged.txt') };
      const path = await neuronExamplesPath(m, d);
      await cachedNeuronExamples(m, d);
      await writeFile(path, (await readFile(path)).subarray(0, 100));
      expect((await cachedNeuronExamples(m, d)).fromCache).toBe(false);
    } finally {
      await m.dispose();
      await other.dispose();
    }
  });

  it('lives in $LENSBOARD_CACHE_DIR, else $XDG_CACHE_HOME/lensboard, else ~/.cache/lensboard', () => {
    expect(lensboardCacheDir({ LENSBOARD_CACHE_DIR: '/x/y' })).toBe('/x/y');
    expect(lensboardCacheDir({ XDG_CACHE_HOME: '/c' })).toBe('/c/lensboard');
    expect(lensboardCacheDir({ HOME: '/h' }).endsWith('/.cache/lensboard')).toBe(true);
  });
});

describe('the held-out corpus', () => {
  it("is tokenized in pieces exactly as the whole text is, and is the trainer's last 10 % of the tokens", async () => {
    const text = (await readFile(TINY_SHAKESPEARE, 'utf8')).slice(0, 120_000);
    const whole = tok.encode(text);
    for (const piece of [1_000, 7_919, 64 * 1024]) expect(Array.from(encodeInPieces(tok, text, piece)), `pieces of ${piece}`).toEqual(whole);
    const path = join(tmp, 'part.txt');
    await writeFile(path, text);
    const heldOut = await readHeldOutTokens(tok, path);
    expect(Array.from(heldOut)).toEqual(whole.slice(Math.floor(whole.length * 0.9)));
    const ctx = contextsOf(heldOut, 64, 50256);
    expect(ctx).toHaveLength(Math.floor(heldOut.length / 63));
    expect(Array.from(ctx[1])).toEqual([50256, ...Array.from(heldOut.subarray(63, 126))]);
    await expect(readHeldOutTokens(tok, join(tmp, 'missing.txt'))).rejects.toThrow(/cannot read the corpus .*missing.txt: no such file/);
  });
});
