/**
 * Trains an SAE on batches of activations: each step's forward pass, loss and gradients run as one
 * onnxruntime graph (stepGraph.ts); Adam, the decoder-norm constraint (unit decoder rows: the part of
 * each row's gradient along the row is removed before the update and the row renormalised after, as
 * SAELens's TopK and Anthropic's recipes do) and dead-feature handling (TopK's auxiliary loss, or
 * resampling for the standard SAE) run here.
 */
import { f32, int64, runSession, SessionCache, bool, type OrtValue } from '../../hooks/engine/runtime.ts';
import { Rng } from '../../hooks/random.ts';
import { buildStepGraph, STEP_OUTPUTS, type TrainArchitecture } from './stepGraph.ts';

export interface SaeTrainerOptions {
  architecture: TrainArchitecture;
  d_in: number;
  d_sae: number;
  /** TopK's k. */
  k?: number;
  /** The standard SAE's L1 coefficient λ (on activations normalised to E‖x‖ = √d_in). */
  l1?: number;
  /** Steps over which λ ramps up from 0 (SAELens's l1_warm_up_steps). */
  l1WarmupSteps?: number;
  /** Adam (SAELens's defaults: β1 0.9, β2 0.999). */
  lr: number;
  beta1?: number;
  beta2?: number;
  /** Learning-rate warmup steps and the final fraction of steps over which it decays linearly to 0. */
  warmupSteps?: number;
  decayFraction?: number;
  totalSteps: number;
  /** A feature that has not fired for this many rows is dead (default 2^20 / 4). */
  deadWindow?: number;
  /** TopK's auxiliary loss: its coefficient (Gao et al.: 1/32) and k_aux (default d_in / 2). */
  auxCoefficient?: number;
  kAux?: number;
  seed?: number;
  threads?: number;
}

export interface SaeParams {
  W_enc: Float32Array; // [d_in, d_sae]
  b_enc: Float32Array; // [d_sae]
  W_dec: Float32Array; // [d_sae, d_in], unit rows
  b_dec: Float32Array; // [d_in]
}

export interface StepMetrics {
  step: number;
  /** Mean ‖x̂ − x‖² per row, and the sparsity term (λ·mean Σf, or the auxiliary loss). */
  mse: number;
  sparsityLoss: number;
  loss: number;
  /** Mean active features per row. */
  l0: number;
  /** 1 − Σ‖x − x̂‖² / Σ‖x − mean x‖² over the batch. */
  explainedVariance: number;
  /** Share of features dead (not fired within the dead window). */
  deadFraction: number;
  lr: number;
}

const PARAMS = ['W_enc', 'b_enc', 'W_dec', 'b_dec'] as const;
type ParamName = (typeof PARAMS)[number];

export class SaeTrainer {
  readonly params: SaeParams;
  private readonly m: SaeParams;
  private readonly v: SaeParams;
  private readonly sessions: SessionCache;
  private t = 0;
  /** Rows seen since each feature last fired. */
  private readonly sinceFired: Float64Array;
  /** Rows seen in all. */
  rowsSeen = 0;
  private readonly rng: Rng;

  constructor(readonly opts: SaeTrainerOptions, init?: Partial<SaeParams>) {
    const { d_in: D, d_sae: S } = opts;
    if (opts.architecture === 'topk' && !(Number.isInteger(opts.k) && opts.k! >= 1 && opts.k! <= S)) throw new Error(`topk needs k in 1…${S}; got ${opts.k}`);
    this.rng = new Rng(opts.seed ?? 0);
    // SAELens's initialisation: W_dec rows random (here unit norm), W_enc = W_decᵀ, b_enc = 0, b_dec given (the data's mean).
    const wDec = init?.W_dec ?? this.rng.normals(S * D);
    normaliseRows(wDec, S, D);
    const wEnc = init?.W_enc ?? new Float32Array(D * S);
    if (!init?.W_enc) for (let f = 0; f < S; f++) for (let i = 0; i < D; i++) wEnc[i * S + f] = wDec[f * D + i];
    this.params = { W_enc: wEnc, b_enc: init?.b_enc ?? new Float32Array(S), W_dec: wDec, b_dec: init?.b_dec ?? new Float32Array(D) };
    const zeros = (): SaeParams => ({ W_enc: new Float32Array(D * S), b_enc: new Float32Array(S), W_dec: new Float32Array(S * D), b_dec: new Float32Array(D) });
    this.m = zeros();
    this.v = zeros();
    this.sessions = new SessionCache({ device: 'cpu', threads: opts.threads ?? 0, memArena: true });
    this.sinceFired = new Float64Array(S);
  }

  get step(): number {
    return this.t;
  }

  /** Features that have not fired within the dead window. */
  deadMask(): Uint8Array {
    const window = this.opts.deadWindow ?? 2 ** 18;
    return Uint8Array.from(this.sinceFired, (r) => (r >= window ? 1 : 0));
  }

