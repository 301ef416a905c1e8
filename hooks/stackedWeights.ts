/** TransformerLens-shaped, layer-stacked views of the weights (`W_Q [n_layers, n_heads, d_model, d_head]`, …). */
import type { HookedTransformerConfig } from './config.ts';
import type { FeatureMajorWeights } from './engine/featureMajor.ts';
import { transposeInto } from './ops/index.ts';
import { Tensor } from './tensor.ts';
import type { BlockWeights, TransformerWeights } from './weights.ts';

type BlockKey = keyof Omit<BlockWeights, 'ln1' | 'ln2'>;

/** Reads one tensor of either layout: layer l's `key` (or a top-level tensor when l is null). */
type Reader = (key: string, l: number | null) => Float32Array;

function stack(n_layers: number, read: Reader, key: BlockKey, perLayer: (a: Float32Array) => Float32Array, shape: number[]): Tensor {
  const layerSize = shape.reduce((a, b) => a * b, 1);
  const out = new Float32Array(n_layers * layerSize);
  for (let l = 0; l < n_layers; l++) out.set(perLayer(read(key, l)), l * layerSize);
  return new Tensor(out, [n_layers, ...shape]);
}

/** a [rows, cols] → [cols, rows], `groups` times over consecutive blocks of a. */
function transposeBlocks(a: Float32Array, groups: number, rows: number, cols: number): Float32Array {
  const out = new Float32Array(a.length);
  const n = rows * cols;
  for (let g = 0; g < groups; g++) transposeInto(a.subarray(g * n, (g + 1) * n), rows, cols, out.subarray(g * n, (g + 1) * n));
  return out;
}

/** [d_model, n_heads, d_head] memory order → [n_heads, d_model, d_head]. */
function headsFirst(a: Float32Array, d_model: number, n_heads: number, d_head: number): Float32Array {
  const out = new Float32Array(a.length);
  for (let d = 0; d < d_model; d++)
    for (let h = 0; h < n_heads; h++)
      for (let e = 0; e < d_head; e++) out[(h * d_model + d) * d_head + e] = a[(d * n_heads + h) * d_head + e];
  return out;
}

function isFeatureMajor(w: TransformerWeights | FeatureMajorWeights): w is FeatureMajorWeights {
  return (w as FeatureMajorWeights).layout === 'feature-major';
}

/**
 * The weights by TransformerLens name, each a fresh Tensor, from Lensboard's TransformerWeights
 * or from the engine's feature-major copy (featureMajor.ts).
 */
export function stackedWeight(cfg: HookedTransformerConfig, w: TransformerWeights | FeatureMajorWeights, name: string): Tensor {
  const { d_model, n_heads, d_head, d_mlp, d_vocab, n_ctx, n_layers } = cfg;
  const H = n_heads * d_head;
  const fm = isFeatureMajor(w);
  const read: Reader = fm
    ? (key, l) => w.arrays.get(l === null ? key : `blocks.${l}.${key}`)!
    : (key, l) => (l === null ? (w as unknown as Record<string, Float32Array>)[key] : w.blocks[l][key as BlockKey]);
  const same = (a: Float32Array) => a;
  // Feature-major matrices are [out, in]; TransformerLens's are [in, out] (W_Q/W_K/W_V per head).
  const inOut = (rows: number, cols: number) => (a: Float32Array) => (fm ? transposeBlocks(a, 1, cols, rows) : a);
  switch (name) {
    case 'W_E': return new Tensor(read('W_E', null).slice(), [d_vocab, d_model]);
    case 'W_pos': return new Tensor(read('W_pos', null).slice(), [n_ctx, d_model]);
    case 'W_U': return new Tensor(fm ? transposeBlocks(read('W_U', null), 1, d_vocab, d_model) : read('W_U', null).slice(), [d_model, d_vocab]);
    case 'b_U': return new Tensor(read('b_U', null).slice(), [d_vocab]);
    case 'W_Q': case 'W_K': case 'W_V':
      // Feature-major [n_heads, d_head, d_model] → [n_heads, d_model, d_head]: a transpose per head.
      return stack(n_layers, read, name, (a) => (fm ? transposeBlocks(a, n_heads, d_head, d_model) : headsFirst(a, d_model, n_heads, d_head)), [n_heads, d_model, d_head]);
    case 'b_Q': case 'b_K': case 'b_V': return stack(n_layers, read, name, same, [n_heads, d_head]);
    case 'W_O': return stack(n_layers, read, name, inOut(H, d_model), [n_heads, d_head, d_model]);
    case 'b_O': return stack(n_layers, read, name, same, [d_model]);
    case 'W_in': return stack(n_layers, read, name, inOut(d_model, d_mlp), [d_model, d_mlp]);
    case 'b_in': return stack(n_layers, read, name, same, [d_mlp]);
    case 'W_out': return stack(n_layers, read, name, inOut(d_mlp, d_model), [d_mlp, d_model]);
    case 'b_out': return stack(n_layers, read, name, same, [d_model]);
    default:
      throw new Error(`unknown weight '${name}'; known: W_E, W_pos, W_Q, W_K, W_V, W_O, b_Q, b_K, b_V, b_O, W_in, b_in, W_out, b_out, W_U, b_U`);
  }
}
