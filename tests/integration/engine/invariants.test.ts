/** Invariants of the engine's own cache (residual sums, causal patterns, head decomposition), weight getters, and weightMode 'embed' = 'feed'. */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ActivationCache } from '../../../hooks/ActivationCache.ts';
import { HookedTransformer } from '../../../hooks/HookedTransformer.ts';
import { listHookPoints, type HookName } from '../../../hooks/hookPoints.ts';
import { ablateHeads } from '../../../hooks/interventions.ts';
import { gelu } from '../../../hooks/reference.ts';
import { Tensor } from '../../../hooks/tensor.ts';
import { cacheMismatches, cloneWeights, expectClose, expectExactlyEqual, scaleBy, tinyConfig, tinyWeights, tokenBatch } from './helpers.ts';

const cfg = tinyConfig({ n_layers: 3, d_model: 24, n_heads: 3, d_mlp: 40, d_vocab: 80 }); // d_head 8
const original = tinyWeights(cfg, 21);
const allNames = listHookPoints(cfg).map((h) => h.name);
const tokens = tokenBatch(3, 10, cfg.d_vocab, 5);

let model: HookedTransformer; // weightMode 'auto' (the default)
let embedModel: HookedTransformer; // weightMode 'embed'
let feedModel: HookedTransformer; // weightMode 'feed'
let logits: Tensor;
let cache: ActivationCache;

beforeAll(async () => {
  model = await HookedTransformer.fromWeights(cfg, cloneWeights(original), { threads: 1 });
  embedModel = await HookedTransformer.fromWeights(cfg, cloneWeights(original), { threads: 1, weightMode: 'embed' });
  feedModel = await HookedTransformer.fromWeights(cfg, cloneWeights(original), { threads: 1, weightMode: 'feed' });
  [logits, cache] = await model.runWithCache(tokens, { namesFilter: allNames });
});

afterAll(async () => {
  await model?.dispose();
  await embedModel?.dispose();
  await feedModel?.dispose();
});

const at = (name: string) => cache.get(name as HookName);

