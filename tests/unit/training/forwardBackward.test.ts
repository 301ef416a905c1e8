/** Trainer forward/backward: loss equals the reference forward + LM loss, gradients equal central finite differences, ORT products equal plain loops. */
import { afterAll, describe, expect, it } from 'vitest';
import { gpt2Config } from '../../../hooks/init.ts';
import { lmCrossEntropyLoss } from '../../../hooks/loss.ts';
import { referenceForward } from '../../../hooks/reference.ts';
import { Rng } from '../../../hooks/random.ts';
import { toTransformerWeights } from '../../../training/export.ts';
import { forwardBackward, type ClassBatch } from '../../../training/model/forwardBackward.ts';
import { getParam, initParams, numel } from '../../../training/model/params.ts';
import { buildSeenVocab, fullVocab } from '../../../training/model/vocab.ts';
import { JsMatmul, OrtMatmul } from '../../../training/ops/matmul.ts';
import { JsKernels, OrtKernels } from '../../../training/ops/kernels.ts';

const cfg = gpt2Config({ n_layers: 2, d_model: 16, n_heads: 4, d_vocab: 60, n_ctx: 12 });
// tokens 0..39 are "seen"; 40..59 share the unseen row
const vocab = buildSeenVocab(Array.from({ length: 40 }, (_, i) => i), cfg.d_vocab);
const params = initParams(cfg, vocab.nClasses, { seed: 3, std: 0.3, randomAffine: true });
const ort = await OrtKernels.create(1);
afterAll(() => ort.dispose());

/** Tokens include unseen ones (≥ 40) as inputs and as targets. */
function tokenRows(seed: number, batch: number, pos: number): number[][] {
  const rng = new Rng(seed);
  return Array.from({ length: batch }, () => Array.from({ length: pos }, () => rng.int(0, cfg.d_vocab)));
}

/** Class batch predicting tokens[p + 1] at p (last position ignored), as lmCrossEntropyLoss scores it. */
function classBatch(tokens: number[][]): ClassBatch {
  const B = tokens.length;
  const T = tokens[0].length;
  const inputs = new Int32Array(B * T);
  const targets = new Int32Array(B * T).fill(-1);
  tokens.forEach((row, b) => row.forEach((t, p) => {
    inputs[b * T + p] = vocab.classOf[t];
    if (p + 1 < T) targets[b * T + p] = vocab.classOf[row[p + 1]];
  }));
  return { batch: B, pos: T, inputs, targets };
}

