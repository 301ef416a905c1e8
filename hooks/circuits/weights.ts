/** Where circuit analyses get their weights and kernels: a HookedTransformer, or TransformerLens-shaped tensors in a TensorWeights. */
import { KernelSessions } from '../engine/kernels.ts';
import { Tensor } from '../tensor.ts';
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

export type WeightName = keyof CircuitWeights;

const WEIGHT_NAMES: readonly WeightName[] = ['W_E', 'W_pos', 'W_Q', 'W_K', 'W_V', 'W_O', 'W_U'];

/**
 * What circuit analyses read: TransformerLens-named, layer-stacked weights and the onnxruntime kernels that
 * multiply them. A HookedTransformer is one (its `weight(name)` and `kernels`); TensorWeights makes one from
 * TransformerLens-shaped tensors.
 */
export interface CircuitSource {
  weight(name: WeightName): Tensor;
  readonly kernels: KernelSessions;
}

/** A CircuitSource over TransformerLens-shaped tensors (any subset: an analysis names the one it misses); dispose() releases its kernels. */
export class TensorWeights implements CircuitSource {
  private ownKernels: KernelSessions | null = null;

  /** `threads`: onnxruntime threads of the kernels (0 = one per physical core). */
  constructor(private readonly tensors: CircuitWeights, private readonly opts: { threads?: number } = {}) {}

  weight(name: WeightName): Tensor {
    const t = this.tensors[name];
    if (!t) {
      const have = WEIGHT_NAMES.filter((n) => this.tensors[n]);
      throw new Error(`circuits: '${name}' is missing; these weights have ${have.length ? have.join(', ') : 'none'} (TransformerLens-shaped tensors W_E, W_pos, W_Q, W_K, W_V, W_O, W_U)`);
    }
    return t;
  }

  get kernels(): KernelSessions {
    this.ownKernels ??= new KernelSessions(this.opts.threads ?? 0);
    return this.ownKernels;
  }

  /** Releases the kernels' onnxruntime sessions. */
  async dispose(): Promise<void> {
    await this.ownKernels?.dispose();
    this.ownKernels = null;
  }
}

/** Fetches one weight and checks its rank. */
export function getWeight(src: CircuitSource, name: WeightName): Tensor {
  const t = src.weight(name);
  if (!(t instanceof Tensor)) throw new Error(`circuits: weight('${name}') did not return a Tensor`);
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
