/** Direct logit attribution sums to the logit difference; the head detector scores hand-forced attention patterns. */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ActivationCache } from '../../../hooks/ActivationCache.ts';
import { withModel } from '../../../hooks/analysis/cache.ts';
import { directLogitAttribution } from '../../../hooks/analysis/directLogitAttribution.ts';
import { detectHead } from '../../../hooks/analysis/headDetector.ts';
import { HookedTransformer } from '../../../hooks/HookedTransformer.ts';
import type { Tensor } from '../../../hooks/tensor.ts';
import { cloneWeights, mapIndexed, tinyConfig, tinyWeights, tokenBatch } from '../engine/helpers.ts';

const cfg = tinyConfig({ n_layers: 2, d_model: 16, n_heads: 4, d_vocab: 60 });
const original = tinyWeights(cfg, 33);
const tokens = tokenBatch(3, 7, cfg.d_vocab, 5);
let model: HookedTransformer; // TL's default processing (folded LayerNorm)
let cache: ActivationCache;
let logits: Tensor;

beforeAll(async () => {
  model = await HookedTransformer.fromWeights(cfg, cloneWeights(original), { threads: 1, foldLn: true, centerWritingWeights: true, centerUnembed: true, foldValueBiases: true });
  const [l, c] = await model.runWithCache(tokens);
  logits = l;
  cache = withModel(c, model);
});
afterAll(async () => {
  await model?.dispose();
});

describe('directLogitAttribution', () => {
  const correct = [4, 17, 30];
  const incorrect = [8, 2, 31];
  const positions = [6, 3, 5];

  it('heads + remainder + b_U difference = the logit difference; layers + b_U difference too (1e-4)', async () => {
    const r = await directLogitAttribution(model, tokens, { correct, incorrect, positions });
    for (let b = 0; b < 3; b++) {
      const diff = logits.get(b, positions[b], correct[b]) - logits.get(b, positions[b], incorrect[b]);
      expect(r.logitDiff.get(b)).toBeCloseTo(diff, 5);
      const heads = r.heads.index(0, b).sum().item();
      expect(heads + r.headRemainder.get(b) + r.unembedBias.get(b), `prompt ${b}`).toBeCloseTo(diff, 4);
      expect(r.layers.index(0, b).sum().item() + r.unembedBias.get(b)).toBeCloseTo(diff, 4);
    }
    expect(r.layerLabels).toEqual(['embed', 'pos_embed', '0_attn_out', '0_mlp_out', '1_attn_out', '1_mlp_out']);
    expect(r.mean.heads.shape).toEqual([2, 4]);
    expect(r.mean.logitDiff).toBeCloseTo((r.logitDiff.get(0) + r.logitDiff.get(1) + r.logitDiff.get(2)) / 3, 6);
  });

  it("each head and neuron equals TL's logitAttrs of stackHeadResults / stackNeuronResults (1e-5)", async () => {
    const r = await directLogitAttribution(model, tokens, { correct, incorrect, positions });
    const headAttrs = cache.logitAttrs(cache.stackHeadResults(), correct, incorrect); // [8, batch, pos]
    const neuronAttrs = cache.logitAttrs(cache.stackNeuronResults(), correct, incorrect); // [2·d_mlp, batch, pos]
    for (let b = 0; b < 3; b++) {
      for (let i = 0; i < 8; i++) expect(r.heads.get(b, Math.floor(i / 4), i % 4)).toBeCloseTo(headAttrs.get(i, b, positions[b]), 5);
      for (const n of [0, 9, 63, 64, 100]) expect(r.neurons.get(b, Math.floor(n / cfg.d_mlp), n % cfg.d_mlp)).toBeCloseTo(neuronAttrs.get(n, b, positions[b]), 5);
    }
  });
});

/** A hook that overwrites head `head`'s pattern [batch, head, q, k] with `pattern(q, k)`. */
const forcePattern = (head: number, pattern: (q: number, k: number) => number) => (a: Tensor) =>
  mapIndexed(a, (v, [, h, q, k]) => (h === head ? pattern(q, k) : v));

