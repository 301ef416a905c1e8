/**
 * Copying from the weights: each head's full OV circuit W_E W_V W_O W_U [d_vocab, d_vocab], summarised by
 * the framework's eigenvalue statistic Σ Re λ / Σ |λ| (1 = pure copying, −1 = pure anti-copying), and the
 * tokens a head's OV circuit maps a given token to. The d_vocab × d_vocab matrix is never formed: its non-zero
 * eigenvalues are those of the d_head × d_head matrix W_O W_U W_E W_V (FactoredMatrix's BA).
 */
import { Tensor } from '../tensor.ts';
import { FactoredMatrix } from './FactoredMatrix.ts';
import { checkTokens, topOfRow, unembedRow, type TokenRow } from './directPath.ts';
import { eigenvalues, fmtShape, prod } from './linalg.ts';
import type { TokenEmbedding } from './mlpPath.ts';
import type { F32, KernelOptions } from '../engine/kernels.ts';
import { attnWeights, getWeight, type CircuitSource } from './weights.ts';

/** Σ Re λ / Σ |λ| of one spectrum (0 when every eigenvalue is 0). */
export function eigenvalueScore(re: ArrayLike<number>, im: ArrayLike<number>): number {
  let num = 0;
  let den = 0;
  for (let i = 0; i < re.length; i++) {
    num += re[i];
    den += Math.hypot(re[i], im[i]);
  }
  return den > 0 ? num / den : 0;
}

/** The copying statistic of every matrix of a (square) FactoredMatrix, [...lead], from its eigenvalues (via BA). */
export function copyingScoreOf(fm: FactoredMatrix): Tensor {
  const { re, im } = fm.eigenvalues64();
  const m = fm.mdim;
  const n = prod(fm.lead);
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = eigenvalueScore(re.subarray(i * m, (i + 1) * m), im.subarray(i * m, (i + 1) * m));
  return new Tensor(out, fm.lead);
}

function checkHead(fn: string, layer: number, head: number, L: number, H: number): void {
  if (!Number.isInteger(layer) || layer < 0 || layer >= L) throw new Error(`${fn}: layer ${layer} is not an integer in [0, ${L})`);
  if (!Number.isInteger(head) || head < 0 || head >= H) throw new Error(`${fn}: head ${head} is not an integer in [0, ${H})`);
}

/** One head's W_V [d_model, d_head] and W_O [d_head, d_model] as float64. */
function headOV(src: CircuitSource, fn: string, layer: number, head: number) {
  const { w, n_layers, n_heads, d_model, d_head } = attnWeights(src, ['W_V', 'W_O']);
  checkHead(fn, layer, head, n_layers, n_heads);
  const o = (layer * n_heads + head) * d_model * d_head;
  return {
    V: Float64Array.from(w.W_V!.data.subarray(o, o + d_model * d_head)),
    O: Float64Array.from(w.W_O!.data.subarray(o, o + d_model * d_head)),
    d_model,
    d_head,
  };
}

/**
 * One head's full OV circuit W_E W_V W_O W_U as a FactoredMatrix [d_vocab, d_vocab] with factors
 * (W_E W_V) [d_vocab, d_head] and (W_O W_U) [d_head, d_vocab] (float64; ~2·d_vocab·d_model·d_head work).
 */
export function fullOVCircuit(src: CircuitSource, layer: number, head: number): FactoredMatrix {
  const { V, O, d_model, d_head } = headOV(src, 'fullOVCircuit', layer, head);
  const W_E = getWeight(src, 'W_E');
  const W_U = getWeight(src, 'W_U');
  if (W_E.shape[1] !== d_model || W_U.shape[0] !== d_model) {
    throw new Error(`fullOVCircuit: W_E ${fmtShape(W_E.shape)} / W_U ${fmtShape(W_U.shape)} do not match d_model ${d_model}`);
  }
  const ov = new FactoredMatrix({ data: V, shape: [d_model, d_head] }, { data: O, shape: [d_head, d_model] });
  return (ov.rmatmul(W_E) as FactoredMatrix).matmul(W_U) as FactoredMatrix;
}

export interface CopyingOptions extends KernelOptions {
  /**
   * Read the OV circuits through these token vectors instead of W_E (e.g. `effectiveEmbedding`'s): the circuit
   * becomes vectors · W_V W_O · W_U[:, tokens], [n_tokens, n_tokens]. Default: W_E and the whole vocabulary.
   */
  embedding?: TokenEmbedding;
}

/** Checks an embedding against d_model and d_vocab; returns its vectors [n_tokens, d_model]. */
function checkEmbedding(fn: string, emb: TokenEmbedding, d: number, d_vocab: number): Float32Array {
  const { tokens, vectors } = emb ?? ({} as TokenEmbedding);
  if (!Array.isArray(tokens) || !(vectors instanceof Tensor)) throw new Error(`${fn}: embedding must be { tokens: number[], vectors: Tensor [n_tokens, d_model] }`);
  const n = tokens.length;
  if (vectors.ndim !== 2 || vectors.shape[0] !== n || vectors.shape[1] !== d) {
    throw new Error(`${fn}: embedding.vectors must be [${n}, ${d}] (one row per token, d_model wide), got ${fmtShape(vectors.shape)}`);
  }
  checkTokens(fn, tokens, d_vocab, 1);
  return vectors.data;
}

