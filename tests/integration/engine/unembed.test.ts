/**
 * The unembedding head (logits and token log-probs in blocks of rows × vocabulary slices) and the
 * engine paths around it: feature-major fed weights, the head instead of in-graph logits, and
 * per-block segmentation of large caches, each against the float64 reference or the one-shot path.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Engine, type EngineOptions } from '../../../hooks/engine/engine.ts';
import { UnembedHead } from '../../../hooks/engine/unembedHead.ts';
import { HookedTransformer } from '../../../hooks/HookedTransformer.ts';
import { listHookPoints, type HookName } from '../../../hooks/hookPoints.ts';
import { referenceForward } from '../../../hooks/reference.ts';
import { Tensor } from '../../../hooks/tensor.ts';
import { WeightStore } from '../../../hooks/weightStore.ts';
import { cloneWeights, expectClose, maxDiff, tinyConfig, tinyWeights, tokenBatch } from './helpers.ts';

const cfg = tinyConfig({ n_layers: 2, d_vocab: 61 }); // d_model 16, 4 heads, d_mlp 64; 61: slices of 7 leave 5
const original = tinyWeights(cfg, 31);
const tokens = tokenBatch(3, 7, cfg.d_vocab, 2);
const targets = tokens.map((row) => [...row.slice(1), 0]);
const ref = referenceForward(cfg, original, tokens);

/** log softmax(logits[b, p])[targets[b][p]] in float64, per position [batch, pos]. */
function refLogprobs(logits: Tensor, tgt: number[][]): Tensor {
  const [batch, pos, V] = logits.shape;
  const out = new Float32Array(batch * pos);
  for (let b = 0; b < batch; b++) for (let p = 0; p < pos; p++) {
    const row = logits.data.subarray((b * pos + p) * V, (b * pos + p + 1) * V);
    let m = -Infinity;
    for (const v of row) m = Math.max(m, v);
    let s = 0;
    for (const v of row) s += Math.exp(v - m);
    out[b * pos + p] = row[tgt[b][p]] - m - Math.log(s);
  }
  return new Tensor(out, [batch, pos]);
}
const refLp = refLogprobs(ref.logits, targets);

const engines: Engine[] = [];
function engine(opts: Partial<EngineOptions>): Engine {
  const e = new Engine(cfg, WeightStore.adopt(cfg, cloneWeights(original)), { device: 'cpu', threads: 1, weightMode: 'feed', ...opts });
  engines.push(e);
  return e;
}
afterAll(async () => {
  for (const e of engines) await e.dispose();
});

describe('UnembedHead', () => {
  let store: WeightStore;
  let x: Float32Array; // [rows, d_model]: the reference's final LayerNormed residual
  beforeAll(() => {
    store = WeightStore.adopt(cfg, cloneWeights(original));
    x = ref.cache.get('ln_final.hook_normalized')!.data;
  });

  for (const embed of [false, true]) {
    it(`${embed ? 'embedded' : 'fed'}: logits in blocks of 4 rows × slices of 7 = x W_U + b_U (1e-5); log-probs = log softmax at the targets (1e-5)`, async () => {
      const head = new UnembedHead(cfg, store.matrix('W_U'), store.vector('b_U'), { device: 'cpu', threads: 1, embed, blockRows: 4, vocabSlice: 7 });
      try {
        const flatTargets = BigInt64Array.from(targets.flat().map(BigInt));
        const out = await head.run(x, { logits: true, targets: flatTargets });
        expectClose(new Tensor(out.logits!, ref.logits.shape), ref.logits, 1e-5, 'logits');
        expectClose(new Tensor(out.tokenLogprobs!, [3, 7]), refLp, 1e-5, 'log-probs');
        // Targets on slice boundaries (0, 6, 7, 60) and nothing else asked: log-probs only.
        const edge = BigInt64Array.from({ length: 21 }, (_, i) => BigInt([0, 6, 7, 60][i % 4]));
        const only = await head.run(x, { logits: false, targets: edge });
        expect(only.logits).toBeUndefined();
        const edgeRows = Array.from({ length: 3 }, (_, b) => Array.from({ length: 7 }, (_, p) => Number(edge[b * 7 + p])));
        expectClose(new Tensor(only.tokenLogprobs!, [3, 7]), refLogprobs(ref.logits, edgeRows), 1e-5, 'boundary log-probs');
      } finally {
        await head.release();
      }
    });
  }
});

