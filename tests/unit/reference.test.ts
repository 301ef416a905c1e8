/** Tests for the plain-TypeScript reference forward pass (hooks/reference.ts) and the LM loss (hooks/loss.ts). */
import { describe, expect, it } from 'vitest';
import type { HookedTransformerConfig } from '../../hooks/config.ts';
import { hookShape, listHookPoints, type HookName } from '../../hooks/hookPoints.ts';
import { gpt2Config, randomWeights } from '../../hooks/init.ts';
import { lmCrossEntropyLoss } from '../../hooks/loss.ts';
import { erf, gelu, referenceForward } from '../../hooks/reference.ts';
import { Tensor } from '../../hooks/tensor.ts';
import type { TransformerWeights } from '../../hooks/weights.ts';

const cfg = gpt2Config({ n_layers: 2, d_model: 16, n_heads: 4, d_vocab: 50, n_ctx: 32 });
const weights = randomWeights(cfg, { seed: 1, randomAffine: true, std: 0.3 });
const PROMPT = [3, 17, 8, 42, 0, 25];

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  expect(a.length).toBe(b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

function get(cache: Map<HookName, Tensor>, name: string): Tensor {
  const t = cache.get(name as HookName);
  if (!t) throw new Error(`not cached: ${name}`);
  return t;
}

/**
 * A second, deliberately different computation of a 1-layer model's output at one position of a
 * single prompt: nested number[][] matrices, two-pass variance E[x²] - E[x]², per-head loops,
 * log-sum-exp softmax over the causal prefix only, W_O applied per (head, d_head) scalar.
 */
function handRolled1Layer(c: HookedTransformerConfig, w: TransformerWeights, toks: number[], at: number) {
  const D = c.d_model;
  const nh = c.n_heads;
  const dh = c.d_head;
  const H = nh * dh;
  const mat = (a: Float32Array, r: number, cols: number) => Array.from({ length: r }, (_, i) => Array.from(a.subarray(i * cols, (i + 1) * cols)));
  const WE = mat(w.W_E, c.d_vocab, D);
  const WP = mat(w.W_pos, c.n_ctx, D);
  const b = w.blocks[0];
  const WQ = mat(b.W_Q, D, H), WK = mat(b.W_K, D, H), WV = mat(b.W_V, D, H), WO = mat(b.W_O, H, D);
  const Win = mat(b.W_in, D, c.d_mlp), Wout = mat(b.W_out, c.d_mlp, D), WU = mat(w.W_U, D, c.d_vocab);
  const ln = (x: number[], g: Float32Array, beta: Float32Array) => {
    const mean = x.reduce((s, v) => s + v, 0) / D;
    const meanSq = x.reduce((s, v) => s + v * v, 0) / D;
    const sd = Math.sqrt(meanSq - mean * mean + c.eps);
    return x.map((v, d) => ((v - mean) / sd) * g[d] + beta[d]);
  };
  const vecMat = (x: number[], M: number[][], bias: ArrayLike<number>) =>
    M[0].map((_, j) => x.reduce((s, xv, k) => s + xv * M[k][j], bias[j]));
  const residPre = toks.map((t, p) => WE[t].map((e, d) => e + WP[p][d]));
  const n1 = residPre.map((x) => ln(x, b.ln1!.w, b.ln1!.b));
  const qs = n1.map((x) => vecMat(x, WQ, b.b_Q));
  const ks = n1.map((x) => vecMat(x, WK, b.b_K));
  const vs = n1.map((x) => vecMat(x, WV, b.b_V));
  const attnOut = Array.from(b.b_O, Number);
  for (let h = 0; h < nh; h++) {
    const logits: number[] = [];
    for (let kp = 0; kp <= at; kp++) {
      let s = 0;
      for (let e = 0; e < dh; e++) s += qs[at][h * dh + e] * ks[kp][h * dh + e];
      logits.push(s / Math.sqrt(dh));
    }
    const m = Math.max(...logits);
    const lse = m + Math.log(logits.reduce((s, v) => s + Math.exp(v - m), 0));
    const probs = logits.map((v) => Math.exp(v - lse));
    for (let e = 0; e < dh; e++) {
      const ze = probs.reduce((s, pr, kp) => s + pr * vs[kp][h * dh + e], 0);
      for (let d = 0; d < D; d++) attnOut[d] += ze * WO[h * dh + e][d];
    }
  }
  const mid = residPre[at].map((v, d) => v + attnOut[d]);
  const n2 = ln(mid, b.ln2!.w, b.ln2!.b);
  const pre = vecMat(n2, Win, b.b_in);
  const post = pre.map((x) => x * 0.5 * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (x + 0.044715 * x ** 3))));
  const mlpOut = vecMat(post, Wout, b.b_out);
  const final = mid.map((v, d) => v + mlpOut[d]);
  const nf = ln(final, w.ln_final!.w, w.ln_final!.b);
  return { attnOut, logits: vecMat(nf, WU, w.b_U) };
}

