/**
 * Reading circuits past an MLP (an extension; TransformerLens has no equivalent, see the README). The framework's
 * weight-only analyses skip the MLPs, which suits attention-only models; in a model with MLPs, block 0's MLP often
 * acts as part of the embedding, and later heads read tokens — and earlier heads' outputs — after it. The pieces:
 * - `effectiveEmbedding`: tokens as a head in layer 1 sees them, W_E[t] + mean W_pos + b_O of block 0, plus block
 *   0's MLP of that, then LayerNorm (attention of block 0 left out: it mixes in other positions);
 * - `blockZeroMlpInputs`: points where block 0's MLP reads, built from the weights alone (a token, its position,
 *   and every head of block 0 moving another random token from the position before);
 * - `mlpLinearization`: I + the mean Jacobian of x ↦ MLP(LN2(x)) over such points, [d_model, d_model]: the linear
 *   map a head's output goes through on its way past its block's MLP (use it as an `outputMaps` entry of
 *   `allCompositionScores`); for a deeper block, pass points from a cache (its `blocks.L.hook_resid_mid` rows);
 * - `embeddingTokenSet`: the tokens to read over (the model's training vocabulary, or a seeded sample).
 * All need the LayerNorms folded (the default processing), so that LayerNorm is a plain normalisation.
 */
import type { HookedTransformerConfig } from '../config.ts';
import { Rng } from '../random.ts';
import { activationDerivative, activationFn } from '../ops/index.ts';
import { Tensor } from '../tensor.ts';
import { fmtShape, normalizeRows } from './linalg.ts';
import type { KernelOptions, KernelSessions } from '../engine/kernels.ts';
import type { WeightName, WeightStore } from '../weightStore.ts';

/** What these functions read: a model's config and TransformerLens-named, layer-stacked weights. */
export interface MlpSource {
  cfg: HookedTransformerConfig;
  /** The model's weights (read one layer at a time, the embeddings without a copy). */
  readonly weights: WeightStore;
  readonly kernels: KernelSessions;
}

/** A set of token vectors standing in for W_E's rows: `vectors[i]` is token `tokens[i]`. */
export interface TokenEmbedding {
  tokens: number[];
  vectors: Tensor; // [n_tokens, d_model]
}

export interface EffectiveEmbeddingOptions extends KernelOptions {
  /** Positions whose W_pos rows are averaged into every token; default 1 … min(64, n_ctx − 1). */
  positions?: readonly number[];
}

export interface MlpInputsOptions {
  /** How many points; default 256. */
  samples?: number;
  /** Seed for the token and position draws; default 0. */
  seed?: number;
  /** Positions are drawn from 1 … maxPos; default min(64, n_ctx − 1). */
  maxPos?: number;
}

function checkFolded(fn: string, model: MlpSource): void {
  if (!model || !model.weights || !model.cfg) throw new Error(`${fn}: pass a HookedTransformer (cfg, weights and kernels)`);
  if (model.cfg.normalization_type !== 'LNPre') {
    throw new Error(`${fn}: needs the LayerNorms folded into the weights (normalization_type 'LNPre', the default processing); this model has '${model.cfg.normalization_type}'`);
  }
}

function checkTokenIds(fn: string, tokens: readonly number[], d_vocab: number): void {
  if (!Array.isArray(tokens) || tokens.length === 0) throw new Error(`${fn}: tokens must be a non-empty array of token ids`);
  for (const t of tokens) {
    if (!Number.isInteger(t) || t < 0 || t >= d_vocab) throw new Error(`${fn}: token id ${t} is not an integer in [0, ${d_vocab})`);
  }
}

function checkPositions(fn: string, positions: readonly number[], n_ctx: number): void {
  if (!Array.isArray(positions) || positions.length === 0) throw new Error(`${fn}: positions must be a non-empty array`);
  for (const p of positions) {
    if (!Number.isInteger(p) || p < 0 || p >= n_ctx) throw new Error(`${fn}: position ${p} is not an integer in [0, ${n_ctx})`);
  }
}

