/**
 * GPT-2's Hugging Face tensors (GPT2LMHeadModel names; Conv1D weights [in, out], c_attn = [W_Q | W_K | W_V])
 * to Lensboard's TransformerWeights: the one mapping that the checkpoint loader and the trainer's export
 * both use.
 */
import type { HookedTransformerConfig } from '../config.ts';
import { transposed } from '../ops/index.ts';
import type { BlockWeights, LayerNormWeights, TransformerWeights } from '../weights.ts';

/** Split a [rows, parts*width] matrix column-wise into `parts` matrices [rows, width]. */
function splitColumns(src: Float32Array, rows: number, width: number, parts: number): Float32Array[] {
  const outs = Array.from({ length: parts }, () => new Float32Array(rows * width));
  for (let r = 0; r < rows; r++) {
    for (let p = 0; p < parts; p++) {
      const from = r * parts * width + p * width;
      outs[p].set(src.subarray(from, from + width), r * width);
    }
  }
  return outs;
}

/**
 * TransformerWeights from HF tensors read one at a time (`read(name)`, without the `transformer.` prefix;
 * `has(name)` tells whether an optional one exists). W_U [d_model, d_vocab] is lm_headᵀ, or wteᵀ when
 * lm_head is absent (tied); b_U is 0. The arrays `read` returns are kept (not copied) except where split
 * or transposed.
 */
export async function weightsFromHf(
  cfg: HookedTransformerConfig,
  read: (name: string) => Float32Array | Promise<Float32Array>,
  has: (name: string) => boolean,
): Promise<TransformerWeights> {
  const ln = async (p: string): Promise<LayerNormWeights> => ({ w: await read(`${p}.weight`), b: await read(`${p}.bias`) });
  const { d_model: D, d_vocab: V } = cfg;
  const H = cfg.n_heads * cfg.d_head;
  const W_E = await read('wte.weight'); // [d_vocab, d_model]
  const W_pos = await read('wpe.weight'); // [n_ctx, d_model]
  const blocks: BlockWeights[] = [];
  for (let l = 0; l < cfg.n_layers; l++) {
    const p = `h.${l}.`;
    const ln1 = await ln(`${p}ln_1`);
    // c_attn: [d_model, 3H] = [W_Q | W_K | W_V] column blocks, each [d_model, n_heads*d_head].
    const [W_Q, W_K, W_V] = splitColumns(await read(`${p}attn.c_attn.weight`), D, H, 3);
    const [b_Q, b_K, b_V] = splitColumns(await read(`${p}attn.c_attn.bias`), 1, H, 3);
    blocks.push({
      ln1,
      W_Q, b_Q, W_K, b_K, W_V, b_V,
      W_O: await read(`${p}attn.c_proj.weight`), // [H, d_model]
      b_O: await read(`${p}attn.c_proj.bias`), // [d_model]
      ln2: await ln(`${p}ln_2`),
      W_in: await read(`${p}mlp.c_fc.weight`), // [d_model, d_mlp]
      b_in: await read(`${p}mlp.c_fc.bias`), // [d_mlp]
      W_out: await read(`${p}mlp.c_proj.weight`), // [d_mlp, d_model]
      b_out: await read(`${p}mlp.c_proj.bias`), // [d_model]
    });
  }
  const ln_final = await ln('ln_f');
  // W_U [d_model, d_vocab] = lm_headᵀ; lm_head [d_vocab, d_model] equals wte when tied (or is absent).
  const W_U = has('lm_head.weight') ? transposed(await read('lm_head.weight'), V, D) : transposed(W_E, V, D);
  return { W_E, W_pos, blocks, ln_final, W_U, b_U: new Float32Array(V) };
}