describe('referenceForward vs a hand-rolled computation', () => {
  it('matches a scalar-loop 1-layer model at one position (attn_out and logits within 1e-5)', () => {
    const c1 = gpt2Config({ n_layers: 1, d_model: 16, n_heads: 4, d_vocab: 50, n_ctx: 32 });
    const w1 = randomWeights(c1, { seed: 7, randomAffine: true, std: 0.3 });
    const toks = [5, 9, 31, 2, 44];
    const { logits, cache } = referenceForward(c1, w1, [toks]);
    for (const at of [0, 2, 4]) {
      const hand = handRolled1Layer(c1, w1, toks, at);
      const attnOut = get(cache, 'blocks.0.hook_attn_out').data.subarray(at * 16, (at + 1) * 16);
      expect(maxAbsDiff(attnOut, hand.attnOut)).toBeLessThan(1e-5);
      expect(maxAbsDiff(logits.data.subarray(at * 50, (at + 1) * 50), hand.logits)).toBeLessThan(1e-5);
    }
  });

  it('activation functions match known values', () => {
    // erf(1/√2) and erf(√2) from tables; exact GELU(1) = Φ(1), GELU(-2) = -2·Φ(-2)
    expect(erf(Math.SQRT1_2)).toBeCloseTo(0.6826894921370859, 14);
    expect(erf(-Math.SQRT2)).toBeCloseTo(-0.9544997361036416, 14);
    expect(erf(0.5)).toBeCloseTo(0.5204998778130465, 14);
    expect(erf(3)).toBeCloseTo(0.9999779095030014, 14);
    expect(gelu(1, 'gelu')).toBeCloseTo(0.8413447460685429, 12);
    expect(gelu(-2, 'gelu')).toBeCloseTo(-0.04550026389635842, 12);
    // tanh approximations (PyTorch's F.gelu(approximate='tanh') at 1.0 is 0.841192)
    expect(gelu(1, 'gelu_new')).toBeCloseTo(0.8411919906082768, 10);
    expect(Math.abs(gelu(1.3, 'gelu_fast') - gelu(1.3, 'gelu_new'))).toBeLessThan(1e-9);
    expect(gelu(-0.7, 'relu')).toBe(0);
    expect(gelu(0.7, 'relu')).toBe(0.7);
  });
});

