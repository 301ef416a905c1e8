/**
 * Lensboard's layout of a model's parameters, the form weights come in (loaders, processing, the
 * trainer's export, the reference forward) before a model's WeightStore (weightStore.ts) takes them
 * over: one Float32Array per tensor, row-major, [in, out] (heads flattened into the last or first axis).
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
import type { HookedTransformerConfig } from './config.ts';

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

/** Throws unless each of the weights' arrays has the length `cfg` implies. */
export function checkWeightShapes(cfg: HookedTransformerConfig, w: TransformerWeights): void {
  const { d_model, d_vocab, n_ctx, d_mlp, n_layers } = cfg;
  const H = cfg.n_heads * cfg.d_head;
  const check = (name: string, arr: Float32Array | undefined, n: number) => {
    if (!(arr instanceof Float32Array)) throw new Error(`weights.${name} is missing (expected a Float32Array of ${n})`);
    if (arr.length !== n) throw new Error(`weights.${name} has ${arr.length} elements; the config needs ${n}`);
  };
  const checkLn = (name: string, ln: LayerNormWeights | null) => {
    if (ln === null) return;
    check(`${name}.w`, ln.w, d_model);
    check(`${name}.b`, ln.b, d_model);
  };
  check('W_E', w.W_E, d_vocab * d_model);
  check('W_pos', w.W_pos, n_ctx * d_model);
  if (w.blocks.length !== n_layers) throw new Error(`weights.blocks has ${w.blocks.length} blocks; cfg.n_layers is ${n_layers}`);
  w.blocks.forEach((b, l) => {
    const p = `blocks[${l}]`;
    checkLn(`${p}.ln1`, b.ln1);
    for (const k of ['W_Q', 'W_K', 'W_V'] as const) check(`${p}.${k}`, b[k], d_model * H);
    for (const k of ['b_Q', 'b_K', 'b_V'] as const) check(`${p}.${k}`, b[k], H);
    check(`${p}.W_O`, b.W_O, H * d_model);
    check(`${p}.b_O`, b.b_O, d_model);
    checkLn(`${p}.ln2`, b.ln2);
    check(`${p}.W_in`, b.W_in, d_model * d_mlp);
    check(`${p}.b_in`, b.b_in, d_mlp);
    check(`${p}.W_out`, b.W_out, d_mlp * d_model);
    check(`${p}.b_out`, b.b_out, d_model);
  });
  checkLn('ln_final', w.ln_final);
  check('W_U', w.W_U, d_model * d_vocab);
  check('b_U', w.b_U, d_vocab);
}