  /** The learning rate at update `step` (0-based): linear warmup, constant, linear decay to 0 over the last decayFraction. */
  learningRate(step: number): number {
    const { lr, totalSteps } = this.opts;
    const warm = this.opts.warmupSteps ?? 0;
    if (step < warm) return (lr * (step + 1)) / warm;
    const decayStart = Math.floor(totalSteps * (1 - (this.opts.decayFraction ?? 0.2)));
    if (step < decayStart) return lr;
    return lr * Math.max(0, (totalSteps - step) / Math.max(1, totalSteps - decayStart));
  }

  /** One step on x [rows, d_in]: gradients from the graph, then Adam and the decoder-norm constraint. */
  async trainStep(x: Float32Array, rows: number): Promise<StepMetrics> {
    const out = await this.run(x, rows, true);
    const lr = this.learningRate(this.t);
    removeParallelComponent(out.grads.W_dec, this.params.W_dec, this.opts.d_sae, this.opts.d_in);
    this.adam(out.grads, lr);
    normaliseRows(this.params.W_dec, this.opts.d_sae, this.opts.d_in);
    this.t++;
    return { ...out.metrics, step: this.t, lr };
  }

  /** The step graph's outputs on x without an update (metrics and gradients): the tests' entry point too. */
  async run(x: Float32Array, rows: number, count = false): Promise<{ metrics: Omit<StepMetrics, 'step' | 'lr'>; grads: SaeParams; fired: Float32Array }> {
    const { architecture, d_in: D, d_sae: S } = this.opts;
    const dead = this.deadMask();
    const numDead = dead.reduce((a, b) => a + b, 0);
    const aux = architecture === 'topk' && numDead > 0;
    const key = aux ? 'aux' : 'main';
    const session = await this.sessions.get(key, () => buildStepGraph({ architecture, d_in: D, d_sae: S, k: this.opts.k, aux }));
    const feeds: Record<string, OrtValue> = {
      x: f32(x.subarray(0, rows * D), [rows, D]),
      W_enc: f32(this.params.W_enc, [D, S]),
      b_enc: f32(this.params.b_enc, [S]),
      W_dec: f32(this.params.W_dec, [S, D]),
      b_dec: f32(this.params.b_dec, [D]),
    };
    if (architecture === 'standard') {
      const warm = this.opts.l1WarmupSteps ?? 0;
      const l1 = (this.opts.l1 ?? 0) * (warm > 0 ? Math.min(1, (this.t + 1) / warm) : 1);
      feeds.l1 = f32(Float32Array.of(l1), []);
    }
    if (aux) {
      // SAELens: k_aux = d_in / 2, the loss scaled down when fewer features are dead.
      const kAux = Math.min(this.opts.kAux ?? Math.floor(D / 2), numDead);
      const scale = Math.min(numDead / (this.opts.kAux ?? Math.floor(D / 2)), 1);
      feeds.dead = bool(dead, [S]);
      feeds.k_aux = int64([kAux], [1]);
      feeds.aux_coefficient = f32(Float32Array.of((this.opts.auxCoefficient ?? 1 / 32) * scale), []);
    }
    const r = await runSession(session, feeds, STEP_OUTPUTS);
    const scalar = (name: string) => (r[name].data as Float32Array)[0];
    const fired = r.fired.data as Float32Array;
    if (count) {
      this.rowsSeen += rows;
      for (let f = 0; f < S; f++) this.sinceFired[f] = fired[f] > 0 ? 0 : this.sinceFired[f] + rows;
    }
    const mse = scalar('mse');
    const sparsityLoss = scalar('sparsity_loss');
    return {
      metrics: {
        mse,
        sparsityLoss,
        loss: mse + sparsityLoss,
        l0: scalar('l0'),
        explainedVariance: 1 - scalar('sse') / scalar('sst'),
        deadFraction: this.deadMask().reduce((a, b) => a + b, 0) / S,
      },
      grads: { W_enc: r.grad_W_enc.data as Float32Array, b_enc: r.grad_b_enc.data as Float32Array, W_dec: r.grad_W_dec.data as Float32Array, b_dec: r.grad_b_dec.data as Float32Array },
      fired,
    };
  }

  /** Adam (bias-corrected, no weight decay) at learning rate `lr`. */
  private adam(grads: SaeParams, lr: number): void {
    const b1 = this.opts.beta1 ?? 0.9;
    const b2 = this.opts.beta2 ?? 0.999;
    const t = this.t + 1;
    const c1 = 1 / (1 - b1 ** t);
    const c2 = 1 / (1 - b2 ** t);
    for (const name of PARAMS) {
      const w = this.params[name];
      const g = grads[name];
      const m = this.m[name];
      const v = this.v[name];
      for (let i = 0; i < w.length; i++) {
        const gi = g[i];
        const mi = (m[i] = b1 * m[i] + (1 - b1) * gi);
        const vi = (v[i] = b2 * v[i] + (1 - b2) * gi * gi);
        w[i] -= (lr * mi * c1) / (Math.sqrt(vi * c2) + 1e-8);
      }
    }
  }