/**
 * Copying scores of every head, [n_layers, n_heads]: Σ Re λ / Σ |λ| over the eigenvalues of W_E W_OV W_U,
 * computed as those of W_O (W_U W_E) W_V [d_head, d_head]. The products run in float32 on onnxruntime
 * (W_U W_E alone is d_model² · d_vocab work), the eigenvalues in float64. With `embedding`, the circuit is
 * read through its vectors and tokens instead (W_U[:, tokens] · vectors replaces W_U W_E).
 */
export async function copyingScores(src: CircuitSource, opts: CopyingOptions = {}): Promise<Tensor> {
  const { w, n_layers: L, n_heads: H, d_model: d, d_head: h } = attnWeights(src, ['W_V', 'W_O']);
  const W_E = opts.embedding === undefined ? getWeight(src, 'W_E') : null;
  const W_U = getWeight(src, 'W_U');
  let UE: F32; // [d_model, d_model]
  if (W_E === null) {
    if (W_U.shape[0] !== d) throw new Error(`copyingScores: W_U ${fmtShape(W_U.shape)} does not match d_model ${d}`);
    const V = W_U.shape[1];
    const E = checkEmbedding('copyingScores', opts.embedding!, d, V);
    const tokens = opts.embedding!.tokens;
    const n = tokens.length;
    const Ut = new Float32Array(d * n); // W_U[:, tokens]
    for (let k = 0; k < d; k++) for (let i = 0; i < n; i++) Ut[k * n + i] = W_U.data[k * V + tokens[i]];
    UE = await src.kernels.matmul({ data: Ut, shape: [d, n] }, { data: E, shape: [n, d] }, opts);
  } else {
    if (W_E.shape[1] !== d || W_U.shape[0] !== d) {
      throw new Error(`copyingScores: W_E ${fmtShape(W_E.shape)} / W_U ${fmtShape(W_U.shape)} do not match d_model ${d}`);
    }
    UE = await src.kernels.matmul({ data: W_U.data, shape: W_U.shape }, { data: W_E.data, shape: W_E.shape }, opts);
  }
  const OUE = await src.kernels.matmul({ data: w.W_O!.data, shape: [L * H * h, d] }, UE, opts); // [L·H·h, d]
  const BA = await src.kernels.matmul({ data: OUE.data, shape: [L * H, h, d] }, { data: w.W_V!.data, shape: [L * H, d, h] }, opts); // [L·H, h, h]
  const ba = Float64Array.from(BA.data);
  const out = new Float32Array(L * H);
  for (let i = 0; i < L * H; i++) {
    const e = eigenvalues(ba, i * h * h, h);
    out[i] = eigenvalueScore(e.re, e.im);
  }
  return new Tensor(out, [L, H]);
}

/**
 * What a head copies: for each source token t, the k tokens whose logits its OV circuit raises most,
 * i.e. the top of row t of W_E W_V W_O W_U, computed for that row alone. With `embedding`, the source vector
 * of t is its row there (t must be one of its tokens); the logits still cover the whole vocabulary.
 */
export function topCopiedTokens(
  src: CircuitSource, layer: number, head: number, tokenIds: readonly number[], k = 10, opts: { embedding?: TokenEmbedding } = {},
): TokenRow[] {
  const { V, O, d_model, d_head } = headOV(src, 'topCopiedTokens', layer, head);
  const W_U = getWeight(src, 'W_U');
  let source: (t: number) => ArrayLike<number>;
  if (opts.embedding !== undefined) {
    if (W_U.shape[0] !== d_model) throw new Error(`topCopiedTokens: W_U ${fmtShape(W_U.shape)} does not match d_model ${d_model}`);
    const E = checkEmbedding('topCopiedTokens', opts.embedding, d_model, W_U.shape[1]);
    checkTokens('topCopiedTokens', tokenIds, W_U.shape[1], k);
    const row = new Map(opts.embedding.tokens.map((t, i) => [t, i]));
    for (const t of tokenIds) if (!row.has(t)) throw new Error(`topCopiedTokens: token ${t} is not one of the embedding's ${opts.embedding.tokens.length} tokens`);
    source = (t) => E.subarray(row.get(t)! * d_model, (row.get(t)! + 1) * d_model);
  } else {
    const W_E = getWeight(src, 'W_E');
    if (W_E.shape[1] !== d_model || W_U.shape[0] !== d_model) {
      throw new Error(`topCopiedTokens: W_E ${fmtShape(W_E.shape)} / W_U ${fmtShape(W_U.shape)} do not match d_model ${d_model}`);
    }
    checkTokens('topCopiedTokens', tokenIds, W_E.shape[0], k);
    source = (t) => W_E.data.subarray(t * d_model, (t + 1) * d_model);
  }
  if (k > W_U.shape[1]) throw new Error(`topCopiedTokens: k = ${k} exceeds W_U's ${W_U.shape[1]} tokens`);
  return tokenIds.map((t) => {
    const e = source(t);
    const z = new Float64Array(d_head); // e W_V
    for (let i = 0; i < d_model; i++) for (let j = 0; j < d_head; j++) z[j] += e[i] * V[i * d_head + j];
    const x = new Float64Array(d_model); // · W_O
    for (let j = 0; j < d_head; j++) for (let i = 0; i < d_model; i++) x[i] += z[j] * O[j * d_model + i];
    return topOfRow(t, unembedRow(x, W_U), k);
  });
}
