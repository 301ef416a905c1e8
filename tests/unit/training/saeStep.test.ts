/**
 * The SAE trainer's step graph (training/sae/stepGraph.ts): its loss terms against a float64 loss
 * written here, and every gradient element against central finite differences of that loss (the
 * standard SAE with its L1 term, TopK, TopK with the auxiliary loss on dead features); the Adam step
 * keeps decoder rows at unit norm.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { Rng } from '../../../hooks/random.ts';
import { SaeTrainer, type SaeParams, type SaeTrainerOptions } from '../../../training/sae/saeTrainer.ts';

const D = 6;
const S = 11;
const N = 7;

interface LossSpec {
  arch: 'standard' | 'topk';
  k?: number;
  l1?: number;
  /** TopK aux: dead features, k_aux, coefficient, and r = x − x̂ held fixed (from the unperturbed parameters). */
  aux?: { dead: boolean[]; kAux: number; coefficient: number; residual: Float64Array };
}

/** The loss in float64: (1/N)Σ‖x̂ − x‖² + (λ/N)Σf, or + c(1/N)Σ‖z W_dec − r‖². Also returns x − x̂ (the residual). */
function loss(p: SaeParams, x: Float64Array, spec: LossSpec): { mse: number; sparsity: number; residual: Float64Array } {
  let mse = 0;
  let sparsity = 0;
  const residual = new Float64Array(N * D);
  for (let n = 0; n < N; n++) {
    const saeIn = Array.from({ length: D }, (_, i) => x[n * D + i] - p.b_dec[i]);
    const pre = Array.from({ length: S }, (_, f) => saeIn.reduce((a, v, i) => a + v * p.W_enc[i * S + f], 0) + p.b_enc[f]);
    const f = pre.map((v) => Math.max(0, v));
    if (spec.arch === 'topk') {
      const top = new Set(Array.from({ length: S }, (_, j) => j).sort((a, b) => pre[b] - pre[a]).slice(0, spec.k));
      for (let j = 0; j < S; j++) if (!top.has(j)) f[j] = 0;
    }
    for (let i = 0; i < D; i++) {
      const xh = p.b_dec[i] + f.reduce((a, v, j) => a + v * p.W_dec[j * D + i], 0);
      mse += (xh - x[n * D + i]) ** 2;
      residual[n * D + i] = x[n * D + i] - xh;
    }
    if (spec.arch === 'standard') sparsity += f.reduce((a, v) => a + v, 0);
    if (spec.aux) {
      const dead = Array.from({ length: S }, (_, j) => j).filter((j) => spec.aux!.dead[j]).sort((a, b) => pre[b] - pre[a]).slice(0, spec.aux.kAux);
      for (let i = 0; i < D; i++) {
        const eh = dead.reduce((a, j) => a + pre[j] * p.W_dec[j * D + i], 0);
        sparsity += spec.aux.coefficient * (eh - spec.aux.residual[n * D + i]) ** 2;
      }
    }
  }
  return { mse: mse / N, sparsity: (spec.arch === 'standard' ? (spec.l1 ?? 0) * sparsity : sparsity) / N, residual };
}

function randomParams(seed: number): { params: SaeParams; x: Float32Array } {
  const rng = new Rng(seed);
  return {
    params: { W_enc: rng.normals(D * S, 0.5), b_enc: rng.normals(S, 0.3), W_dec: rng.normals(S * D, 0.5), b_dec: rng.normals(D, 0.3) },
    x: rng.normals(N * D, 1),
  };
}

const trainers: SaeTrainer[] = [];
afterAll(async () => {
  await Promise.all(trainers.map((t) => t.dispose()));
});