describe('referenceForward hook points and invariants', () => {
  const tokens = [PROMPT, [1, 2, 3, 4, 5, 6]];
  const { logits, cache } = referenceForward(cfg, weights, tokens);

  it('caches every non-optional hook point in forward order with TransformerLens shapes', () => {
    const infos = listHookPoints(cfg);
    expect([...cache.keys()]).toEqual(infos.map((i) => i.name));
    for (const info of infos) expect(get(cache, info.name).shape).toEqual(hookShape(info, cfg, 2, 6));
    expect(logits.shape).toEqual([2, 6, 50]);
  });

  it('hook_embed = W_E[tokens], hook_pos_embed = W_pos[p], resid_pre0 = embed + pos_embed', () => {
    const e = get(cache, 'hook_embed').data, pe = get(cache, 'hook_pos_embed').data, r0 = get(cache, 'blocks.0.hook_resid_pre').data;
    for (let b = 0; b < 2; b++) for (let p = 0; p < 6; p++) for (let d = 0; d < 16; d++) {
      const i = (b * 6 + p) * 16 + d;
      expect(e[i]).toBe(weights.W_E[tokens[b][p] * 16 + d]);
      expect(pe[i]).toBe(weights.W_pos[p * 16 + d]);
      expect(r0[i]).toBe(Math.fround(e[i] + pe[i]));
    }
  });

  it('resid_post[L] = resid_pre[L+1]; resid_mid = resid_pre + attn_out; resid_post = resid_mid + mlp_out', () => {
    expect(Array.from(get(cache, 'blocks.0.hook_resid_post').data)).toEqual(Array.from(get(cache, 'blocks.1.hook_resid_pre').data));
    for (let l = 0; l < 2; l++) {
      const pre = get(cache, `blocks.${l}.hook_resid_pre`).data, ao = get(cache, `blocks.${l}.hook_attn_out`).data;
      const mid = get(cache, `blocks.${l}.hook_resid_mid`).data, mo = get(cache, `blocks.${l}.hook_mlp_out`).data;
      const post = get(cache, `blocks.${l}.hook_resid_post`).data;
      expect(maxAbsDiff(mid, pre.map((v, i) => v + ao[i]))).toBeLessThan(1e-6);
      expect(maxAbsDiff(post, mid.map((v, i) => v + mo[i]))).toBeLessThan(1e-6);
    }
  });

  it('attn_out = Σ_heads result + b_O', () => {
    for (let l = 0; l < 2; l++) {
      const res = get(cache, `blocks.${l}.attn.hook_result`).data, ao = get(cache, `blocks.${l}.hook_attn_out`).data;
      const expected = new Float64Array(ao.length);
      for (let r = 0; r < 12; r++) for (let d = 0; d < 16; d++) {
        let s = weights.blocks[l].b_O[d];
        for (let h = 0; h < 4; h++) s += res[(r * 4 + h) * 16 + d];
        expected[r * 16 + d] = s;
      }
      expect(maxAbsDiff(ao, expected)).toBeLessThan(1e-5);
    }
  });

  it('LayerNorm: scale = sqrt(mean((x - mean)²) + eps), normalized = (x - mean)/scale · w + b', () => {
    const x = get(cache, 'blocks.1.hook_resid_mid').data, s = get(cache, 'blocks.1.ln2.hook_scale').data, n = get(cache, 'blocks.1.ln2.hook_normalized').data;
    const { w, b } = weights.blocks[1].ln2!;
    for (let r = 0; r < 12; r++) {
      const row = Array.from(x.subarray(r * 16, (r + 1) * 16));
      const mean = row.reduce((a, v) => a + v, 0) / 16;
      const varc = row.reduce((a, v) => a + (v - mean) ** 2, 0) / 16;
      expect(s[r]).toBeCloseTo(Math.sqrt(varc + cfg.eps), 6);
      for (let d = 0; d < 16; d++) expect(n[r * 16 + d]).toBeCloseTo(((row[d] - mean) / Math.sqrt(varc + 1e-5)) * w[d] + b[d], 5);
    }
  });

  it('scores are -Infinity above the diagonal; pattern rows sum to 1 and are 0 above the diagonal', () => {
    for (let l = 0; l < 2; l++) {
      const sc = get(cache, `blocks.${l}.attn.hook_attn_scores`).data, pat = get(cache, `blocks.${l}.attn.hook_pattern`).data;
      for (let bh = 0; bh < 8; bh++) for (let q = 0; q < 6; q++) {
        let sum = 0;
        for (let k = 0; k < 6; k++) {
          const i = (bh * 6 + q) * 6 + k;
          if (k > q) {
            expect(sc[i]).toBe(-Infinity);
            expect(pat[i]).toBe(0);
          } else {
            expect(Number.isFinite(sc[i])).toBe(true);
            expect(pat[i]).toBeGreaterThan(0);
          }
          sum += pat[i];
        }
        expect(sum).toBeCloseTo(1, 6);
      }
    }
  });

  it('q·k/sqrt(d_head) and z = pattern @ v agree with the cached q, k, v at one entry', () => {
    const q = get(cache, 'blocks.1.attn.hook_q').data, k = get(cache, 'blocks.1.attn.hook_k').data, v = get(cache, 'blocks.1.attn.hook_v').data;
    const sc = get(cache, 'blocks.1.attn.hook_attn_scores').data, pat = get(cache, 'blocks.1.attn.hook_pattern').data, z = get(cache, 'blocks.1.attn.hook_z').data;
    const b = 1, h = 2, qp = 4, kp = 1, H = 16;
    let dot = 0;
    for (let e = 0; e < 4; e++) dot += q[(b * 6 + qp) * H + h * 4 + e] * k[(b * 6 + kp) * H + h * 4 + e];
    expect(sc[((b * 4 + h) * 6 + qp) * 6 + kp]).toBeCloseTo(dot / 2, 5);
    for (let e = 0; e < 4; e++) {
      let ze = 0;
      for (let kk = 0; kk <= qp; kk++) ze += pat[((b * 4 + h) * 6 + qp) * 6 + kk] * v[(b * 6 + kk) * H + h * 4 + e];
      expect(z[(b * 6 + qp) * H + h * 4 + e]).toBeCloseTo(ze, 6);
    }
  });
});