describe('OrtMatmul / OrtKernels', () => {
  it('matches float64 loops for every variant (|Δ| ≤ 1e-5)', async () => {
    const rng = new Rng(1);
    const js = new JsMatmul();
    const [m, k, n] = [5, 7, 3];
    const a = rng.normals(m * k);
    const b = rng.normals(k * n);
    const bias = rng.normals(n);
    for (const transA of [false, true]) {
      for (const transB of [false, true]) {
        for (const withBias of [false, true]) {
          const o = { transA, transB, bias: withBias ? bias : undefined };
          const x = await ort.gemm(a, b, m, k, n, o);
          const y = await js.gemm(a, b, m, k, n, o);
          for (let i = 0; i < x.length; i++) expect(Math.abs(x[i] - y[i])).toBeLessThan(1e-5);
        }
        const bx = await ort.bmm(rng.normals(3 * m * k), rng.normals(3 * k * n), 3, m, k, n, { transA, transB });
        expect(bx.length).toBe(3 * m * n);
      }
    }
    const A = rng.normals(4 * m * k);
    const Bm = rng.normals(4 * k * n);
    for (const transA of [false, true]) for (const transB of [false, true]) {
      const x = await ort.bmm(A, Bm, 4, m, k, n, { transA, transB });
      const y = await js.bmm(A, Bm, 4, m, k, n, { transA, transB });
      for (let i = 0; i < x.length; i++) expect(Math.abs(x[i] - y[i])).toBeLessThan(1e-5);
    }
    // a plain-loop value computed here: C[1,2] of A @ B without transposes
    const c = await ort.gemm(a, b, m, k, n);
    let s = 0;
    for (let p = 0; p < k; p++) s += a[1 * k + p] * b[p * n + 2];
    expect(c[1 * n + 2]).toBeCloseTo(s, 5);
  });

  it('attention and unembedding-loss graphs match the plain loops (|Δ| ≤ 2e-5)', async () => {
    const rng = new Rng(9);
    const js = new JsKernels();
    const shape = { batch: 2, pos: 5, nHeads: 3, dHead: 4 };
    const qkv = rng.normals(2 * 5 * 3 * 12);
    const dz = rng.normals(2 * 5 * 12);
    const a = await ort.attentionForward(qkv, shape);
    const b = await js.attentionForward(qkv, shape);
    for (let i = 0; i < a.z.length; i++) expect(Math.abs(a.z[i] - b.z[i])).toBeLessThan(2e-5);
    for (let i = 0; i < a.pattern.length; i++) expect(Math.abs(a.pattern[i] - b.pattern[i])).toBeLessThan(2e-5);
    // causal: the first query attends only to itself
    expect(a.pattern[0]).toBeCloseTo(1, 6);
    const da = await ort.attentionBackward(qkv, a.pattern, dz, shape);
    const db = await js.attentionBackward(qkv, b.pattern, dz, shape);
    for (let i = 0; i < da.length; i++) expect(Math.abs(da[i] - db[i])).toBeLessThan(2e-5);
    const inp = { h: rng.normals(6 * 4), wte: rng.normals(7 * 4), N: 6, D: 4, V: 7, offsetClass: 6, offset: Math.log(3), targets: Int32Array.of(0, 6, -1, 3, 2, 6) };
    const ua = await ort.unembedLoss(inp, true);
    const ub = await js.unembedLoss(inp, true);
    for (let i = 0; i < 6; i++) expect(Math.abs(ua.nll[i] - ub.nll[i])).toBeLessThan(2e-5);
    expect(ua.nll[2]).toBe(0);
    for (let i = 0; i < ua.dh!.length; i++) expect(Math.abs(ua.dh![i] - ub.dh![i])).toBeLessThan(2e-5);
    for (let i = 0; i < ua.dwte!.length; i++) expect(Math.abs(ua.dwte![i] - ub.dwte![i])).toBeLessThan(2e-5);
  });

  it('rejects mismatched shapes', async () => {
    await expect(ort.gemm(new Float32Array(5), new Float32Array(6), 2, 3, 2)).rejects.toThrow(/A has 5 elements/);
  });
});

const untiedParams = initParams(cfg, vocab.nClasses, { seed: 3, std: 0.3, randomAffine: true, untied: true });

describe.each([
  ['tied unembedding (GPT-2)', params],
  ['untied unembedding (lm_head)', untiedParams],
])('forwardBackward, %s', (_kind, params) => {
  it('loss equals referenceForward + lmCrossEntropyLoss on the exported weights (|Δ| ≤ 1e-4), unseen tokens included', async () => {
    const tokens = tokenRows(7, 3, 10);
    expect(tokens.flat().some((t) => t >= 40)).toBe(true);
    const res = await forwardBackward(cfg, vocab, params, classBatch(tokens), ort);
    const weights = await toTransformerWeights(cfg, vocab, params);
    const ref = referenceForward(cfg, weights, tokens);
    const refLoss = lmCrossEntropyLoss(ref.logits, tokens);
    expect(Math.abs(res.loss - refLoss)).toBeLessThan(1e-4);
    const perTok = lmCrossEntropyLoss(ref.logits, tokens, null, true);
    for (let b = 0; b < 3; b++) for (let p = 0; p < 9; p++) {
      expect(Math.abs(res.perPosition[b * 10 + p] - perTok.data[b * 9 + p])).toBeLessThan(1e-4);
    }
  });

  it('gradients equal central finite differences for every parameter tensor (sampled entries)', async () => {
    const tokens = tokenRows(11, 2, 8);
    const batch = classBatch(tokens);
    const js = new JsKernels();
    const { grads } = await forwardBackward(cfg, vocab, params, batch, js, { backward: true });
    const rng = new Rng(5);
    const h = 1e-2;
    let checked = 0;
    for (const spec of params.specs) {
      const w = getParam(params, spec.name);
      const g = getParam(grads!, spec.name);
      const n = numel(spec.shape);
      // sampled entries; for wte include the unseen row u and rows of seen input tokens
      const idx = new Set<number>();
      while (idx.size < Math.min(4, n)) idx.add(rng.int(0, n));
      if (spec.name === 'wte.weight' || spec.name === 'lm_head.weight') {
        idx.add(vocab.unseenClass * cfg.d_model + 3);
        idx.add(vocab.classOf[tokens[0][1]] * cfg.d_model + 1);
      }
      for (const i of idx) {
        const orig = w[i];
        w[i] = orig + h;
        const lp = (await forwardBackward(cfg, vocab, params, batch, js)).loss;
        w[i] = orig - h;
        const lm = (await forwardBackward(cfg, vocab, params, batch, js)).loss;
        w[i] = orig;
        const fd = (lp - lm) / (2 * h);
        // float32 activations: |Δ| ≤ 2e-3·max(1, |g|) + 2e-4 (h = 1e-2 truncation ~h², float32 rounding of the loss ~1e-6/h)
        const tol = 2e-3 * Math.max(1, Math.abs(fd)) + 2e-4;
        if (Math.abs(fd - g[i]) > tol) throw new Error(`${spec.name}[${i}]: backward ${g[i]} vs finite difference ${fd}`);
        checked++;
      }
      // the gradient is not trivially zero for this tensor
      expect(g.some((v) => Math.abs(v) > 1e-6), spec.name).toBe(true);
    }
    expect(checked).toBeGreaterThan(4 * params.specs.length - 1);
  });
});