async function checkGradients(opts: Omit<SaeTrainerOptions, 'd_in' | 'd_sae' | 'lr' | 'totalSteps'>, seed: number, deadFeatures: number[] = []): Promise<void> {
  const { params, x } = randomParams(seed);
  const trainer = new SaeTrainer({ d_in: D, d_sae: S, lr: 0, totalSteps: 1, deadWindow: 1, threads: 1, ...opts }, structuredClone(params));
  trainers.push(trainer);
  // Make the chosen features dead: a step that counts rows on which they never fire (their b_enc very negative).
  if (deadFeatures.length > 0) {
    const probe = structuredClone(params);
    for (let f = 0; f < S; f++) probe.b_enc[f] = deadFeatures.includes(f) ? -1e3 : 1e3;
    const counter = new SaeTrainer({ d_in: D, d_sae: S, lr: 0, totalSteps: 1, deadWindow: 1, threads: 1, ...opts }, probe);
    trainers.push(counter);
    await counter.run(x, N, true);
    expect([...counter.deadMask().keys()].filter((f) => counter.deadMask()[f])).toEqual(deadFeatures);
    (trainer as unknown as { sinceFired: Float64Array }).sinceFired.set((counter as unknown as { sinceFired: Float64Array }).sinceFired);
  }
  const xs = Float64Array.from(x);
  // The trainer's parameters after its constructor normalised W_dec's rows (its initial constraint).
  const p0 = structuredClone(trainer.params);
  const { metrics, grads } = await trainer.run(x, N);
  const spec: LossSpec = { arch: opts.architecture, k: opts.k, l1: opts.l1 };
  if (deadFeatures.length > 0) {
    const kAux = Math.min(opts.kAux!, deadFeatures.length);
    spec.aux = { dead: Array.from({ length: S }, (_, f) => deadFeatures.includes(f)), kAux, coefficient: opts.auxCoefficient! * Math.min(deadFeatures.length / opts.kAux!, 1), residual: loss(p0, xs, spec).residual };
  }
  const ref = loss(p0, xs, spec);
  expect(Math.abs(metrics.mse - ref.mse)).toBeLessThan(1e-5 * Math.max(1, ref.mse));
  expect(Math.abs(metrics.sparsityLoss - ref.sparsity)).toBeLessThan(1e-5 * Math.max(1, ref.sparsity));
  if (deadFeatures.length > 0) expect(ref.sparsity).toBeGreaterThan(1e-3);
  const h = 1e-4;
  let checked = 0;
  let worst = 0;
  for (const name of ['W_enc', 'b_enc', 'W_dec', 'b_dec'] as const) {
    for (let i = 0; i < p0[name].length; i++) {
      const plus = structuredClone(p0);
      const minus = structuredClone(p0);
      // Float32 parameters: perturb in float64 copies.
      const asF64 = (p: SaeParams): SaeParams => ({ W_enc: Float64Array.from(p.W_enc) as unknown as Float32Array, b_enc: Float64Array.from(p.b_enc) as unknown as Float32Array, W_dec: Float64Array.from(p.W_dec) as unknown as Float32Array, b_dec: Float64Array.from(p.b_dec) as unknown as Float32Array });
      const pp = asF64(plus);
      const pm = asF64(minus);
      pp[name][i] += h;
      pm[name][i] -= h;
      const lp = loss(pp, xs, spec);
      const lm = loss(pm, xs, spec);
      const fd = (lp.mse + lp.sparsity - lm.mse - lm.sparsity) / (2 * h);
      const err = Math.abs(grads[name][i] - fd) / Math.max(1, Math.abs(fd));
      worst = Math.max(worst, err);
      checked++;
    }
  }
  expect(checked).toBe(2 * D * S + S + D);
  expect(worst, `worst relative gradient error ${worst}`).toBeLessThan(2e-3);
}

describe('SAE training step: gradients = finite differences of the float64 loss', () => {
  it('standard SAE with L1', async () => {
    await checkGradients({ architecture: 'standard', l1: 0.7 }, 1);
  });
  it('TopK SAE', async () => {
    await checkGradients({ architecture: 'topk', k: 3 }, 2);
  });
  it('TopK SAE with the auxiliary loss on dead features', async () => {
    await checkGradients({ architecture: 'topk', k: 3, kAux: 4, auxCoefficient: 0.5 }, 3, [1, 4, 6, 7, 9]);
  });
});

describe('SAE training step: the update', () => {
  it('keeps decoder rows at unit norm, lowers the loss on a fixed batch, and counts dead features', async () => {
    const { params, x } = randomParams(4);
    const trainer = new SaeTrainer({ architecture: 'topk', d_in: D, d_sae: S, k: 3, lr: 0.01, totalSteps: 200, deadWindow: 10 * N, threads: 1 }, params);
    trainers.push(trainer);
    const first = await trainer.trainStep(x, N);
    let last = first;
    for (let s = 0; s < 150; s++) last = await trainer.trainStep(x, N);
    expect(last.mse).toBeLessThan(first.mse * 0.5);
    for (let f = 0; f < S; f++) expect(Math.hypot(...trainer.params.W_dec.subarray(f * D, (f + 1) * D))).toBeCloseTo(1, 5);
    expect(last.deadFraction).toBeGreaterThanOrEqual(0);
    expect(trainer.rowsSeen).toBe(151 * N);
  });
});