describe('referenceForward with padding', () => {
  const long = [4, 8, 15, 16, 23, 42];
  const short = [7, 1, 30];
  const PAD = 49;
  const alone = (t: number[]) => referenceForward(cfg, weights, [t]).logits;
  const rowLogits = (l: Tensor, b: number, p: number) => l.data.subarray((l.shape[1] * b + p) * 50, (l.shape[1] * b + p + 1) * 50);

  it('right padding: each row equals the same prompt run alone at its real positions', () => {
    const { logits } = referenceForward(cfg, weights, [long, [...short, PAD, PAD, PAD]], { attentionMask: [[1, 1, 1, 1, 1, 1], [1, 1, 1, 0, 0, 0]] });
    const aLong = alone(long), aShort = alone(short);
    for (let p = 0; p < 6; p++) expect(maxAbsDiff(rowLogits(logits, 0, p), rowLogits(aLong, 0, p))).toBeLessThan(1e-5);
    for (let p = 0; p < 3; p++) expect(maxAbsDiff(rowLogits(logits, 1, p), rowLogits(aShort, 0, p))).toBeLessThan(1e-5);
  });

  it('left padding: positions restart at the first real token; pad queries get all-zero pattern rows', () => {
    const mask = [[1, 1, 1, 1, 1, 1], [0, 0, 0, 1, 1, 1]];
    const { logits, cache } = referenceForward(cfg, weights, [long, [PAD, PAD, PAD, ...short]], { attentionMask: mask });
    const aLong = alone(long), aShort = alone(short);
    for (let p = 0; p < 6; p++) expect(maxAbsDiff(rowLogits(logits, 0, p), rowLogits(aLong, 0, p))).toBeLessThan(1e-5);
    for (let p = 0; p < 3; p++) expect(maxAbsDiff(rowLogits(logits, 1, p + 3), rowLogits(aShort, 0, p))).toBeLessThan(1e-5);
    // pos embed: real token j of the short prompt gets W_pos[j]; pad tokens get 0 (TransformerLens's choice)
    const pe = get(cache, 'hook_pos_embed').data;
    for (let p = 0; p < 6; p++) for (let d = 0; d < 16; d++) {
      expect(pe[(6 + p) * 16 + d]).toBe(p < 3 ? 0 : weights.W_pos[(p - 3) * 16 + d]);
    }
    const sc = get(cache, 'blocks.0.attn.hook_attn_scores').data, pat = get(cache, 'blocks.0.attn.hook_pattern').data;
    for (let h = 0; h < 4; h++) for (let q = 0; q < 6; q++) for (let k = 0; k < 6; k++) {
      const i = ((4 + h) * 6 + q) * 6 + k;
      if (k < 3 || k > q) {
        expect(sc[i]).toBe(-Infinity);
        expect(pat[i]).toBe(0);
      }
    }
  });
});