describe('cache invariants', () => {
  it('resid_post[L] == resid_pre[L+1] exactly', () => {
    for (let l = 0; l + 1 < cfg.n_layers; l++) {
      expectExactlyEqual(at(`blocks.${l}.hook_resid_post`), at(`blocks.${l + 1}.hook_resid_pre`), `layer ${l}`);
    }
  });

  it('resid_pre[0] = embed + pos_embed (1e-6); resid_mid = resid_pre + attn_out and resid_post = resid_mid + mlp_out (1e-5)', () => {
    expectClose(at('blocks.0.hook_resid_pre'), at('hook_embed').add(at('hook_pos_embed')), 1e-6, 'resid_pre 0');
    for (let l = 0; l < cfg.n_layers; l++) {
      expectClose(at(`blocks.${l}.hook_resid_mid`), at(`blocks.${l}.hook_resid_pre`).add(at(`blocks.${l}.hook_attn_out`)), 1e-5, `resid_mid ${l}`);
      expectClose(at(`blocks.${l}.hook_resid_post`), at(`blocks.${l}.hook_resid_mid`).add(at(`blocks.${l}.hook_mlp_out`)), 1e-5, `resid_post ${l}`);
    }
  });

  it('hook_embed / hook_pos_embed are rows of W_E / W_pos exactly', () => {
    const emb = at('hook_embed');
    const pos = at('hook_pos_embed');
    for (let b = 0; b < tokens.length; b++) {
      for (let p = 0; p < tokens[0].length; p++) {
        for (let d = 0; d < cfg.d_model; d++) {
          expect(emb.get(b, p, d)).toBe(original.W_E[tokens[b][p] * cfg.d_model + d]);
          expect(pos.get(b, p, d)).toBe(original.W_pos[p * cfg.d_model + d]);
        }
      }
    }
  });

  it('pattern rows sum to 1 (1e-5), are exactly 0 above the diagonal; attn_scores are -Infinity there and finite elsewhere', () => {
    const [batch, pos] = [tokens.length, tokens[0].length];
    for (let l = 0; l < cfg.n_layers; l++) {
      const pat = at(`blocks.${l}.attn.hook_pattern`);
      const sc = at(`blocks.${l}.attn.hook_attn_scores`);
      expect(pat.shape).toEqual([batch, cfg.n_heads, pos, pos]);
      for (let b = 0; b < batch; b++) {
        for (let h = 0; h < cfg.n_heads; h++) {
          for (let q = 0; q < pos; q++) {
            let sum = 0;
            for (let k = 0; k < pos; k++) {
              if (k > q) {
                expect(pat.get(b, h, q, k)).toBe(0);
                expect(sc.get(b, h, q, k)).toBe(-Infinity);
              } else {
                expect(Number.isFinite(sc.get(b, h, q, k))).toBe(true);
                expect(pat.get(b, h, q, k)).toBeGreaterThan(0);
              }
              sum += pat.get(b, h, q, k);
            }
            expect(Math.abs(sum - 1)).toBeLessThanOrEqual(1e-5);
          }
        }
      }
      // pattern = softmax(scores) (1e-5)
      expectClose(pat, sc.softmax(-1), 1e-5, `pattern ${l} = softmax(scores)`);
    }
  });

  it('z = pattern @ v per head (1e-5); attn_out = Σ_h result + b_O (1e-4); result[h] = z[h] @ W_O[h] (1e-5)', () => {
    const b_O = model.b_O; // [n_layers, d_model]
    const W_O = model.W_O; // [n_layers, n_heads, d_head, d_model]
    for (let l = 0; l < cfg.n_layers; l++) {
      const v = at(`blocks.${l}.attn.hook_v`).permute(0, 2, 1, 3); // [batch, head, pos, d_head]
      const z = at(`blocks.${l}.attn.hook_z`);
      const zFromPattern = at(`blocks.${l}.attn.hook_pattern`).matmul(v).permute(0, 2, 1, 3); // [batch, pos, head, d_head]
      expectClose(z, zFromPattern, 1e-5, `z ${l}`);
      const result = at(`blocks.${l}.attn.hook_result`); // [batch, pos, head, d_model]
      const perHead = z.unsqueeze(3).matmul(W_O.index(0, l)).squeeze(3); // [batch, pos, head, 1, d_head] @ [head, d_head, d_model]
      expectClose(result, perHead, 1e-5, `result ${l}`);
      expectClose(at(`blocks.${l}.hook_attn_out`), result.sum(2).add(b_O.index(0, l)), 1e-4, `attn_out ${l}`);
    }
  });

  it('q = ln1.normalized @ W_Q + b_Q through the TransformerLens-shaped getters (1e-4)', () => {
    const W_Q = model.W_Q; // [n_layers, n_heads, d_model, d_head]
    const b_Q = model.b_Q; // [n_layers, n_heads, d_head]
    for (let l = 0; l < cfg.n_layers; l++) {
      const x = at(`blocks.${l}.ln1.hook_normalized`).unsqueeze(2).unsqueeze(3); // [batch, pos, 1, 1, d_model]
      // [batch, pos, 1, 1, d_model] @ [head, d_model, d_head] → [batch, pos, head, 1, d_head]
      const q = x.matmul(W_Q.index(0, l)).squeeze(3).add(b_Q.index(0, l)); // [batch, pos, head, d_head]
      expectClose(at(`blocks.${l}.attn.hook_q`), q, 1e-4, `q ${l}`);
    }
  });

  it('LayerNorm: normalized = (x - mean)/scale · w + b (1e-5); mlp post = act_fn(pre) (1e-5)', () => {
    for (let l = 0; l < cfg.n_layers; l++) {
      const x = at(`blocks.${l}.hook_resid_mid`);
      const centred = x.sub(x.mean(-1, { keepdim: true }));
      const scale = at(`blocks.${l}.ln2.hook_scale`);
      expectClose(scale, centred.pow(2).mean(-1, { keepdim: true }).add(cfg.eps).sqrt(), 1e-5, `ln2 scale ${l}`);
      const ln2 = original.blocks[l].ln2!;
      const want = centred.div(scale).mul(new Tensor(ln2.w, [cfg.d_model])).add(new Tensor(ln2.b, [cfg.d_model]));
      expectClose(at(`blocks.${l}.ln2.hook_normalized`), want, 1e-5, `ln2 normalized ${l}`);
      const pre = at(`blocks.${l}.mlp.hook_pre`);
      expectClose(at(`blocks.${l}.mlp.hook_post`), pre.map((v) => gelu(v, cfg.act_fn)), 1e-5, `mlp post ${l}`);
    }
  });

  it('logits = ln_final.normalized @ W_U + b_U (1e-4)', () => {
    const want = at('ln_final.hook_normalized').matmul(model.W_U).add(model.b_U);
    expectClose(logits, want, 1e-4, 'logits');
  });
});