describe('forwardBackward', () => {
  it('an untied model has its own lm_head (same other weights as the tied one from the same seed)', () => {
    expect(untiedParams.specs.map((s) => s.name)).toEqual([...params.specs.map((s) => s.name), 'lm_head.weight']);
    for (const s of params.specs) expect(getParam(untiedParams, s.name)).toEqual(getParam(params, s.name));
    expect(getParam(untiedParams, 'lm_head.weight')).not.toEqual(getParam(params, 'wte.weight'));
  });


  it('ORT and plain-loop backends give the same gradients (≤ 1e-4 relative to the largest)', async () => {
    const batch = classBatch(tokenRows(2, 2, 9));
    const a = await forwardBackward(cfg, vocab, params, batch, ort, { backward: true });
    const b = await forwardBackward(cfg, vocab, params, batch, new JsKernels(), { backward: true });
    expect(Math.abs(a.loss - b.loss)).toBeLessThan(1e-5);
    for (const s of params.specs) {
      const x = getParam(a.grads!, s.name);
      const y = getParam(b.grads!, s.name);
      let max = 0;
      let diff = 0;
      for (let i = 0; i < x.length; i++) { max = Math.max(max, Math.abs(y[i])); diff = Math.max(diff, Math.abs(x[i] - y[i])); }
      expect(diff, s.name).toBeLessThanOrEqual(1e-4 * max + 1e-7);
    }
  });

  it('with the whole vocabulary seen (no shared row: one class per token), the loss equals the reference forward and both backends agree', async () => {
    const all = fullVocab(cfg.d_vocab);
    expect(all.nClasses).toBe(cfg.d_vocab);
    expect(all.nUnseen).toBe(0);
    const p = initParams(cfg, all.nClasses, { seed: 9, std: 0.3, randomAffine: true });
    const rows = tokenRows(5, 2, 8);
    const batch: ClassBatch = { batch: 2, pos: 8, inputs: Int32Array.from(rows.flat()), targets: Int32Array.from(rows.flatMap((r) => r.map((_t, i) => (i + 1 < r.length ? r[i + 1] : -1)))) };
    const a = await forwardBackward(cfg, all, p, batch, ort, { backward: true });
    const b = await forwardBackward(cfg, all, p, batch, new JsKernels(), { backward: true });
    const ref = lmCrossEntropyLoss(referenceForward(cfg, await toTransformerWeights(cfg, all, p), rows).logits, rows);
    expect(Math.abs(a.loss - ref)).toBeLessThan(1e-4);
    expect(Math.abs(a.loss - b.loss)).toBeLessThan(1e-5);
    const x = getParam(a.grads!, 'wte.weight');
    const y = getParam(b.grads!, 'wte.weight');
    let max = 0;
    let diff = 0;
    for (let i = 0; i < x.length; i++) { max = Math.max(max, Math.abs(y[i])); diff = Math.max(diff, Math.abs(x[i] - y[i])); }
    expect(diff).toBeLessThanOrEqual(1e-4 * max + 1e-7);
  });
});
