/** TransformerLens-shaped, layer-stacked views of the weights (`W_Q [n_layers, n_heads, d_model, d_head]`, …). */
import type { HookedTransformerConfig } from './config.ts';
import { Tensor } from './tensor.ts';
import type { BlockWeights, TransformerWeights } from './weights.ts';

type BlockKey = keyof Omit<BlockWeights, 'ln1' | 'ln2'>;

function stack(w: TransformerWeights, key: BlockKey, perLayer: (a: Float32Array) => Float32Array, shape: number[]): Tensor {
  const n = w.blocks.length;
  const layerSize = shape.reduce((a, b) => a * b, 1);
  const out = new Float32Array(n * layerSize);
  w.blocks.forEach((b, l) => out.set(perLayer(b[key]), l * layerSize));
  return new Tensor(out, [n, ...shape]);
}

/** [d_model, n_heads, d_head] memory order → [n_heads, d_model, d_head]. */
function headsFirst(a: Float32Array, d_model: number, n_heads: number, d_head: number): Float32Array {
  const out = new Float32Array(a.length);
  for (let d = 0; d < d_model; d++)
    for (let h = 0; h < n_heads; h++)
      for (let e = 0; e < d_head; e++) out[(h * d_model + d) * d_head + e] = a[(d * n_heads + h) * d_head + e];
  return out;
}

/** The weights by TransformerLens name, each a fresh Tensor. */
export function stackedWeight(cfg: HookedTransformerConfig, w: TransformerWeights, name: string): Tensor {
  const { d_model, n_heads, d_head, d_mlp, d_vocab, n_ctx } = cfg;
  const same = (a: Float32Array) => a;
  switch (name) {
    case 'W_E': return new Tensor(w.W_E.slice(), [d_vocab, d_model]);
    case 'W_pos': return new Tensor(w.W_pos.slice(), [n_ctx, d_model]);
    case 'W_U': return new Tensor(w.W_U.slice(), [d_model, d_vocab]);
    case 'b_U': return new Tensor(w.b_U.slice(), [d_vocab]);
    case 'W_Q': case 'W_K': case 'W_V':
      return stack(w, name, (a) => headsFirst(a, d_model, n_heads, d_head), [n_heads, d_model, d_head]);
    case 'b_Q': case 'b_K': case 'b_V': return stack(w, name, same, [n_heads, d_head]);
    case 'W_O': return stack(w, name, same, [n_heads, d_head, d_model]);
    case 'b_O': return stack(w, name, same, [d_model]);
    case 'W_in': return stack(w, name, same, [d_model, d_mlp]);
    case 'b_in': return stack(w, name, same, [d_mlp]);
    case 'W_out': return stack(w, name, same, [d_mlp, d_model]);
    case 'b_out': return stack(w, name, same, [d_model]);
    default:
      throw new Error(`unknown weight '${name}'; known: W_E, W_pos, W_Q, W_K, W_V, W_O, b_Q, b_K, b_V, b_O, W_in, b_in, W_out, b_out, W_U, b_U`);
  }
}
