/** The logit lens against a hand computation from referenceForward's residual streams (ln_final, W_U, b_U, softmax in float64). */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { logitLens } from '../../../hooks/analysis/logitLens.ts';
import { HookedTransformer } from '../../../hooks/HookedTransformer.ts';
import type { HookName } from '../../../hooks/hookPoints.ts';
import { referenceForward } from '../../../hooks/reference.ts';
import type { Tensor } from '../../../hooks/tensor.ts';
import type { TransformerWeights } from '../../../hooks/weights.ts';
import { cloneWeights, tinyConfig, tinyWeights, tokenBatch } from '../engine/helpers.ts';

const cfg = tinyConfig({ n_layers: 2, d_model: 16, n_heads: 4, d_vocab: 60 });
const original = tinyWeights(cfg, 21);
original.b_U = original.b_U.map((_, i) => Math.sin(i)); // a non-zero unembedding bias
const tokens = tokenBatch(2, 5, cfg.d_vocab, 9);
let model: HookedTransformer;

beforeAll(async () => {
  model = await HookedTransformer.fromWeights(cfg, cloneWeights(original), { threads: 1 });
});
afterAll(async () => {
  await model?.dispose();
});

/** Hand logit lens of one residual vector: LayerNorm with ln_final's w, b, then W_U and b_U; float64 probabilities. */
function handLens(w: TransformerWeights, x: ArrayLike<number>): { logits: number[]; probs: number[] } {
  const n = cfg.d_model;
  let mean = 0;
  for (let d = 0; d < n; d++) mean += x[d];
  mean /= n;
  let v = 0;
  for (let d = 0; d < n; d++) v += (x[d] - mean) ** 2;
  const s = Math.sqrt(v / n + cfg.eps);
  const y = Array.from({ length: n }, (_, d) => ((x[d] - mean) / s) * w.ln_final!.w[d] + w.ln_final!.b[d]);
  const logits = Array.from({ length: cfg.d_vocab }, (_, t) => {
    let acc = w.b_U[t];
    for (let d = 0; d < n; d++) acc += y[d] * w.W_U[d * cfg.d_vocab + t];
    return acc;
  });
  const m = Math.max(...logits);
  const z = logits.reduce((a, l) => a + Math.exp(l - m), 0);
  return { logits, probs: logits.map((l) => Math.exp(l - m) / z) };
}

describe('logitLens', () => {
  it('top-k tokens and probabilities, and target rank / prob / logit, match the hand computation (1e-5)', async () => {
    const target = [[3, 7, 11], [0, 59, 30]];
    const res = await logitLens(model, tokens, { inclMid: true, topK: 3, positions: [0, 2, 4], target });
    expect(res.labels).toEqual(['0_pre', '0_mid', '1_pre', '1_mid', 'final_post']);
    expect(res.positions).toEqual([0, 2, 4]);
    expect(res.topTokens.shape).toEqual([5, 2, 3, 3]);
    const ref = referenceForward(cfg, original, tokens).cache;
    const names = ['blocks.0.hook_resid_pre', 'blocks.0.hook_resid_mid', 'blocks.1.hook_resid_pre', 'blocks.1.hook_resid_mid', 'blocks.1.hook_resid_post'] as HookName[];
    names.forEach((name, l) => {
      const act = ref.get(name)!;
      for (let b = 0; b < 2; b++) {
        res.positions.forEach((p, pi) => {
          const x = act.data.subarray((b * 5 + p) * cfg.d_model, (b * 5 + p + 1) * cfg.d_model);
          const { logits, probs } = handLens(original, x);
          const order = probs.map((pr, t) => [pr, t]).sort((a, c) => c[0] - a[0] || a[1] - c[1]);
          for (let k = 0; k < 3; k++) {
            expect(res.topTokens.get(l, b, pi, k), `${name} b${b} p${p} top${k}`).toBe(order[k][1]);
            expect(res.topProbs.get(l, b, pi, k)).toBeCloseTo(order[k][0], 5);
          }
          const t = target[b][pi];
          expect(res.target!.prob.get(l, b, pi)).toBeCloseTo(probs[t], 5);
          expect(res.target!.logit.get(l, b, pi)).toBeCloseTo(logits[t], 4);
          expect(res.target!.rank.get(l, b, pi)).toBe(logits.filter((v) => v > logits[t]).length);
        });
      }
    });
  });

  it("the final layer reproduces the model's own predictions; 'next' targets the following token", async () => {
    const res = await logitLens(model, tokens, { topK: 1, target: 'next' });
    const logits = await model.forward(tokens);
    const argmax = logits.argmax(-1); // [batch, pos]
    for (let b = 0; b < 2; b++) {
      for (let p = 0; p < 5; p++) expect(res.topTokens.get(2, b, p, 0)).toBe(argmax.get(b, p));
    }
    expect(res.target!.tokens[1]).toEqual([...tokens[1].slice(1), -1]);
    expect(Number.isNaN(res.target!.rank.get(0, 1, 4))).toBe(true);
    // the final entry's log-prob of the next token is minus the model's per-token loss
    const loss = await model.forward(tokens, { returnType: 'loss', lossPerToken: true });
    expect(Math.log(res.target!.prob.get(2, 0, 1))).toBeCloseTo(-(loss as Tensor).get(0, 1), 4);
  });

  it('several targets from one pass equal each target tracked alone (exactly)', async () => {
    const specs = ['next', 7, [[3, 7, 11, 0, 1], [0, 59, 30, 2, 4]]] as const;
    const together = await logitLens(model, tokens, { topK: 2, targets: specs });
    expect(together.targets).toHaveLength(3);
    for (let i = 0; i < specs.length; i++) {
      const alone = (await logitLens(model, tokens, { topK: 2, target: specs[i] })).target!;
      const t = together.targets![i];
      expect(t.tokens).toEqual(alone.tokens);
      for (const key of ['rank', 'prob', 'logit'] as const) expect(Array.from(t[key].data), `${i} ${key}`).toEqual(Array.from(alone[key].data));
    }
    expect(together.target).toBeUndefined();
  });

  it('rejects bad targets and topK', async () => {
    await expect(logitLens(model, tokens, { target: [1, 2, 3] })).rejects.toThrow(/got 3 targets for 2 prompts/);
    await expect(logitLens(model, tokens, { topK: 61 })).rejects.toThrow(/topK must be an integer in 0…60/);
    await expect(logitLens(model, tokens, { target: 'the' })).rejects.toThrow(/tokenizer/);
  });
});
