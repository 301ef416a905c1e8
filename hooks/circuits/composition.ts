/**
 * Composition scores (Elhage et al. 2021, "A Mathematical Framework for Transformer Circuits"):
 * ‖W_A W_B‖_F / (‖W_A‖_F ‖W_B‖_F) with TransformerLens's choice of matrices — left = the earlier head's OV,
 * right = the later head's QK (Q-composition), QKᵀ (K-composition) or OV (V-composition) — masked to pairs
 * whose second head is in a later layer. All from the factors: with left = A_l B_l and right = A_r B_r,
 * ‖left right‖² = tr(P C Q Cᵀ), P = A_lᵀA_l, C = B_l A_r, Q = B_r B_rᵀ (all d_head-sized); no d_model × d_model
 * matrix is formed.
 */
import { Rng } from '../random.ts';
import { Tensor } from '../tensor.ts';
import { FactoredMatrix } from './FactoredMatrix.ts';
import { batchTransposed } from '../ops/index.ts';
import { batchMap, broadcastLead, choleskyPsd, gemm, gramCols, gramRows, prod } from './linalg.ts';
import type { KernelOptions, KernelSessions } from '../engine/kernels.ts';
import { attnWeights, type CircuitSource } from './weights.ts';

export type CompositionMode = 'Q' | 'K' | 'V';

const MODES: readonly CompositionMode[] = ['Q', 'K', 'V'];

function checkMode(fn: string, mode: unknown): asserts mode is CompositionMode {
  if (!MODES.includes(mode as CompositionMode)) throw new Error(`${fn}: mode must be 'Q', 'K' or 'V'; got '${String(mode)}'`);
}

/** Per-factorisation pieces of a score: Gram of A's columns, Gram of B's rows, squared norm. */
interface Side {
  ga: Float64Array; // AᵀA [m, m]
  gb: Float64Array; // B Bᵀ [m, m]
  nsq: number; // ‖A B‖²
}

function side(a: Float64Array, aOff: number, b: Float64Array, bOff: number, l: number, m: number, r: number): Side {
  const ga = gramCols(a, aOff, l, m);
  const gb = gramRows(b, bOff, m, r);
  let nsq = 0;
  for (let i = 0; i < m * m; i++) nsq += ga[i] * gb[i];
  return { ga, gb, nsq: Math.max(0, nsq) };
}

/** ‖A_l B_l A_r B_r‖² from C = B_l A_r [ml, mr] and the Grams P = A_lᵀA_l, Q = B_r B_rᵀ. */
function traceSq(P: Float64Array, C: Float64Array, Q: Float64Array, ml: number, mr: number): number {
  const pc = new Float64Array(ml * mr);
  gemm(P, 0, C, 0, pc, 0, ml, ml, mr);
  const pcq = new Float64Array(ml * mr);
  gemm(pc, 0, Q, 0, pcq, 0, ml, mr, mr);
  let s = 0;
  for (let i = 0; i < ml * mr; i++) s += pcq[i] * C[i];
  return Math.max(0, s);
}

const ratio = (num: number, den: number): number => (den > 0 ? num / den : 0);

/**
 * TransformerLens's utils.composition_scores for two FactoredMatrices (float64, in JS): ‖L R‖ / (‖L‖ ‖R‖)
 * for every pair. With `broadcastDims` (default) the result is [...left.lead, ...right.lead]; otherwise
 * the leading dims are broadcast against each other. A zero-norm matrix gives 0 (TransformerLens: NaN).
 */