describe('referenceForward hooks', () => {
  const tokens = [PROMPT];
  const base = referenceForward(cfg, weights, tokens);

  it('zeroing head 2 of layer 0 in hook_pattern equals zeroing its z in hook_z', () => {
    const viaPattern = referenceForward(cfg, weights, tokens, {
      hooks: {
        'blocks.0.attn.hook_pattern': (t) => {
          const d = Float32Array.from(t.data);
          for (let q = 0; q < 6; q++) for (let k = 0; k < 6; k++) d[(2 * 6 + q) * 6 + k] = 0;
          return new Tensor(d, t.shape);
        },
      },
    });
    const viaZ = referenceForward(cfg, weights, tokens, {
      hooks: {
        'blocks.0.attn.hook_z': (t) => {
          const d = Float32Array.from(t.data);
          for (let p = 0; p < 6; p++) for (let e = 0; e < 4; e++) d[p * 16 + 2 * 4 + e] = 0;
          return new Tensor(d, t.shape);
        },
      },
    });
    expect(maxAbsDiff(viaPattern.logits.data, viaZ.logits.data)).toBeLessThan(1e-6);
    for (const n of ['blocks.0.hook_attn_out', 'blocks.1.hook_resid_post', 'blocks.1.attn.hook_pattern']) {
      expect(maxAbsDiff(get(viaPattern.cache, n).data, get(viaZ.cache, n).data)).toBeLessThan(1e-6);
    }
    // and it did change the output
    expect(maxAbsDiff(viaPattern.logits.data, base.logits.data)).toBeGreaterThan(1e-3);
    // the replaced value is what gets cached
    expect(get(viaPattern.cache, 'blocks.0.attn.hook_pattern').data[(2 * 6 + 3) * 6 + 1]).toBe(0);
  });

  it('a hook that returns nothing changes nothing, and sees the activation and its name', () => {
    const seen: string[] = [];
    const run = referenceForward(cfg, weights, tokens, {
      hooks: {
        'blocks.1.mlp.hook_post': (t, name) => {
          seen.push(`${name}:${t.shape.join('x')}`);
        },
      },
    });
    expect(seen).toEqual(['blocks.1.mlp.hook_post:1x6x64']);
    expect(Array.from(run.logits.data)).toEqual(Array.from(base.logits.data));
  });

  it('a replaced ln1.hook_scale is what divides: doubling it halves (normalized - b)/w', () => {
    const run = referenceForward(cfg, weights, tokens, {
      hooks: { 'blocks.0.ln1.hook_scale': (t) => new Tensor(t.data.map((v) => 2 * v), t.shape) },
    });
    const { w, b } = weights.blocks[0].ln1!;
    const n0 = get(base.cache, 'blocks.0.ln1.hook_normalized').data, n1 = get(run.cache, 'blocks.0.ln1.hook_normalized').data;
    for (let i = 0; i < n0.length; i++) {
      const d = i % 16;
      expect((n1[i] - b[d]) / w[d]).toBeCloseTo((n0[i] - b[d]) / w[d] / 2, 4);
    }
  });

  it('hook_tokens is computed only when asked, as a float [batch, pos] tensor, and a replacement flows into the embedding', () => {
    expect(base.cache.has('hook_tokens')).toBe(false);
    const run = referenceForward(cfg, weights, tokens, {
      hooks: { hook_tokens: (t) => new Tensor(t.data.map(() => 11), t.shape) },
      cacheNames: (n) => n === 'hook_tokens' || n === 'hook_embed',
    });
    expect([...run.cache.keys()]).toEqual(['hook_tokens', 'hook_embed']);
    expect(get(run.cache, 'hook_tokens').shape).toEqual([1, 6]);
    const same = referenceForward(cfg, weights, [[11, 11, 11, 11, 11, 11]]);
    const hookedOnly = referenceForward(cfg, weights, tokens, { hooks: { hook_tokens: () => {} } });
    expect([...hookedOnly.cache.keys()][0]).toBe('hook_tokens');
    expect(Array.from(get(hookedOnly.cache, 'hook_tokens').data)).toEqual(PROMPT);
    expect(Array.from(run.logits.data)).toEqual(Array.from(same.logits.data));
  });

  it('cacheNames limits the cache', () => {
    const run = referenceForward(cfg, weights, tokens, { cacheNames: (n) => n.endsWith('hook_resid_post') });
    expect([...run.cache.keys()]).toEqual(['blocks.0.hook_resid_post', 'blocks.1.hook_resid_post']);
    expect(Array.from(run.logits.data)).toEqual(Array.from(base.logits.data));
  });

  it('rejects wrong-shaped replacements, unknown or uncomputed hook points, and bad inputs', () => {
    expect(() => referenceForward(cfg, weights, tokens, { hooks: { 'blocks.0.attn.hook_z': () => Tensor.zeros([1, 6, 16]) } }))
      .toThrow(/blocks\.0\.attn\.hook_z.*\[1, 6, 16\].*\[1, 6, 4, 4\]/);
    expect(() => referenceForward(cfg, weights, tokens, { hooks: { 'blocks.5.hook_resid_pre': () => {} } })).toThrow(/unknown hook point/);
    expect(() => referenceForward(cfg, weights, tokens, { hooks: { 'blocks.0.hook_q_input': () => {} } })).toThrow(/optional/);
    expect(() => referenceForward(cfg, weights, [[1, 2], [3]])).toThrow(/pad the batch/);
    expect(() => referenceForward(cfg, weights, [[1, 50]])).toThrow(/\[0, 50\)/);
    expect(() => referenceForward(cfg, weights, [new Array(33).fill(1)])).toThrow(/n_ctx/);
    expect(() => referenceForward(cfg, weights, [[1, 2]], { attentionMask: [[1, 2]] })).toThrow(/0 or 1/);
    expect(() => referenceForward({ ...cfg, d_model: 8 }, weights, [[1, 2]])).toThrow(/W_E has/);
  });
});

