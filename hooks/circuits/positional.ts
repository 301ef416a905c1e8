/**
 * Positional QK circuits: W_pos W_Q W_Kᵀ W_posᵀ for the first n positions of one head, its causal attention
 * pattern, and a "previous-token score from weights" — the mean softmax mass on offset −1 — to spot
 * previous-token heads without running the model (as in the framework's exercises: raw W_pos, no LayerNorm,
 * scores scaled by 1/√d_head before the causal softmax).
 */
import { Tensor } from '../tensor.ts';
import { attnWeights, getWeight, type CircuitSource } from './weights.ts';
import { normalizeRows } from './linalg.ts';
import { softmaxLine } from '../ops/index.ts';

export interface PositionalOptions {
  /** How many positions (default min(n_ctx, 64)). */
  nPos?: number;
  /**
   * LayerNorm-like rows: centre each W_pos row and scale it to unit variance (what LN without its affine
   * part does to a residual holding only W_pos) before the QK circuit. Default false (raw W_pos, as the framework).
   */
  normalize?: boolean;
}

interface Prepared {
  pos: Float64Array; // [n, d_model]
  n: number;
  d: number;
  h: number;
  L: number;
  H: number;
  W_Q: Tensor;
  W_K: Tensor;
}

function prepare(fn: string, src: CircuitSource, opts: PositionalOptions): Prepared {
  const { w, n_layers: L, n_heads: H, d_model: d, d_head: h } = attnWeights(src, ['W_Q', 'W_K']);
  const W_pos = getWeight(src, 'W_pos');
  const [n_ctx, dp] = W_pos.shape;
  if (dp !== d) throw new Error(`${fn}: W_pos has d_model ${dp}, the attention weights ${d}`);
  const n = opts.nPos ?? Math.min(n_ctx, 64);
  if (!Number.isInteger(n) || n < 2 || n > n_ctx) throw new Error(`${fn}: nPos must be an integer in [2, ${n_ctx}] (n_ctx), got ${n}`);
  const raw = Float64Array.from(W_pos.data.subarray(0, n * d));
  const pos = opts.normalize ? normalizeRows(raw, n, d, 1e-5).n : raw;
  return { pos, n, d, h, L, H, W_Q: w.W_Q!, W_K: w.W_K! };
}

function checkHead(fn: string, p: Prepared, layer: number, head: number): void {
  if (!Number.isInteger(layer) || layer < 0 || layer >= p.L) throw new Error(`${fn}: layer ${layer} is not an integer in [0, ${p.L})`);
  if (!Number.isInteger(head) || head < 0 || head >= p.H) throw new Error(`${fn}: head ${head} is not an integer in [0, ${p.H})`);
}

/** pos [n, d] @ W[layer, head] [d, h] → [n, h]. */
function project(p: Prepared, W: Tensor, layer: number, head: number): Float64Array {
  const { n, d, h } = p;
  const off = (layer * p.H + head) * d * h;
  const out = new Float64Array(n * h);
  for (let r = 0; r < n; r++) {
    for (let i = 0; i < d; i++) {
      const x = p.pos[r * d + i];
      if (x === 0) continue;
      const wRow = off + i * h;
      for (let j = 0; j < h; j++) out[r * h + j] += x * W.data[wRow + j];
    }
  }
  return out;
}

/** Raw scores [n, n]: entry [q, k] = W_pos[q] W_Q W_Kᵀ W_pos[k]ᵀ (no scaling, no mask). */
function scores(p: Prepared, layer: number, head: number): Float64Array {
  const q = project(p, p.W_Q, layer, head);
  const k = project(p, p.W_K, layer, head);
  const { n, h } = p;
  const out = new Float64Array(n * n);
  for (let a = 0; a < n; a++) {
    for (let b = 0; b < n; b++) {
      let s = 0;
      for (let j = 0; j < h; j++) s += q[a * h + j] * k[b * h + j];
      out[a * n + b] = s;
    }
  }
  return out;
}

/** Causal softmax of scores / √d_head, row by row → [n, n] (zeros above the diagonal). */
function pattern(raw: Float64Array, n: number, h: number): Float64Array {
  const scale = 1 / Math.sqrt(h);
  const scaled = raw.map((v) => v * scale); // [n, n]
  const out = new Float64Array(n * n);
  for (let a = 0; a < n; a++) softmaxLine(scaled, out, a * n, a + 1); // keys 0…a of query a
  return out;
}

/** Mean over queries 1..n-1 of the pattern's mass on the previous position. */
function prevMass(pat: Float64Array, n: number): number {
  let s = 0;
  for (let a = 1; a < n; a++) s += pat[a * n + a - 1];
  return s / (n - 1);
}

/** Positional QK circuit W_pos[:n] W_Q W_Kᵀ W_pos[:n]ᵀ of one head, [n, n] (query position × key position), unscaled. */
export function positionalQK(src: CircuitSource, layer: number, head: number, opts: PositionalOptions = {}): Tensor {
  const p = prepare('positionalQK', src, opts);
  checkHead('positionalQK', p, layer, head);
  return new Tensor(Float32Array.from(scores(p, layer, head)), [p.n, p.n]);
}

/** The attention pattern the positional QK circuit alone gives: causal softmax of scores / √d_head, [n, n]. */
export function positionalPattern(src: CircuitSource, layer: number, head: number, opts: PositionalOptions = {}): Tensor {
  const p = prepare('positionalPattern', src, opts);
  checkHead('positionalPattern', p, layer, head);
  return new Tensor(Float32Array.from(pattern(scores(p, layer, head), p.n, p.h)), [p.n, p.n]);
}

/** Previous-token score from the weights of one head: mean softmax mass on offset −1 of its positional pattern. */
export function previousTokenScoreFromWeights(src: CircuitSource, layer: number, head: number, opts: PositionalOptions = {}): number {
  const p = prepare('previousTokenScoreFromWeights', src, opts);
  checkHead('previousTokenScoreFromWeights', p, layer, head);
  return prevMass(pattern(scores(p, layer, head), p.n, p.h), p.n);
}

/** previousTokenScoreFromWeights for every head, [n_layers, n_heads]. */
export function previousTokenScoresFromWeights(src: CircuitSource, opts: PositionalOptions = {}): Tensor {
  const p = prepare('previousTokenScoresFromWeights', src, opts);
  const out = new Float32Array(p.L * p.H);
  for (let l = 0; l < p.L; l++) for (let hh = 0; hh < p.H; hh++) out[l * p.H + hh] = prevMass(pattern(scores(p, l, hh), p.n, p.h), p.n);
  return new Tensor(out, [p.L, p.H]);
}