const defaultMaxPos = (n_ctx: number) => Math.max(1, Math.min(64, n_ctx - 1));

/** The tokens to read an effective embedding over: `n` distinct tokens drawn from the whole vocabulary with `seed`, sorted. */
export function embeddingTokenSet(model: { cfg: { d_vocab: number } }, n = 1024, seed = 0): number[] {
  const V = model.cfg.d_vocab;
  if (!Number.isInteger(n) || n < 1) throw new Error(`embeddingTokenSet: n must be a positive integer, got ${n}`);
  if (n >= V) return Array.from({ length: V }, (_, i) => i);
  const rng = new Rng(seed);
  const chosen = new Set<number>();
  while (chosen.size < n) chosen.add(rng.int(0, V));
  return [...chosen].sort((a, b) => a - b);
}

/** One layer of a weight, TransformerLens-shaped, as float32 with its shape (a copy of that layer only). */
function layerSlice(model: MlpSource, name: WeightName, layer: number): { data: Float32Array; shape: number[] } {
  const w = model.weights.stacked(name, layer);
  return { data: w.data, shape: w.shape };
}

/** An MLP's pre-activations LN(x) W_in + b_in [rows, d_mlp] for normalised rows n [rows, d_model]. */
async function mlpPre(
  kernels: KernelSessions, W_in: { data: Float32Array; shape: number[] }, b_in: Float32Array, n: Float64Array, rows: number, opts: KernelOptions,
): Promise<Float32Array> {
  const [d, m] = W_in.shape; // [d_model, d_mlp]
  const pre = (await kernels.matmul({ data: Float32Array.from(n), shape: [rows, d] }, W_in, opts)).data;
  for (let i = 0; i < rows; i++) for (let j = 0; j < m; j++) pre[i * m + j] += b_in[j];
  return pre;
}

function checkLayer(fn: string, layer: number, n_layers: number): void {
  if (!Number.isInteger(layer) || layer < 0 || layer >= n_layers) throw new Error(`${fn}: layer ${layer} is not an integer in [0, ${n_layers})`);
}

/**
 * The effective embedding of `tokens`, [n_tokens, d_model]: x = W_E[t] + mean(W_pos[positions]) + b_O[0], then
 * x + MLP₀(LN(x)), then LayerNorm — what a head in layer 1 reads for a token when block 0's attention is set aside.
 */
export async function effectiveEmbedding(model: MlpSource, tokens: readonly number[], opts: EffectiveEmbeddingOptions = {}): Promise<TokenEmbedding> {
  checkFolded('effectiveEmbedding', model);
  const { d_model: d, d_mlp: m, d_vocab, n_ctx, eps, act_fn } = model.cfg;
  checkTokenIds('effectiveEmbedding', tokens, d_vocab);
  const positions = opts.positions ?? Array.from({ length: defaultMaxPos(n_ctx) }, (_, i) => i + 1);
  checkPositions('effectiveEmbedding', positions, n_ctx);
  const W_E = model.weights.matrix('W_E'); // [d_vocab, d_model], no copy
  const W_pos = model.weights.matrix('W_pos'); // [n_ctx, d_model]
  const b_O = layerSlice(model, 'b_O', 0).data; // [d_model]
  const shift = new Float64Array(d); // mean W_pos + b_O
  for (const p of positions) for (let k = 0; k < d; k++) shift[k] += W_pos[p * d + k] / positions.length;
  for (let k = 0; k < d; k++) shift[k] += b_O[k];
  const N = tokens.length;
  const x = new Float64Array(N * d); // [n_tokens, d_model]
  tokens.forEach((t, i) => { for (let k = 0; k < d; k++) x[i * d + k] = W_E[t * d + k] + shift[k]; });
  const pre = await mlpPre(model.kernels, layerSlice(model, 'W_in', 0), layerSlice(model, 'b_in', 0).data, normalizeRows(x, N, d, eps).n, N, opts); // [n_tokens, d_mlp]
  const act = activationFn(act_fn);
  for (let i = 0; i < pre.length; i++) pre[i] = act(pre[i]);
  const out = (await model.kernels.matmul({ data: pre, shape: [N, m] }, layerSlice(model, 'W_out', 0), opts)).data; // [n_tokens, d_model]
  const b_out = layerSlice(model, 'b_out', 0).data;
  for (let i = 0; i < N; i++) for (let k = 0; k < d; k++) x[i * d + k] += out[i * d + k] + b_out[k];
  return { tokens: [...tokens], vectors: new Tensor(Float32Array.from(normalizeRows(x, N, d, eps).n), [N, d]) };
}

