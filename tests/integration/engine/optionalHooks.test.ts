/**
 * TransformerLens's optional hook points (hook_attn_in, hook_q/k/v_input, hook_mlp_in): enabling
 * them changes nothing by itself, their values are what they should be, and a hook on them acts
 * exactly where it should (checked against equivalent hooks elsewhere, within 1e-5).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HookedTransformer } from '../../../hooks/HookedTransformer.ts';
import type { HookName } from '../../../hooks/hookPoints.ts';
import { referenceForward } from '../../../hooks/reference.ts';
import { Tensor } from '../../../hooks/tensor.ts';
import { cloneWeights, expectClose, tinyConfig, tinyWeights } from './helpers.ts';

const cfg = tinyConfig({ n_layers: 2, n_heads: 4 });
const original = tinyWeights(cfg, 21);
const tokens = [[3, 1, 4, 1, 5, 9, 2, 6], [2, 7, 1, 8, 2, 8, 1, 8]];
let plain: HookedTransformer;
let split: HookedTransformer; // useSplitQkvInput + useHookMlpIn
let attnIn: HookedTransformer; // useAttnIn

beforeAll(async () => {
  plain = await HookedTransformer.fromWeights(cfg, cloneWeights(original), { threads: 1 });
  split = await HookedTransformer.fromWeights(cfg, cloneWeights(original), { threads: 1, useSplitQkvInput: true, useHookMlpIn: true });
  attnIn = await HookedTransformer.fromWeights(cfg, cloneWeights(original), { threads: 1, useAttnIn: true });
});
afterAll(async () => {
  await Promise.all([plain, split, attnIn].map((m) => m?.dispose()));
});

/** x [batch, pos, d_model] repeated along a new head axis → [batch, pos, head, d_model]. */
function repeatHeads(x: Tensor, nHeads: number): Tensor {
  return Tensor.stack(Array.from({ length: nHeads }, () => x), 2);
}