export function compositionScores(left: FactoredMatrix, right: FactoredMatrix, broadcastDims = true): Tensor {
  if (left.rdim !== right.ldim) {
    throw new Error(`compositionScores: left.rdim must equal right.ldim, shapes were left ${JSON.stringify(left.shape)}, right ${JSON.stringify(right.shape)}`);
  }
  const { a: la, b: lb } = left.factors64;
  const { a: ra, b: rb } = right.factors64;
  const [l1, m1, d, m2, r2] = [left.ldim, left.mdim, left.rdim, right.mdim, right.rdim];
  const nl = prod(left.lead);
  const nr = prod(right.lead);
  const L: Side[] = [];
  for (let i = 0; i < nl; i++) L.push(side(la, i * l1 * m1, lb, i * m1 * d, l1, m1, d));
  const R: Side[] = [];
  for (let j = 0; j < nr; j++) R.push(side(ra, j * d * m2, rb, j * m2 * r2, d, m2, r2));
  const score = (i: number, j: number): number => {
    const C = new Float64Array(m1 * m2);
    gemm(lb, i * m1 * d, ra, j * d * m2, C, 0, m1, d, m2);
    return ratio(Math.sqrt(traceSq(L[i].ga, C, R[j].gb, m1, m2)), Math.sqrt(L[i].nsq * R[j].nsq));
  };
  if (broadcastDims) {
    const out = new Float32Array(nl * nr);
    for (let i = 0; i < nl; i++) for (let j = 0; j < nr; j++) out[i * nr + j] = score(i, j);
    return new Tensor(out, [...left.lead, ...right.lead]);
  }
  const lead = broadcastLead('compositionScores', left.lead, right.lead);
  const mi = batchMap(left.lead, lead);
  const mj = batchMap(right.lead, lead);
  const out = new Float32Array(mi.length);
  for (let k = 0; k < mi.length; k++) out[k] = score(mi[k], mj[k]);
  return new Tensor(out, lead);
}

/** [L, H, r, c] per-head matrices → their transposes [L, H, c, r] (float32). */
function headsT(t: Tensor): Tensor {
  return t.transpose(-2, -1);
}

const f32 = (t: Tensor) => ({ data: t.data, shape: t.shape });

export interface CompositionOptions extends KernelOptions {
  /**
   * Per layer, a [d_model, d_model] map applied to the output of that layer's heads before a later head reads it
   * (W_O → W_O · M[layer]; null or missing = identity). An extension: `mlpLinearization` gives the map past a
   * block's MLP, which scores composition through that MLP. Default: none (TransformerLens's scores).
   */
  outputMaps?: readonly (Tensor | null | undefined)[];
}

/** W_O [L, H, d_head, d_model] with each layer's heads multiplied by its map; the same tensor when no map applies. */
async function mapOutputs(kernels: KernelSessions, W_O: Tensor, maps: CompositionOptions['outputMaps'], opts: KernelOptions): Promise<Tensor> {
  if (maps === undefined) return W_O;
  const [L, H, h, d] = W_O.shape;
  if (!Array.isArray(maps) || maps.length > L) throw new Error(`allCompositionScores: outputMaps must be an array of at most n_layers = ${L} entries (Tensor [${d}, ${d}] or null)`);
  if (maps.every((m) => m == null)) return W_O;
  const out = new Float32Array(W_O.data);
  for (let l = 0; l < maps.length; l++) {
    const m = maps[l];
    if (m == null) continue;
    if (!(m instanceof Tensor) || m.ndim !== 2 || m.shape[0] !== d || m.shape[1] !== d) {
      throw new Error(`allCompositionScores: outputMaps[${l}] must be a Tensor [${d}, ${d}] (d_model × d_model) or null, got ${m instanceof Tensor ? JSON.stringify(m.shape) : typeof m}`);
    }
    const n = H * h * d;
    const y = await kernels.matmul({ data: W_O.data.subarray(l * n, (l + 1) * n), shape: [H * h, d] }, f32(m), opts);
    out.set(y.data, l * n);
  }
  return new Tensor(out, W_O.shape);
}

/**
 * TransformerLens's all_composition_scores: [n_layers, n_heads, n_layers, n_heads], entry [l1, h1, l2, h2]
 * the score of head (l1, h1)'s OV into head (l2, h2)'s Q / K / V input, 0 unless l1 < l2 (and 0 where a head's
 * matrix is 0, where TransformerLens gives NaN). Big products run in float32 on onnxruntime (see engine/kernels.ts),
 * so this is async; a GPT-2-small-shaped model needs ~30 G multiply-adds per mode (1–2 s of CPU here).
 */
