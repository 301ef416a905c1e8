/** Where circuit analyses get their weights: a HookedTransformer (its `weight(name)`) or a plain object of TL-shaped Tensors. */
import type { Tensor } from '../tensor.ts';
import { FactoredMatrix } from './FactoredMatrix.ts';
import { fmtShape } from './linalg.ts';

/** The weights the circuits code reads, TransformerLens-shaped (as `model.W_Q` etc. return them). */
export interface CircuitWeights {
  W_E?: Tensor; // [d_vocab, d_model]
  W_pos?: Tensor; // [n_ctx, d_model]
  W_Q?: Tensor; // [n_layers, n_heads, d_model, d_head]
  W_K?: Tensor; // [n_layers, n_heads, d_model, d_head]
  W_V?: Tensor; // [n_layers, n_heads, d_model, d_head]
  W_O?: Tensor; // [n_layers, n_heads, d_head, d_model]
  W_U?: Tensor; // [d_model, d_vocab]
}

/** A model (anything with TransformerLens's `weight(name)`, e.g. HookedTransformer) or its weights. */
export type CircuitSource = { weight(name: string): Tensor } | CircuitWeights;

export type WeightName = keyof CircuitWeights;

/** Fetches one weight and checks its rank. */
export function getWeight(src: CircuitSource, name: WeightName): Tensor {
  let t: Tensor | undefined;
  if (src && typeof (src as { weight?: unknown }).weight === 'function') t = (src as { weight(n: string): Tensor }).weight(name);
  else if (src && typeof src === 'object') t = (src as CircuitWeights)[name];
  if (!t || !Array.isArray(t.shape)) {
    throw new Error(`circuits: '${name}' is missing; pass a model with weight(name) or an object with TransformerLens-shaped tensors W_E, W_pos, W_Q, W_K, W_V, W_O, W_U`);
  }
  const rank = name === 'W_E' || name === 'W_pos' || name === 'W_U' ? 2 : 4;
  if (t.ndim !== rank) {
    const want = rank === 2 ? 'a 2-D tensor' : 'a 4-D tensor [n_layers, n_heads, ·, ·]';
    throw new Error(`circuits: '${name}' must be ${want}, got shape ${fmtShape(t.shape)}`);
  }
  return t;
}

/** The per-head attention weights, with their dims checked against each other. */
export function attnWeights(src: CircuitSource, names: readonly ('W_Q' | 'W_K' | 'W_V' | 'W_O')[]): {
  w: Partial<Record<'W_Q' | 'W_K' | 'W_V' | 'W_O', Tensor>>;
  n_layers: number;
  n_heads: number;
  d_model: number;
  d_head: number;
} {
  const w: Partial<Record<'W_Q' | 'W_K' | 'W_V' | 'W_O', Tensor>> = {};
  let dims: number[] | null = null;
  for (const n of names) {
    const t = getWeight(src, n);
    // W_O is [L, H, d_head, d_model]; the others [L, H, d_model, d_head].
    const d = n === 'W_O' ? [t.shape[0], t.shape[1], t.shape[3], t.shape[2]] : t.shape;
    if (dims && d.some((v, i) => v !== dims![i])) {
      throw new Error(`circuits: ${n} has shape ${fmtShape(t.shape)}, inconsistent with the other attention weights ([n_layers, n_heads, d_model, d_head] = ${fmtShape(dims)})`);
    }
    dims = d;
    w[n] = t;
  }
  const [n_layers, n_heads, d_model, d_head] = dims!;
  return { w, n_layers, n_heads, d_model, d_head };
}

/** TransformerLens's `model.QK`: W_Q @ W_Kᵀ per layer and head, [n_layers, n_heads, d_model, d_model] factored. */
export function QK(src: CircuitSource): FactoredMatrix {
  const { w } = attnWeights(src, ['W_Q', 'W_K']);
  return new FactoredMatrix(w.W_Q!, w.W_K!.transpose(-2, -1));
}

/** TransformerLens's `model.OV`: W_V @ W_O per layer and head, [n_layers, n_heads, d_model, d_model] factored. */
export function OV(src: CircuitSource): FactoredMatrix {
  const { w } = attnWeights(src, ['W_V', 'W_O']);
  return new FactoredMatrix(w.W_V!, w.W_O!);
}