describe('detectHead', () => {
  const seq = [0, 11, 12, 13, 14, 11, 12, 13, 14]; // BOS-like 0, a span, the span again
  const prevPattern = (q: number, k: number) => (q === 0 ? (k === 0 ? 1 : 0) : k === q - 1 ? 1 : 0);
  const inductionPattern = (q: number, k: number) => (q < 5 ? (k === 0 ? 1 : 0) : k === q - 3 ? 1 : 0);

  it('a forced perfect previous-token head scores (n-1)/n, and 1 without the current token; others are their hand score', async () => {
    const hook = ['blocks.1.attn.hook_pattern', forcePattern(2, prevPattern)] as const;
    const scores = await model.withHooks([hook], (m) => detectHead(m, seq, 'previous_token_head'));
    expect(scores.shape).toEqual([2, 4]);
    expect(scores.get(1, 2)).toBeCloseTo(8 / 9, 6);
    const excl = await model.withHooks([hook], (m) => detectHead(m, seq, 'previous_token_head', { excludeCurrentToken: true }));
    expect(excl.get(1, 2)).toBeCloseTo(1, 6);
    // an untouched head: the mean of its sub-diagonal (each row sums to 1)
    const [, c] = await model.runWithCache([seq], { namesFilter: ['blocks.0.attn.hook_pattern'] });
    const pat = c.get('blocks.0.attn.hook_pattern'); // [1, head, q, k]
    let sub = 0;
    for (let q = 1; q < 9; q++) sub += pat.get(0, 1, q, q - 1);
    expect(scores.get(0, 1)).toBeCloseTo(sub / 9, 5);
  });

  it('a forced induction head: mul 4/9, 1 without BOS; abs 1 - round(5/9, 3), 1 without BOS', async () => {
    const hook = ['blocks.0.attn.hook_pattern', forcePattern(3, inductionPattern)] as const;
    const run = (o: Parameters<typeof detectHead>[3]) => model.withHooks([hook], (m) => detectHead(m, seq, 'induction_head', o));
    expect((await run({})).get(0, 3)).toBeCloseTo(4 / 9, 6);
    expect((await run({ excludeBos: true })).get(0, 3)).toBeCloseTo(1, 6);
    expect((await run({ errorMeasure: 'abs' })).get(0, 3)).toBeCloseTo(1 - 0.556, 6);
    expect((await run({ errorMeasure: 'abs', excludeBos: true })).get(0, 3)).toBeCloseTo(1, 6);
  });

  it('a user pattern, a subset of heads (-1 elsewhere), and a list of sequences (mean)', async () => {
    const hook = ['blocks.1.attn.hook_pattern', forcePattern(0, prevPattern)] as const;
    const custom = (await import('../../../hooks/analysis/headDetector.ts')).getPreviousTokenHeadDetectionPattern(seq);
    const s = await model.withHooks([hook], (m) => detectHead(m, seq, custom, { heads: [[1, 0], [0, 2]] }));
    expect(s.get(1, 0)).toBeCloseTo(8 / 9, 6);
    expect(s.get(0, 0)).toBe(-1);
    expect(s.get(0, 2)).toBeGreaterThanOrEqual(0);
    const other = [0, 5, 6, 7, 8, 9];
    const both = await detectHead(model, [seq, other], 'duplicate_token_head');
    const a = await detectHead(model, seq, 'duplicate_token_head');
    const b = await detectHead(model, other, 'duplicate_token_head');
    expect(both.maxAbsDiff(a.add(b).div(2))).toBeLessThan(1e-6);
    await expect(detectHead(model, [3], 'induction_head')).rejects.toThrow(/more than 1 token/);
    await expect(detectHead(model, seq, custom.transpose(0, 1))).rejects.toThrow(/lower triangular/);
    await expect(detectHead(model, seq, 'bos_head' as never)).rejects.toThrow(/one of previous_token_head/);
  });
});