export async function allCompositionScores(src: CircuitSource, mode: CompositionMode, opts: CompositionOptions = {}): Promise<Tensor> {
  checkMode('allCompositionScores', mode);
  const need = mode === 'V' ? (['W_V', 'W_O'] as const) : (['W_Q', 'W_K', 'W_V', 'W_O'] as const);
  const { w, n_layers: L, n_heads: H, d_model: d, d_head: h } = attnWeights(src, need);
  const W_V = w.W_V!;
  const W_O = await mapOutputs(src.kernels, w.W_O!, opts.outputMaps, opts); // the earlier heads' W_O (· M[layer])
  const gram = async (t: Tensor, rows: boolean) =>
    (await src.kernels.matmul(rows ? f32(t) : f32(headsT(t)), rows ? f32(headsT(t)) : f32(t), opts)).data; // [L·H, h, h]
  const gV = await gram(W_V, false); // W_Vᵀ W_V
  const gO = await gram(W_O, true); // W_O W_Oᵀ (mapped)
  let X: Tensor; // the later head's input-side factor [L, H, d, h]
  let gRight: Float32Array; // B_r B_rᵀ of the later head
  let rightNormSq: Float64Array;
  const headNormSq = (g1: Float32Array, g2: Float32Array): Float64Array => {
    const out = new Float64Array(L * H);
    for (let i = 0; i < L * H; i++) {
      let s = 0;
      for (let j = 0; j < h * h; j++) s += g1[i * h * h + j] * g2[i * h * h + j];
      out[i] = Math.max(0, s);
    }
    return out;
  };
  const leftNormSq = headNormSq(gV, gO);
  if (mode === 'V') {
    X = W_V;
    gRight = W_O === w.W_O ? gO : await gram(w.W_O!, true); // the later head's own (unmapped) W_O
    rightNormSq = W_O === w.W_O ? leftNormSq : headNormSq(gV, gRight);
  } else {
    const gQ = await gram(w.W_Q!, false);
    const gK = await gram(w.W_K!, false);
    rightNormSq = headNormSq(gQ, gK);
    // Q: right = W_Q W_Kᵀ (A_r = W_Q, B_r B_rᵀ = W_Kᵀ W_K); K: right = QKᵀ = W_K W_Qᵀ.
    X = mode === 'Q' ? w.W_Q! : w.W_K!;
    gRight = mode === 'Q' ? gK : gQ;
  }
  // With P = L_P L_Pᵀ and Q = L_Q L_Qᵀ (Cholesky), tr(P C Q Cᵀ) = ‖(L_Pᵀ W_O^a)(X_b L_Q)‖²: the score's numerator
  // becomes the squared norm of one d_head × d_head block of a single big product, with no cancellation.
  const chol = (g: Float32Array, transpose: boolean): Float32Array => {
    const out = new Float32Array(g.length);
    for (let i = 0; i < L * H; i++) {
      const c = choleskyPsd(g, i * h * h, h);
      out.set(transpose ? batchTransposed(c, 1, h, h) : c, i * h * h);
    }
    return out;
  };
  const leftT = (await src.kernels.matmul({ data: chol(gV, true), shape: [L * H, h, h] }, { data: W_O.data, shape: [L * H, h, d] }, opts)).data; // [L·H, h, d]
  const rightT = (await src.kernels.matmul({ data: X.data, shape: [L * H, d, h] }, { data: chol(gRight, false), shape: [L * H, h, h] }, opts)).data; // [L·H, d, h]
  const out = new Float32Array(L * H * L * H);
  const RX = new Float32Array(d * H * h);
  for (let l2 = 1; l2 < L; l2++) {
    // The later layer's factors side by side: RX [d, H·h], RX[i, b·h + j] = rightT[l2, b, i, j].
    for (let b = 0; b < H; b++) {
      const base = (l2 * H + b) * d * h;
      for (let i = 0; i < d; i++) for (let j = 0; j < h; j++) RX[i * H * h + b * h + j] = rightT[base + i * h + j];
    }
    const N = l2 * H; // every head in layers < l2
    const S = await src.kernels.blockNormsSq(leftT.subarray(0, N * h * d), RX, { N, M: H, h, g: h, d }, opts);
    for (let a = 0; a < N; a++) {
      for (let b = 0; b < H; b++) {
        out[a * L * H + l2 * H + b] = ratio(Math.sqrt(S[a * H + b]), Math.sqrt(leftNormSq[a] * rightNormSq[l2 * H + b]));
      }
    }
  }
  return new Tensor(out, [L, H, L, H]);
}

