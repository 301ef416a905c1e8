/**
 * The model's parameters as Lensboard stores them: one Float32Array per tensor, row-major,
 * in the layout the ONNX graph multiplies by directly (heads flattened into the last or first
 * axis). TransformerLens-shaped views (`W_Q [n_layers, n_heads, d_model, d_head]`, …) are built
 * from these by `stackedWeights.ts`.
 *
 * Layouts (H = n_heads * d_head, which equals d_model for GPT-2):
 *   W_E   [d_vocab, d_model]      W_pos [n_ctx, d_model]
 *   W_Q, W_K, W_V [d_model, H]   (memory order [d_model, n_heads, d_head])
 *   b_Q, b_K, b_V [H]            (memory order [n_heads, d_head])
 *   W_O   [H, d_model]           (memory order [n_heads, d_head, d_model], TransformerLens's own)
 *   b_O   [d_model]
 *   W_in  [d_model, d_mlp]        b_in  [d_mlp]
 *   W_out [d_mlp, d_model]        b_out [d_model]
 *   W_U   [d_model, d_vocab]      b_U   [d_vocab]
 * A LayerNorm's weight and bias are `null` once folded into the next linear map (LNPre).
 */

export interface LayerNormWeights {
  w: Float32Array; // [d_model]
  b: Float32Array; // [d_model]
}

export interface BlockWeights {
  ln1: LayerNormWeights | null;
  W_Q: Float32Array; // [d_model, n_heads * d_head]
  b_Q: Float32Array; // [n_heads * d_head]
  W_K: Float32Array; // [d_model, n_heads * d_head]
  b_K: Float32Array; // [n_heads * d_head]
  W_V: Float32Array; // [d_model, n_heads * d_head]
  b_V: Float32Array; // [n_heads * d_head]
  W_O: Float32Array; // [n_heads * d_head, d_model]
  b_O: Float32Array; // [d_model]
  ln2: LayerNormWeights | null;
  W_in: Float32Array; // [d_model, d_mlp]
  b_in: Float32Array; // [d_mlp]
  W_out: Float32Array; // [d_mlp, d_model]
  b_out: Float32Array; // [d_model]
}

export interface TransformerWeights {
  W_E: Float32Array; // [d_vocab, d_model]
  W_pos: Float32Array; // [n_ctx, d_model]
  blocks: BlockWeights[];
  ln_final: LayerNormWeights | null;
  W_U: Float32Array; // [d_model, d_vocab]
  b_U: Float32Array; // [d_vocab]
}