describe('optional hook points', () => {
  it('are listed, in TransformerLens order, only when enabled', () => {
    const names = split.hookPoints().map((h) => h.name);
    const i = (n: string) => names.indexOf(n as HookName);
    expect(i('blocks.0.hook_resid_pre')).toBeLessThan(i('blocks.0.hook_q_input'));
    expect(i('blocks.0.hook_q_input')).toBeLessThan(i('blocks.0.hook_k_input'));
    expect(i('blocks.0.hook_v_input')).toBeLessThan(i('blocks.0.ln1.hook_scale'));
    expect(i('blocks.0.hook_resid_mid')).toBeLessThan(i('blocks.0.hook_mlp_in'));
    expect(i('blocks.0.hook_mlp_in')).toBeLessThan(i('blocks.0.ln2.hook_scale'));
    expect(plain.hookPoints().some((h) => h.name.endsWith('hook_q_input'))).toBe(false);
    expect(attnIn.hookPoints().find((h) => h.name === 'blocks.1.ln1.hook_normalized')!.dims).toEqual(['batch', 'pos', 'head', 'd_model']);
  });

  it('change no output by themselves, and equal the reference (1e-4)', async () => {
    const ref = referenceForward(cfg, cloneWeights(original), tokens);
    for (const m of [plain, split, attnIn]) {
      const [logits, cache] = await m.runWithCache(tokens);
      expectClose(logits, ref.logits, 1e-4, 'logits');
      expectClose(cache.get('blocks.1.hook_resid_post'), ref.cache.get('blocks.1.hook_resid_post')!, 1e-4, 'resid_post');
    }
  });

  it('hold the per-head residual stream (q/k/v_input, attn_in) and the MLP input (mlp_in)', async () => {
    const [, c] = await split.runWithCache(tokens);
    const residPre = c.get('blocks.1.hook_resid_pre');
    for (const n of ['q_input', 'k_input', 'v_input'] as const) {
      expectClose(c.get(`blocks.1.hook_${n}`), repeatHeads(residPre, cfg.n_heads), 0, n);
    }
    expectClose(c.get('blocks.1.hook_mlp_in'), c.get('blocks.1.hook_resid_mid'), 0, 'mlp_in');
    expect(c.get('blocks.1.ln1.hook_scale').shape).toEqual([2, 8, cfg.n_heads, 1]);
    const [, a] = await attnIn.runWithCache(tokens);
    expectClose(a.get('blocks.0.hook_attn_in'), repeatHeads(a.get('blocks.0.hook_resid_pre'), cfg.n_heads), 0, 'attn_in');
  });

  it('a hook on hook_mlp_in changes the MLP input only: mlp_out equals replacing resid_mid, resid_mid itself stays', async () => {
    const replacement = (x: Tensor) => x.mul(0.5).add(0.25);
    const [, viaMlpIn] = await split.withHooks([['blocks.0.hook_mlp_in', replacement]], (m) => m.runWithCache(tokens));
    const [, viaResid] = await split.withHooks([['blocks.0.hook_resid_mid', replacement]], (m) => m.runWithCache(tokens));
    const [, clean] = await split.runWithCache(tokens);
    expectClose(viaMlpIn.get('blocks.0.hook_mlp_out'), viaResid.get('blocks.0.hook_mlp_out'), 1e-5, 'mlp_out');
    expectClose(viaMlpIn.get('blocks.0.hook_resid_mid'), clean.get('blocks.0.hook_resid_mid'), 1e-6, 'resid_mid untouched');
    const expectedPost = clean.get('blocks.0.hook_resid_mid').add(viaMlpIn.get('blocks.0.hook_mlp_out'));
    expectClose(viaMlpIn.get('blocks.0.hook_resid_post'), expectedPost, 1e-5, 'resid_post = resid_mid + new mlp_out');
  });

  it('the same replacement on every head of hook_attn_in equals replacing resid_pre for the attention (attn_out, 1e-5)', async () => {
    const shift = (x: Tensor) => x.mul(-1.5);
    const [, viaAttnIn] = await attnIn.withHooks([['blocks.1.hook_attn_in', shift]], (m) => m.runWithCache(tokens));
    const [, viaResid] = await plain.withHooks([['blocks.1.hook_resid_pre', shift]], (m) => m.runWithCache(tokens));
    expectClose(viaAttnIn.get('blocks.1.hook_attn_out'), viaResid.get('blocks.1.hook_attn_out'), 1e-5, 'attn_out');
  });

  it('zeroing head h of hook_q_input changes only that head of q: q[h] = ln1.b W_Q[h] + b_Q[h] (hand-computed, 1e-5)', async () => {
    const h = 2;
    const zeroHead = (x: Tensor) => x.map((v, i) => (Math.floor(i / cfg.d_model) % cfg.n_heads === h ? 0 : v));
    const [, hooked] = await split.withHooks([['blocks.0.hook_q_input', zeroHead]], (m) => m.runWithCache(tokens));
    const [, clean] = await split.runWithCache(tokens);
    const q = hooked.get('blocks.0.attn.hook_q'); // [batch, pos, head, d_head]
    const w = split.rawWeights.blocks[0];
    // LayerNorm of a zero vector is its bias (x - mean = 0).
    const lnB = w.ln1!.b;
    for (let e = 0; e < cfg.d_head; e++) {
      let expected = w.b_Q[h * cfg.d_head + e];
      for (let d = 0; d < cfg.d_model; d++) expected += lnB[d] * w.W_Q[d * cfg.n_heads * cfg.d_head + h * cfg.d_head + e];
      expect(Math.abs(q.get(1, 3, h, e) - expected)).toBeLessThan(1e-5);
    }
    const other = (t: Tensor) => t.select(2, [0, 1, 3]);
    expectClose(other(q), other(clean.get('blocks.0.attn.hook_q')), 1e-6, 'other heads of q');
    expectClose(hooked.get('blocks.0.attn.hook_k'), clean.get('blocks.0.attn.hook_k'), 1e-6, 'k');
  });
});