describe('weight getters', () => {
  const H = cfg.n_heads * cfg.d_head;
  it('W_Q/W_K/W_V are [n_layers, n_heads, d_model, d_head] and W_X[l][h][:, e] is column h·d_head+e of the flat weights', () => {
    for (const key of ['W_Q', 'W_K', 'W_V'] as const) {
      const W = model[key];
      expect(W.shape).toEqual([cfg.n_layers, cfg.n_heads, cfg.d_model, cfg.d_head]);
      for (let l = 0; l < cfg.n_layers; l++) {
        const flat = original.blocks[l][key]; // [d_model, H]
        for (let h = 0; h < cfg.n_heads; h++) {
          for (let e = 0; e < cfg.d_head; e++) {
            const col = W.index(0, l).index(0, h).index(1, e); // [d_model]
            const want = Float32Array.from({ length: cfg.d_model }, (_, d) => flat[d * H + h * cfg.d_head + e]);
            expect(Array.from(col.data), `${key}[${l}][${h}][:, ${e}]`).toEqual(Array.from(want));
          }
        }
      }
    }
  });

  it('b_Q [n_layers, n_heads, d_head], W_O [n_layers, n_heads, d_head, d_model], W_in/W_out/b_in/b_out, W_E/W_pos/W_U/b_U shapes and values', () => {
    expect(model.b_Q.shape).toEqual([cfg.n_layers, cfg.n_heads, cfg.d_head]);
    expect(model.b_Q.get(1, 2, 3)).toBe(original.blocks[1].b_Q[2 * cfg.d_head + 3]);
    const W_O = model.W_O;
    expect(W_O.shape).toEqual([cfg.n_layers, cfg.n_heads, cfg.d_head, cfg.d_model]);
    expect(W_O.get(2, 1, 5, 7)).toBe(original.blocks[2].W_O[(1 * cfg.d_head + 5) * cfg.d_model + 7]);
    expect(model.b_O.shape).toEqual([cfg.n_layers, cfg.d_model]);
    const W_in = model.W_in;
    expect(W_in.shape).toEqual([cfg.n_layers, cfg.d_model, cfg.d_mlp]);
    expect(W_in.get(1, 3, 39)).toBe(original.blocks[1].W_in[3 * cfg.d_mlp + 39]);
    expect(model.b_in.shape).toEqual([cfg.n_layers, cfg.d_mlp]);
    const W_out = model.W_out;
    expect(W_out.shape).toEqual([cfg.n_layers, cfg.d_mlp, cfg.d_model]);
    expect(W_out.get(0, 39, 23)).toBe(original.blocks[0].W_out[39 * cfg.d_model + 23]);
    expect(model.b_out.shape).toEqual([cfg.n_layers, cfg.d_model]);
    expect(model.W_E.shape).toEqual([cfg.d_vocab, cfg.d_model]);
    expect(model.W_pos.shape).toEqual([cfg.n_ctx, cfg.d_model]);
    const W_U = model.W_U;
    expect(W_U.shape).toEqual([cfg.d_model, cfg.d_vocab]);
    expect(W_U.get(5, 77)).toBe(original.W_U[5 * cfg.d_vocab + 77]);
    expect(model.b_U.shape).toEqual([cfg.d_vocab]);
  });

  it('getters return copies: mutating one does not change the model', async () => {
    const before = await model.forward(tokens);
    model.W_U.data.fill(0);
    model.W_Q.data.fill(0);
    expectExactlyEqual(await model.forward(tokens), before, 'logits after mutating W_U and W_Q copies');
  });

  it('an unknown weight name is a clear error', () => {
    expect(() => model.weight('W_X' as never)).toThrow(/unknown weight 'W_X'; known: W_E/);
  });
});

describe("weightMode 'embed' = 'feed' = 'auto' (1e-5)", () => {
  it('logits and every cached hook point', async () => {
    const ref = new Map(cache.entries());
    for (const other of [embedModel, feedModel]) {
      const [eLogits, eCache] = await other.runWithCache(tokens, { namesFilter: allNames });
      expectClose(eLogits, logits, 1e-5, 'logits');
      expect(cacheMismatches(eCache, ref, allNames, 1e-5)).toEqual([]);
    }
  });

  it("plain forward, loss and a default cache ('embed': the main prepacked variant and the unembedding head)", async () => {
    for (const other of [embedModel, feedModel]) {
      expectClose(await model.forward(tokens), await other.forward(tokens), 1e-5, 'logits');
      const [a, b] = [await model.forward(tokens, { returnType: 'loss' }), await other.forward(tokens, { returnType: 'loss' })];
      expect(Math.abs((a as number) - (b as number))).toBeLessThanOrEqual(1e-5);
      const [, c1] = await model.runWithCache(tokens);
      const [, c2] = await other.runWithCache(tokens);
      expect(c1.keys()).toEqual(c2.keys());
      expect(cacheMismatches(c1, new Map(c2.entries()), c1.keys(), 1e-5)).toEqual([]);
    }
  });

  it('with a JS hook (segmented graph) and an in-graph intervention', async () => {
    const opts = {
      fwdHooks: [['blocks.1.hook_resid_mid', scaleBy(0.5)]] as const,
      interventions: [ablateHeads(0, 1)],
      returnType: 'both' as const,
    };
    const feed = await feedModel.runWithHooks(tokens, opts);
    const embed = await embedModel.runWithHooks(tokens, opts);
    expectClose(embed.logits, feed.logits, 1e-5, 'logits');
    expect(Math.abs((embed.loss as number) - (feed.loss as number))).toBeLessThanOrEqual(1e-5);
    expect(maxChange(feed.logits, logits)).toBeGreaterThan(1e-3); // the hook did something
  });
});

function maxChange(a: Tensor, b: Tensor): number {
  return a.sub(b).abs().max().item();
}
