/** Ablation sweeps: batched (each block of rows ablating a different head / neuron / position) = one JS-hook run per target (1e-5); zero, mean and resample values; progress and cancellation. */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ablationSpecs, ablationValues, headAblationSweep, neuronAblationSweep, positionAblationSweep } from '../../../hooks/analysis/ablation.ts';
import { logitDiffMetric, positionedMetric } from '../../../hooks/analysis/metrics.ts';
import { HookedTransformer } from '../../../hooks/HookedTransformer.ts';
import type { HookName } from '../../../hooks/hookPoints.ts';
import { referenceForward } from '../../../hooks/reference.ts';
import { Tensor } from '../../../hooks/tensor.ts';
import { cloneWeights, expectClose, mapIndexed, tinyConfig, tinyWeights, tokenBatch } from '../engine/helpers.ts';

const ATOL = 1e-5;
const cfg = tinyConfig({ n_layers: 2, d_model: 16, n_heads: 4, d_vocab: 60 });
const original = tinyWeights(cfg, 44);
const tokens = tokenBatch(3, 6, cfg.d_vocab, 8);
const reference = tokenBatch(5, 6, cfg.d_vocab, 99);
let model: HookedTransformer;

/** Mean over prompts of logit(7) − logit(3) at the last position. */
const metric = (logits: Tensor): number => {
  const [b, p] = logits.shape;
  let s = 0;
  for (let i = 0; i < b; i++) s += logits.get(i, p - 1, 7) - logits.get(i, p - 1, 3);
  return s / b;
};

beforeAll(async () => {
  model = await HookedTransformer.fromWeights(cfg, cloneWeights(original), { threads: 1 });
});
afterAll(async () => {
  await model?.dispose();
});

/** The metric of one run with a JS hook that sets `head` of `hook` to value(b, p, e) (the sequential, independent path). */
async function hookedHeadMetric(layer: number, head: number, value: (b: number, p: number, e: number) => number): Promise<number> {
  const fn = (a: Tensor) => mapIndexed(a, (v, [b, p, h, e]) => (h === head ? value(b, p, e) : v));
  return metric(await model.runWithHooks(tokens, { fwdHooks: [[`blocks.${layer}.attn.hook_z` as HookName, fn]] }));
}