/**
 * Points where block 0's MLP reads (resid_mid of block 0), [samples, d_model], from the weights alone: for a
 * random token t of `tokens` at a random position p, W_E[t] + W_pos[p] + b_O[0] plus, for every head of block 0,
 * its OV output (LN(x') W_V + b_V) W_O for x' = another random token at position p − 1 — as if each head attended
 * to one earlier token, which a previous-token head does.
 */
export function blockZeroMlpInputs(model: MlpSource, tokens: readonly number[], opts: MlpInputsOptions = {}): Tensor {
  checkFolded('blockZeroMlpInputs', model);
  const { d_model: d, n_heads: H, d_head: dh, d_vocab, n_ctx, eps } = model.cfg;
  checkTokenIds('blockZeroMlpInputs', tokens, d_vocab);
  const samples = opts.samples ?? 256;
  if (!Number.isInteger(samples) || samples < 1) throw new Error(`blockZeroMlpInputs: samples must be a positive integer, got ${samples}`);
  const maxPos = opts.maxPos ?? defaultMaxPos(n_ctx);
  if (!Number.isInteger(maxPos) || maxPos < 1 || maxPos >= n_ctx) throw new Error(`blockZeroMlpInputs: maxPos must be an integer in [1, ${n_ctx}), got ${maxPos}`);
  const W_E = model.weights.matrix('W_E'); // [d_vocab, d_model], no copy
  const W_pos = model.weights.matrix('W_pos'); // [n_ctx, d_model]
  const W_V = layerSlice(model, 'W_V', 0).data; // [n_heads, d_model, d_head]
  const b_V = layerSlice(model, 'b_V', 0).data; // [n_heads, d_head]
  const W_O = layerSlice(model, 'W_O', 0).data; // [n_heads, d_head, d_model]
  const b_O = layerSlice(model, 'b_O', 0).data; // [d_model]
  const rng = new Rng(opts.seed ?? 0);
  const pick = () => tokens[rng.int(0, tokens.length)];
  const out = new Float32Array(samples * d);
  const src = new Float64Array(d);
  const z = new Float64Array(dh);
  for (let s = 0; s < samples; s++) {
    const p = rng.int(1, maxPos + 1);
    const t = pick();
    const x = new Float64Array(d);
    for (let k = 0; k < d; k++) x[k] = W_E[t * d + k] + W_pos[p * d + k] + b_O[k];
    for (let h = 0; h < H; h++) {
      const tPrev = pick();
      for (let k = 0; k < d; k++) src[k] = W_E[tPrev * d + k] + W_pos[(p - 1) * d + k];
      const { n } = normalizeRows(src, 1, d, eps);
      for (let c = 0; c < dh; c++) z[c] = b_V[h * dh + c];
      for (let a = 0; a < d; a++) for (let c = 0; c < dh; c++) z[c] += n[a] * W_V[(h * d + a) * dh + c];
      for (let c = 0; c < dh; c++) for (let k = 0; k < d; k++) x[k] += z[c] * W_O[(h * dh + c) * d + k];
    }
    out.set(x, s * d);
  }
  return new Tensor(out, [samples, d]);
}

