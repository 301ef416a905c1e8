/** Random GPT-2 weights (GPT-2's own initialisation, or with random LayerNorms and biases for tests). */
import type { HookedTransformerConfig } from './config.ts';
import { Rng } from './random.ts';
import type { BlockWeights, LayerNormWeights, TransformerWeights } from './weights.ts';

export interface RandomWeightOptions {
  seed?: number;
  /** Standard deviation of weight matrices (GPT-2: initializer_range = 0.02). */
  std?: number;
  /**
   * Non-trivial LayerNorm weights/biases and non-zero linear biases, so that tests exercise
   * every parameter (GPT-2's own init has LN w = 1, b = 0 and zero biases).
   */
  randomAffine?: boolean;
}

/** A GPT-2-shaped config with TransformerLens's field names; override what you need. */
export function gpt2Config(overrides: Partial<HookedTransformerConfig> = {}): HookedTransformerConfig {
  const base: HookedTransformerConfig = {
    model_name: 'gpt2',
    n_layers: 12,
    d_model: 768,
    n_heads: 12,
    d_head: 64,
    d_mlp: 3072,
    d_vocab: 50257,
    n_ctx: 1024,
    act_fn: 'gelu_new',
    eps: 1e-5,
    normalization_type: 'LN',
    original_architecture: 'GPT2LMHeadModel',
    bos_token_id: 50256,
    eos_token_id: 50256,
    default_prepend_bos: true,
    initializer_range: 0.02,
  };
  const cfg = { ...base, ...overrides };
  if (overrides.d_model !== undefined && overrides.d_head === undefined) cfg.d_head = cfg.d_model / cfg.n_heads;
  if (overrides.d_model !== undefined && overrides.d_mlp === undefined) cfg.d_mlp = 4 * cfg.d_model;
  return cfg;
}

export function randomWeights(cfg: HookedTransformerConfig, opts: RandomWeightOptions = {}): TransformerWeights {
  const rng = new Rng(opts.seed ?? 0);
  const std = opts.std ?? cfg.initializer_range;
  const affine = opts.randomAffine ?? false;
  const { d_model, d_vocab, n_ctx, d_mlp } = cfg;
  const H = cfg.n_heads * cfg.d_head;
  const bias = (n: number) => (affine ? rng.normals(n, 0.1) : new Float32Array(n));
  const ln = (): LayerNormWeights => ({
    w: affine ? rng.normals(d_model, 0.2, 1) : new Float32Array(d_model).fill(1),
    b: bias(d_model),
  });
  const blocks: BlockWeights[] = [];
  for (let l = 0; l < cfg.n_layers; l++) {
    blocks.push({
      ln1: ln(),
      W_Q: rng.normals(d_model * H, std),
      b_Q: bias(H),
      W_K: rng.normals(d_model * H, std),
      b_K: bias(H),
      W_V: rng.normals(d_model * H, std),
      b_V: bias(H),
      W_O: rng.normals(H * d_model, std / Math.sqrt(2 * cfg.n_layers)),
      b_O: bias(d_model),
      ln2: ln(),
      W_in: rng.normals(d_model * d_mlp, std),
      b_in: bias(d_mlp),
      W_out: rng.normals(d_mlp * d_model, std / Math.sqrt(2 * cfg.n_layers)),
      b_out: bias(d_model),
    });
  }
  const W_E = rng.normals(d_vocab * d_model, std);
  // GPT-2 ties the unembedding to the embedding: W_U = W_Eᵀ.
  const W_U = new Float32Array(d_model * d_vocab);
  for (let v = 0; v < d_vocab; v++) for (let d = 0; d < d_model; d++) W_U[d * d_vocab + v] = W_E[v * d_model + d];
  return {
    W_E,
    W_pos: rng.normals(n_ctx * d_model, std / 2),
    blocks,
    ln_final: ln(),
    W_U,
    b_U: new Float32Array(d_vocab),
  };
}