describe('the engine with feature-major weights, on the head path and the in-graph path', () => {
  it('fed and embedded: logits and loss through the head (blocks of 3 rows, slices of 7) = reference (1e-4), = the in-graph path (1e-5)', async () => {
    const inGraph = await engine({}).run({ tokens, targets });
    expectClose(inGraph.logits!, ref.logits, 1e-4, 'in-graph logits');
    expectClose(inGraph.tokenLogprobs!, refLp, 1e-4, 'in-graph log-probs');
    for (const weightMode of ['feed', 'embed'] as const) {
      const viaHead = await engine({ weightMode, inGraphLogits: 0, unembedBlockRows: 3, unembedVocabSlice: 7 }).run({ tokens, targets });
      expectClose(viaHead.logits!, ref.logits, 1e-4, `${weightMode} head logits`);
      expectClose(viaHead.logits!, inGraph.logits!, 1e-5, `${weightMode} head vs in-graph logits`);
      expectClose(viaHead.tokenLogprobs!, inGraph.tokenLogprobs!, 1e-5, `${weightMode} head vs in-graph log-probs`);
    }
  });

  it('through the head: logitPositions, an attention mask, and a JS hook cut at the head input itself', async () => {
    const e = engine({ inGraphLogits: 0, unembedBlockRows: 2, unembedVocabSlice: 9 });
    const at = [[6, 0], [3, 3], [1, 5]];
    const picked = await e.run({ tokens, logitPositions: at });
    expect(picked.logits!.shape).toEqual([3, 2, cfg.d_vocab]);
    for (let b = 0; b < 3; b++) for (let k = 0; k < 2; k++) {
      const want = ref.logits.data.subarray((b * 7 + at[b][k]) * cfg.d_vocab, (b * 7 + at[b][k] + 1) * cfg.d_vocab);
      const got = picked.logits!.data.subarray((b * 2 + k) * cfg.d_vocab, (b * 2 + k + 1) * cfg.d_vocab);
      expect(maxDiff(new Tensor(Float32Array.from(got), [cfg.d_vocab]), new Tensor(Float32Array.from(want), [cfg.d_vocab]))).toBeLessThanOrEqual(1e-4);
    }
    const mask = [[0, 0, 1, 1, 1, 1, 1], [1, 1, 1, 1, 1, 1, 1], [0, 1, 1, 1, 1, 1, 1]];
    const masked = await e.run({ tokens, attentionMask: mask });
    expectClose(masked.logits!, referenceForward(cfg, original, tokens, { attentionMask: mask }).logits, 1e-4, 'masked logits');
    let seen: Tensor | null = null;
    const hooked = await e.run({ tokens, hooks: new Map([['ln_final.hook_normalized' as HookName, [(a: Tensor) => { seen = a; return a.mul(2); }]]]) });
    expectClose(seen!, ref.cache.get('ln_final.hook_normalized')!, 1e-4, 'hooked value');
    // Doubling x doubles x W_U: logits - b_U scale by 2.
    const bU = original.b_U;
    const doubled = ref.logits.data.map((v, i) => 2 * (v - bU[i % cfg.d_vocab]) + bU[i % cfg.d_vocab]);
    expectClose(hooked.logits!, new Tensor(doubled, ref.logits.shape), 1e-4, 'hooked logits');
  });

  it('a cache cut after every block (segmentCacheBytes 0) = the one-segment cache and the reference (1e-4)', async () => {
    const names = listHookPoints(cfg).map((h) => h.name).filter((n) => n !== 'hook_tokens');
    const whole = await engine({}).run({ tokens, observe: new Set(names) });
    const cut = await engine({ segmentCacheBytes: 0 }).run({ tokens, observe: new Set(names) });
    expect([...cut.activations.keys()]).toEqual([...whole.activations.keys()]);
    for (const [name, t] of cut.activations) {
      expectClose(t, whole.activations.get(name)!, 1e-5, name);
      const r = ref.cache.get(name);
      if (r) expectClose(t, r, 1e-4, `${name} vs reference`);
    }
    expectClose(cut.logits!, ref.logits, 1e-4, 'logits');
  });
});

describe('HookedTransformer keeps one copy (the weight store)', () => {
  let model: HookedTransformer;
  let handedOver: ReturnType<typeof cloneWeights>;
  beforeAll(async () => {
    handedOver = cloneWeights(original);
    model = await HookedTransformer.fromWeights(cfg, handedOver, { threads: 1 });
  });
  afterAll(async () => {
    await model?.dispose();
  });

  it('rawWeights reads the original values in Lensboard layout; the handed-over object was taken over (emptied), not copied', () => {
    expect(structuredClone(model.rawWeights)).toEqual(original);
    expect(handedOver.blocks).toEqual([]);
    expect(handedOver.W_U.length).toBe(0);
  });

  it("the model's own weights (rawWeights) handed to a second model, with processing, give the processed reference (1e-4); the first model is unchanged; the taken-over object is refused", async () => {
    await expect(HookedTransformer.fromWeights(cfg, handedOver, { threads: 1 })).rejects.toThrow(/handed to a model already/);
    const folded = await HookedTransformer.fromWeights(cfg, model.rawWeights, { threads: 1, foldLn: true, centerWritingWeights: true, centerUnembed: true });
    try {
      const logProbs = (l: Tensor) => l.sub(l.exp().sum(-1, { keepdim: true }).log());
      expectClose(logProbs(await folded.forward(tokens)), logProbs(ref.logits), 1e-4, 'folded log-probs');
      expectClose(await model.forward(tokens), ref.logits, 1e-4, 'first model logits');
    } finally {
      await folded.dispose();
    }
  });
});