  /**
   * Resamples dead features (Anthropic's recipe, for the standard SAE): each gets the direction of an
   * input drawn with probability ∝ its squared reconstruction error, as its decoder row (unit) and,
   * scaled to 0.2 × the mean encoder norm of live features, as its encoder column; b_enc 0, Adam's
   * moments reset. `x` [rows, d_in] are recent inputs. Returns how many were resampled.
   */
  async resampleDead(x: Float32Array, rows: number): Promise<number> {
    const { d_in: D, d_sae: S } = this.opts;
    const dead = this.deadMask();
    const deadList = [...dead.keys()].filter((f) => dead[f]);
    if (deadList.length === 0) return 0;
    const recon = await this.reconstructionErrors(x, rows);
    let total = 0;
    for (let r = 0; r < rows; r++) total += recon[r] ** 2;
    if (!(total > 0)) return 0;
    const { W_enc, W_dec, b_enc } = this.params;
    let aliveNorm = 0;
    let alive = 0;
    for (let f = 0; f < S; f++) {
      if (dead[f]) continue;
      let sq = 0;
      for (let i = 0; i < D; i++) sq += W_enc[i * S + f] ** 2;
      aliveNorm += Math.sqrt(sq);
      alive++;
    }
    const encScale = 0.2 * (alive > 0 ? aliveNorm / alive : 1);
    for (const f of deadList) {
      let u = this.rng.next() * total;
      let r = 0;
      while (r < rows - 1 && (u -= recon[r] ** 2) > 0) r++;
      const dir = new Float64Array(D);
      let sq = 0;
      for (let i = 0; i < D; i++) {
        dir[i] = x[r * D + i] - this.params.b_dec[i];
        sq += dir[i] ** 2;
      }
      const n = Math.sqrt(sq) || 1;
      for (let i = 0; i < D; i++) {
        W_dec[f * D + i] = dir[i] / n;
        W_enc[i * S + f] = (encScale * dir[i]) / n;
        this.m.W_dec[f * D + i] = this.v.W_dec[f * D + i] = 0;
        this.m.W_enc[i * S + f] = this.v.W_enc[i * S + f] = 0;
      }
      b_enc[f] = this.m.b_enc[f] = this.v.b_enc[f] = 0;
      this.sinceFired[f] = 0;
    }
    return deadList.length;
  }

  /** ‖x̂ − x‖ of each row, computed here (float64) from the current parameters. */
  private async reconstructionErrors(x: Float32Array, rows: number): Promise<Float64Array> {
    const { d_in: D, d_sae: S } = this.opts;
    const { W_enc, b_enc, W_dec, b_dec } = this.params;
    const out = new Float64Array(rows);
    const pre = new Float64Array(S);
    for (let r = 0; r < rows; r++) {
      pre.fill(0);
      for (let i = 0; i < D; i++) {
        const xi = x[r * D + i] - b_dec[i];
        for (let f = 0; f < S; f++) pre[f] += xi * W_enc[i * S + f];
      }
      let sq = 0;
      const recon = Float64Array.from(b_dec);
      for (let f = 0; f < S; f++) {
        const a = pre[f] + b_enc[f];
        if (a > 0) for (let i = 0; i < D; i++) recon[i] += a * W_dec[f * D + i];
      }
      for (let i = 0; i < D; i++) sq += (recon[i] - x[r * D + i]) ** 2;
      out[r] = Math.sqrt(sq);
    }
    return out;
  }

  async dispose(): Promise<void> {
    await this.sessions.dispose();
  }
}

/** Scales each of the `rows` rows of m [rows, cols] to unit norm (zero rows stay). */
export function normaliseRows(m: Float32Array, rows: number, cols: number): void {
  for (let r = 0; r < rows; r++) {
    let sq = 0;
    for (let c = 0; c < cols; c++) sq += m[r * cols + c] ** 2;
    const n = Math.sqrt(sq);
    if (n > 0) for (let c = 0; c < cols; c++) m[r * cols + c] /= n;
  }
}

/** g_r ← g_r − (g_r · w_r) w_r for unit rows w_r: the gradient that would only change a row's norm. */
export function removeParallelComponent(g: Float32Array, w: Float32Array, rows: number, cols: number): void {
  for (let r = 0; r < rows; r++) {
    let dot = 0;
    for (let c = 0; c < cols; c++) dot += g[r * cols + c] * w[r * cols + c];
    for (let c = 0; c < cols; c++) g[r * cols + c] -= dot * w[r * cols + c];
  }
}

export type { ParamName };