describe('lmCrossEntropyLoss', () => {
  // batch 2, pos 3, d_vocab 3. Row logits [0, ln2, ln3] → probs [1/6, 2/6, 3/6]; [0, 0, 0] → 1/3 each.
  const L = [0, Math.log(2), Math.log(3)];
  const U = [0, 0, 0];
  const logits = new Tensor(Float32Array.from([...U, ...L, ...L, ...L, ...U, ...L]), [2, 3, 3]);
  const tokens = [[0, 2, 2], [1, 0, 1]];
  // prompt 0: pos0 (U) predicts 2 → ln3; pos1 (L) predicts 2 → ln2
  // prompt 1: pos0 (L) predicts 0 → ln6; pos1 (U) predicts 1 → ln3
  const expected = [Math.log(3), Math.log(2), Math.log(6), Math.log(3)];

  it('per-token is -log p(next token), shape [batch, pos - 1]', () => {
    const t = lmCrossEntropyLoss(logits, tokens, null, true);
    expect(t.shape).toEqual([2, 2]);
    expect(maxAbsDiff(t.data, expected)).toBeLessThan(1e-6);
  });

  it('the mean is over all predictions without a mask', () => {
    expect(lmCrossEntropyLoss(logits, tokens)).toBeCloseTo(expected.reduce((a, b) => a + b) / 4, 6);
  });

  it('with a mask only pairs where both tokens are real count; masked per-token entries are 0', () => {
    const mask = [[1, 1, 0], [0, 1, 1]];
    expect(lmCrossEntropyLoss(logits, tokens, mask)).toBeCloseTo((Math.log(3) + Math.log(3)) / 2, 6);
    const t = lmCrossEntropyLoss(logits, tokens, mask, true);
    expect(maxAbsDiff(t.data, [Math.log(3), 0, 0, Math.log(3)])).toBeLessThan(1e-6);
    expect(() => lmCrossEntropyLoss(logits, tokens, [[1, 0, 0], [0, 0, 1]])).toThrow(/no \(token, next token\) pair/);
  });

  it('agrees with the reference model: masked loss of a padded batch equals the unpadded prompt loss', () => {
    const short = [7, 1, 30, 2];
    const padded = referenceForward(cfg, weights, [[...short, 49, 49]], { attentionMask: [[1, 1, 1, 1, 0, 0]] });
    const alone = referenceForward(cfg, weights, [short]);
    expect(lmCrossEntropyLoss(padded.logits, [[...short, 49, 49]], [[1, 1, 1, 1, 0, 0]])).toBeCloseTo(lmCrossEntropyLoss(alone.logits, [short]), 5);
  });
});