describe('headAblationSweep', () => {
  it('zero: batched (one pass, and 3 heads per pass) = sequential JS hooks (1e-5) = reference (1e-4)', async () => {
    const batched = await headAblationSweep(model, tokens, metric);
    const chunked = await headAblationSweep(model, tokens, metric, { chunkSize: 3 });
    expect(batched.shape).toEqual([2, 4]);
    const clean = metric(await model.forward(tokens));
    for (let l = 0; l < 2; l++) {
      for (let h = 0; h < 4; h++) {
        const seq = await hookedHeadMetric(l, h, () => 0);
        expect(Math.abs(batched.get(l, h) - seq), `L${l}H${h} batched vs hook`).toBeLessThanOrEqual(ATOL);
        expect(Math.abs(chunked.get(l, h) - seq), `L${l}H${h} chunked vs hook`).toBeLessThanOrEqual(ATOL);
        const ref = referenceForward(cfg, original, tokens, { hooks: { [`blocks.${l}.attn.hook_z`]: (a: Tensor) => mapIndexed(a, (v, [, , hh]) => (hh === h ? 0 : v)) } });
        expect(Math.abs(batched.get(l, h) - metric(ref.logits))).toBeLessThanOrEqual(1e-4);
      }
    }
    // the ablations really change the metric
    expect(batched.sub(clean).abs().max().item()).toBeGreaterThan(1e-3);
  });

  it('with logitDiffMetric (a positioned metric): the same sweep, logits computed at the last position only (1e-5)', async () => {
    const lib = logitDiffMetric({ correct: 7, incorrect: 3 });
    expect(lib(await model.forward(tokens))).toBeCloseTo(metric(await model.forward(tokens)), 5);
    const seen: number[][] = [];
    const spy = Object.assign((l: Tensor) => lib(l), { positions: lib.positions, atPositions: (l: Tensor) => { seen.push(l.shape); return lib.atPositions(l); } });
    const fast = await headAblationSweep(model, tokens, spy);
    const plain = await headAblationSweep(model, tokens, metric);
    for (let i = 0; i < plain.data.length; i++) expect(Math.abs(fast.data[i] - plain.data[i])).toBeLessThanOrEqual(ATOL);
    expect(seen).toHaveLength(8);
    expect(seen.every((s) => s.join() === `3,1,${cfg.d_vocab}`)).toBe(true);
  });

  it('positionedMetric at a middle position (log-softmax of token 11 at position 2) = the closure on full logits (1e-5)', async () => {
    const logProb = (logits: Tensor, q: number) => {
      const [b, , V] = logits.shape;
      let s = 0;
      for (let i = 0; i < b; i++) {
        let z = 0;
        for (let v = 0; v < V; v++) z += Math.exp(logits.get(i, q, v));
        s += logits.get(i, q, 11) - Math.log(z);
      }
      return s / b;
    };
    const closure = (l: Tensor) => logProb(l, 2);
    const m = positionedMetric(closure, 2, (l) => logProb(l, 0));
    const fast = await headAblationSweep(model, tokens, m);
    const plain = await headAblationSweep(model, tokens, closure);
    for (let i = 0; i < plain.data.length; i++) expect(Math.abs(fast.data[i] - plain.data[i])).toBeLessThanOrEqual(ATOL);
  });

  it('mean: the reference mean of z over prompts and positions; perPosition: per position (1e-5)', async () => {
    const [, c] = await model.runWithCache(reference, { namesFilter: ['blocks.1.attn.hook_z'] });
    const z = c.get('blocks.1.attn.hook_z'); // [5, 6, head, d_head]
    const sweep = await headAblationSweep(model, tokens, metric, { kind: 'mean', reference, heads: [{ layer: 1, head: 2 }] });
    expect(Number.isNaN(sweep.get(0, 0))).toBe(true);
    const hand = (p: number | null, e: number) => {
      let s = 0;
      let n = 0;
      for (let b = 0; b < 5; b++) for (let q = 0; q < 6; q++) if (p === null || q === p) { s += z.get(b, q, 2, e); n++; }
      return s / n;
    };
    expect(Math.abs(sweep.get(1, 2) - (await hookedHeadMetric(1, 2, (_b, _p, e) => hand(null, e))))).toBeLessThanOrEqual(ATOL);
    const perPos = await headAblationSweep(model, tokens, metric, { kind: 'mean', perPosition: true, reference, heads: [{ layer: 1, head: 2 }] });
    expect(Math.abs(perPos.get(1, 2) - (await hookedHeadMetric(1, 2, (_b, p, e) => hand(p, e))))).toBeLessThanOrEqual(ATOL);
  });

  it("resample: each prompt takes another prompt's activation (never its own), and the sweep matches the hook (1e-5)", async () => {
    const hook = 'blocks.0.attn.hook_z' as HookName;
    const values = await ablationValues(model, [hook], tokens, { kind: 'resample', seed: 3 });
    const [, c] = await model.runWithCache(tokens, { namesFilter: [hook] });
    const own = c.get(hook);
    const v = values.get(hook) as Tensor;
    expect(v.shape).toEqual(own.shape);
    for (let b = 0; b < 3; b++) {
      const row = v.index(0, b);
      const match = [0, 1, 2].filter((r) => row.maxAbsDiff(own.index(0, r)) === 0);
      expect(match.length, `row ${b} is a copy of one prompt`).toBeGreaterThan(0);
      expect(match).not.toContain(b);
    }
    const sweep = await headAblationSweep(model, tokens, metric, { kind: 'resample', seed: 3, heads: [{ layer: 0, head: 1 }] });
    expect(Math.abs(sweep.get(0, 1) - (await hookedHeadMetric(0, 1, (b, p, e) => v.get(b, p, 1, e))))).toBeLessThanOrEqual(ATOL);
    await expect(ablationValues(model, [hook], tokens, { kind: 'resample', reference: tokenBatch(2, 4, 60) })).rejects.toThrow(/reference prompts have 4 tokens but the prompts have 6/);
  });

  it('reports progress per pass and stops when aborted', async () => {
    const seen: [number, number][] = [];
    await headAblationSweep(model, tokens, metric, { chunkSize: 3, onProgress: (d, t) => seen.push([d, t]) });
    // Passes never mix start layers: layer 0's 4 heads take passes of 3 + 1, then layer 1's the same.
    expect(seen).toEqual([[3, 8], [4, 8], [7, 8], [8, 8]]);
    const ctl = new AbortController();
    ctl.abort();
    await expect(headAblationSweep(model, tokens, metric, { signal: ctl.signal })).rejects.toThrow(/abort/i);
    const later = new AbortController();
    let passes = 0;
    const run = headAblationSweep(model, tokens, metric, { chunkSize: 2, signal: later.signal, onProgress: () => { passes++; later.abort(); } });
    await expect(run).rejects.toThrow(/abort/i);
    expect(passes).toBe(1);
  });
});

