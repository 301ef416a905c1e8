/** The direct path W_E W_U (a bigram table read from the weights) and the shared "top tokens of x W_U" helper. */
import { Tensor } from '../tensor.ts';
import { fmtShape } from './linalg.ts';
import { getWeight, type CircuitSource } from './weights.ts';

/** For one source token: the k tokens with the largest values in its row, descending. */
export interface TokenRow {
  token: number;
  ids: number[];
  values: number[];
}

/** Checks token ids against d_vocab and k against d_vocab. */
export function checkTokens(fn: string, tokenIds: readonly number[], d_vocab: number, k: number): void {
  if (!Array.isArray(tokenIds) || tokenIds.length === 0) throw new Error(`${fn}: tokenIds must be a non-empty array of token ids`);
  for (const t of tokenIds) {
    if (!Number.isInteger(t) || t < 0 || t >= d_vocab) throw new Error(`${fn}: token id ${t} is not an integer in [0, ${d_vocab})`);
  }
  if (!Number.isInteger(k) || k < 1 || k > d_vocab) throw new Error(`${fn}: k must be an integer in [1, ${d_vocab}], got ${k}`);
}

/** x [d_model] (float64) @ W_U [d_model, d_vocab] → [d_vocab] float32, accumulated in float64. */
export function unembedRow(x: Float64Array, W_U: Tensor): Float32Array {
  const [d_model, d_vocab] = W_U.shape;
  if (x.length !== d_model) throw new Error(`unembed: vector of length ${x.length} vs W_U ${fmtShape(W_U.shape)}`);
  const acc = new Float64Array(d_vocab);
  const u = W_U.data;
  for (let i = 0; i < d_model; i++) {
    const xi = x[i];
    if (xi === 0) continue;
    const row = i * d_vocab;
    for (let j = 0; j < d_vocab; j++) acc[j] += xi * u[row + j];
  }
  return Float32Array.from(acc);
}

/** The top k of a row, as a TokenRow. */
export function topOfRow(token: number, row: Float32Array, k: number): TokenRow {
  const { values, indices } = new Tensor(row, [row.length]).topk(k);
  return { token, ids: Array.from(indices.data), values: Array.from(values.data) };
}

/** Row t of W_E W_U: the direct path's logits for every next token after token t, [d_vocab]. */
export function directPathLogits(src: CircuitSource, tokenId: number): Tensor {
  const W_E = getWeight(src, 'W_E');
  const W_U = getWeight(src, 'W_U');
  checkTokens('directPathLogits', [tokenId], W_E.shape[0], 1);
  const d = W_E.shape[1];
  return new Tensor(unembedRow(Float64Array.from(W_E.data.subarray(tokenId * d, (tokenId + 1) * d)), W_U), [W_U.shape[1]]);
}

/**
 * Bigram statistics from the direct path W_E W_U: for each source token, the k next tokens it pushes up most.
 * Computed row by row (never the dense d_vocab × d_vocab table).
 */
export function bigramTopTokens(src: CircuitSource, tokenIds: readonly number[], k = 10): TokenRow[] {
  const W_E = getWeight(src, 'W_E');
  const W_U = getWeight(src, 'W_U');
  const [d_vocab, d] = W_E.shape;
  if (W_U.shape[0] !== d) throw new Error(`bigramTopTokens: W_E ${fmtShape(W_E.shape)} and W_U ${fmtShape(W_U.shape)} disagree on d_model`);
  checkTokens('bigramTopTokens', tokenIds, d_vocab, k);
  if (k > W_U.shape[1]) throw new Error(`bigramTopTokens: k = ${k} exceeds W_U's ${W_U.shape[1]} tokens`);
  return tokenIds.map((t) => topOfRow(t, unembedRow(Float64Array.from(W_E.data.subarray(t * d, (t + 1) * d)), W_U), k));
}