/**
 * I + the mean over `points` [n, d_model] of the Jacobian of x ↦ MLP(LN2(x)) in block `layer`, [d_model, d_model],
 * in the row-vector convention (a change dx of the residual stream changes the block's output by dx · map).
 * Per point, J = r (I − 𝟙𝟙ᵀ/d − n nᵀ/d) W_in diag(act′(pre)) W_out (n the normalised point, r = 1/σ); the mean
 * is summed in closed form, so the cost is one [n, d_model] × [d_model, d_mlp] product and a few d_model² · d_mlp ones.
 */
export async function mlpLinearization(model: MlpSource, layer: number, points: Tensor, opts: KernelOptions = {}): Promise<Tensor> {
  checkFolded('mlpLinearization', model);
  const { d_model: d, d_mlp: m, n_layers, eps, act_fn } = model.cfg;
  checkLayer('mlpLinearization', layer, n_layers);
  if (!(points instanceof Tensor) || points.ndim !== 2 || points.shape[1] !== d || points.shape[0] < 1) {
    throw new Error(`mlpLinearization: points must be a Tensor [n, d_model = ${d}] with n ≥ 1, got ${points instanceof Tensor ? fmtShape(points.shape) : typeof points}`);
  }
  const N = points.shape[0];
  const { n, r } = normalizeRows(Float64Array.from(points.data), N, d, eps);
  const W_in = layerSlice(model, 'W_in', layer); // [d_model, d_mlp]
  const b_in = layerSlice(model, 'b_in', layer).data; // [d_mlp]
  const W_out = layerSlice(model, 'W_out', layer); // [d_mlp, d_model]
  const pre = await mlpPre(model.kernels, W_in, b_in, n, N, opts); // [N, d_mlp]
  const g = new Float32Array(N * m); // act′(pre) ⊙ (n W_in) for the second term; the weights Σ r g for the first
  const rg = new Float64Array(m);
  const actDerivative = activationDerivative(act_fn);
  for (let i = 0; i < N; i++) {
    for (let j = 0; j < m; j++) {
      const gd = actDerivative(pre[i * m + j]);
      rg[j] += (r[i] * gd) / N;
      g[i * m + j] = gd * (pre[i * m + j] - b_in[j]);
    }
  }
  // First term: (I − 𝟙𝟙ᵀ/d) W_in diag(mean r g) W_out.
  const scaled = new Float32Array(d * m);
  for (let a = 0; a < d; a++) for (let j = 0; j < m; j++) scaled[a * m + j] = W_in.data[a * m + j] * rg[j];
  const M = (await model.kernels.matmul({ data: scaled, shape: [d, m] }, W_out, opts)).data; // [d_model, d_model]
  // Second term: (1/(N d)) Σ_p r_p n_p u_pᵀ, u_p = (n_p W_in ⊙ act′(pre_p)) W_out.
  const U = (await model.kernels.matmul({ data: g, shape: [N, m] }, W_out, opts)).data; // [N, d_model]
  const J = new Float64Array(d * d);
  const colMean = new Float64Array(d);
  for (let a = 0; a < d; a++) for (let b = 0; b < d; b++) colMean[b] += M[a * d + b] / d;
  for (let a = 0; a < d; a++) for (let b = 0; b < d; b++) J[a * d + b] = M[a * d + b] - colMean[b];
  for (let i = 0; i < N; i++) {
    for (let a = 0; a < d; a++) {
      const c = (r[i] * n[i * d + a]) / (N * d);
      if (c === 0) continue;
      for (let b = 0; b < d; b++) J[a * d + b] -= c * U[i * d + b];
    }
  }
  for (let a = 0; a < d; a++) J[a * d + a] += 1;
  return new Tensor(Float32Array.from(J), [d, d]);
}