export interface BaselineOptions {
  /** How many random (left, right) pairs; default 100. */
  samples?: number;
  /** Seed for the Gaussian draws; default 0. */
  seed?: number;
  /** A [d_model, d_model] map applied to the random left matrices' outputs, as `outputMaps` does to the heads'. */
  outputMap?: Tensor;
}

export interface CompositionBaseline {
  mode: CompositionMode;
  mean: number;
  std: number;
  /** Every sampled score. */
  scores: number[];
}

/**
 * The scores of random Gaussian matrices with the heads' shapes (left: W_V [d_model, d_head] W_O [d_head, d_model];
 * right: the same factor shapes as the mode's QK / QKᵀ / OV), the framework's reference point: a real
 * composition should stand clearly above this. Scores are scale-free, so the Gaussians' std does not matter.
 */
export function compositionBaseline(
  src: CircuitSource | { d_model: number; d_head: number },
  mode: CompositionMode,
  opts: BaselineOptions = {},
): CompositionBaseline {
  checkMode('compositionBaseline', mode);
  const samples = opts.samples ?? 100;
  if (!Number.isInteger(samples) || samples < 1) throw new Error(`compositionBaseline: samples must be a positive integer, got ${samples}`);
  let d: number;
  let h: number;
  if ('d_model' in src && typeof src.d_model === 'number' && 'd_head' in src && typeof src.d_head === 'number') {
    d = src.d_model;
    h = src.d_head;
  } else {
    const dims = attnWeights(src as CircuitSource, ['W_V', 'W_O']);
    d = dims.d_model;
    h = dims.d_head;
  }
  const map = opts.outputMap;
  if (map !== undefined && (!(map instanceof Tensor) || map.ndim !== 2 || map.shape[0] !== d || map.shape[1] !== d)) {
    throw new Error(`compositionBaseline: outputMap must be a Tensor [${d}, ${d}] (d_model × d_model), got ${map instanceof Tensor ? JSON.stringify(map.shape) : typeof map}`);
  }
  const map64 = map === undefined ? null : Float64Array.from(map.data);
  const rng = new Rng(opts.seed ?? 0);
  const gauss = (n: number) => Float64Array.from(rng.normals(n));
  const scores: number[] = [];
  for (let s = 0; s < samples; s++) {
    // Every mode's factors are [d_model, d_head] @ [d_head, d_model]; only which head they stand for differs.
    let lb = gauss(h * d);
    if (map64) {
      const mapped = new Float64Array(h * d);
      gemm(lb, 0, map64, 0, mapped, 0, h, d, d);
      lb = mapped;
    }
    const la = gauss(d * h);
    const lside = side(la, 0, lb, 0, d, h, d);
    const ra = gauss(d * h);
    const rb = gauss(h * d);
    const rside = side(ra, 0, rb, 0, d, h, d);
    const C = new Float64Array(h * h);
    gemm(lb, 0, ra, 0, C, 0, h, d, h);
    scores.push(ratio(Math.sqrt(traceSq(lside.ga, C, rside.gb, h, h)), Math.sqrt(lside.nsq * rside.nsq)));
  }
  const mean = scores.reduce((a, b) => a + b, 0) / samples;
  const std = Math.sqrt(scores.reduce((a, b) => a + (b - mean) ** 2, 0) / samples);
  return { mode, mean, std, scores };
}