describe('neurons and positions', () => {
  it('neuronAblationSweep (zero) = a JS hook zeroing mlp.hook_post[..., n] (1e-5)', async () => {
    const neurons = [0, 5, 63];
    const sweep = await neuronAblationSweep(model, tokens, metric, { layer: 1, neurons });
    for (let i = 0; i < 3; i++) {
      const fn = (a: Tensor) => mapIndexed(a, (v, [, , n]) => (n === neurons[i] ? 0 : v));
      const seq = metric(await model.runWithHooks(tokens, { fwdHooks: [['blocks.1.mlp.hook_post', fn]] }));
      expect(Math.abs(sweep.get(i) - seq)).toBeLessThanOrEqual(ATOL);
    }
  });

  it('positionAblationSweep (mean over the reference) = a JS hook on resid_pre (1e-5)', async () => {
    const sweep = await positionAblationSweep(model, tokens, metric, { layer: 1, kind: 'mean', reference });
    expect(sweep.shape).toEqual([6]);
    const [, c] = await model.runWithCache(reference, { namesFilter: ['blocks.1.hook_resid_pre'] });
    const mean = c.get('blocks.1.hook_resid_pre').mean(0).mean(0); // [d_model]
    for (let p = 0; p < 6; p++) {
      const fn = (a: Tensor) => mapIndexed(a, (v, [, q, d]) => (q === p ? mean.get(d) : v));
      const seq = metric(await model.runWithHooks(tokens, { fwdHooks: [['blocks.1.hook_resid_pre', fn]] }));
      expect(Math.abs(sweep.get(p) - seq), `pos ${p}`).toBeLessThanOrEqual(ATOL);
    }
  });

  it('ablationSpecs: several targets at once in one forward pass = the same JS hooks (1e-5)', async () => {
    const specs = await ablationSpecs(model, tokens, { heads: [{ layer: 0, head: 3 }], neurons: [{ layer: 1, neuron: 9 }], positions: [{ layer: 1, pos: 2, at: 'resid_mid' }] });
    const out = await model.forward(tokens, { interventions: specs });
    const hooked = await model.runWithHooks(tokens, {
      fwdHooks: [
        ['blocks.0.attn.hook_z', (a: Tensor) => mapIndexed(a, (v, [, , h]) => (h === 3 ? 0 : v))],
        ['blocks.1.mlp.hook_post', (a: Tensor) => mapIndexed(a, (v, [, , n]) => (n === 9 ? 0 : v))],
        ['blocks.1.hook_resid_mid', (a: Tensor) => mapIndexed(a, (v, [, p]) => (p === 2 ? 0 : v))],
      ],
    });
    expectClose(out, hooked, ATOL, 'logits');
    await expect(ablationSpecs(model, tokens, { heads: [{ layer: 2, head: 0 }] })).rejects.toThrow(/layer 2 is out of range; allowed 0…1/);
    await expect(ablationSpecs(model, tokens, { heads: [{ layer: 0, head: 0 }] }, { kind: 'median' as never })).rejects.toThrow(/'zero', 'mean' or 'resample'/);
  });
});
