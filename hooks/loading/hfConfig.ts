/** Hugging Face GPT-2 config.json ↔ TransformerLens-named HookedTransformerConfig. */
import type { ActFn, HookedTransformerConfig } from '../config.ts';

export const SUPPORTED_ARCHITECTURES = ['GPT2LMHeadModel', 'GPT2Model'] as const;

/** HF activation names we compute exactly; gelu_pytorch_tanh is the same tanh approximation as gelu_new. */
const ACT_FNS: Record<string, ActFn> = {
  gelu_new: 'gelu_new',
  gelu_pytorch_tanh: 'gelu_new',
  gelu: 'gelu',
  gelu_fast: 'gelu_fast',
  relu: 'relu',
};

/**
 * Sane upper bounds of a GPT-2 config's sizes (gpt2-xl: 48 layers, n_embd 1600, 25 heads, 1024 positions, 50257
 * tokens), checked before anything they size is allocated: a config.json with n_layer 1e9 is refused at once.
 */
export const CONFIG_BOUNDS = {
  n_layer: 512, n_embd: 32_768, n_head: 1024, n_inner: 262_144, vocab_size: 1_048_576, n_positions: 131_072, n_ctx: 131_072,
} as const;

function positiveInt(cfg: Record<string, unknown>, key: string, fallback?: number): number {
  const v = cfg[key] ?? fallback;
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v <= 0) {
    throw new Error(`config.json: '${key}' must be a positive integer, got ${JSON.stringify(cfg[key])}`);
  }
  const max = (CONFIG_BOUNDS as Record<string, number>)[key];
  if (max !== undefined && v > max) throw new Error(`config.json: '${key}' is ${v}, out of range (allowed 1..${max})`);
  return v;
}

function tokenId(cfg: Record<string, unknown>, key: string): number {
  const v = cfg[key] ?? 50256;
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) {
    throw new Error(`config.json: '${key}' must be a non-negative integer, got ${JSON.stringify(cfg[key])}`);
  }
  return v;
}

/** Throws unless the config describes a GPT-2 (by `architectures` or `model_type`). */
export function assertGpt2Architecture(configJson: Record<string, unknown>, modelName: string): void {
  const archs = configJson.architectures;
  const archList = Array.isArray(archs) ? archs.filter((a): a is string => typeof a === 'string') : [];
  const isGpt2Arch = archList.some((a) => (SUPPORTED_ARCHITECTURES as readonly string[]).includes(a));
  if (isGpt2Arch || configJson.model_type === 'gpt2') return;
  throw new Error(
    `${modelName}: unsupported architecture: config.json has architectures ${JSON.stringify(archs ?? null)} and ` +
      `model_type ${JSON.stringify(configJson.model_type ?? null)}; supported: architectures containing ` +
      `${SUPPORTED_ARCHITECTURES.join(' or ')}, or model_type "gpt2"`,
  );
}

export function hfConfigToHooked(configJson: unknown, modelName: string): HookedTransformerConfig {
  if (typeof configJson !== 'object' || configJson === null || Array.isArray(configJson)) {
    throw new Error(`${modelName}: config.json must be a JSON object`);
  }
  const c = configJson as Record<string, unknown>;
  assertGpt2Architecture(c, modelName);

  // Options that would change the computation away from the standard GPT-2 attention.
  if (c.scale_attn_weights === false) {
    throw new Error(`${modelName}: config.json sets scale_attn_weights=false; only the standard 1/sqrt(d_head) scaling is supported`);
  }
  if (c.scale_attn_by_inverse_layer_idx === true) {
    throw new Error(`${modelName}: config.json sets scale_attn_by_inverse_layer_idx=true, which is not supported`);
  }
  if (c.add_cross_attention === true) {
    throw new Error(`${modelName}: config.json sets add_cross_attention=true; only decoder-only GPT-2 is supported`);
  }

  const n_layers = positiveInt(c, 'n_layer');
  const d_model = positiveInt(c, 'n_embd');
  const n_heads = positiveInt(c, 'n_head');
  if (d_model % n_heads !== 0) {
    throw new Error(`${modelName}: config.json n_embd=${d_model} is not divisible by n_head=${n_heads}`);
  }
  const d_mlp = c.n_inner === null || c.n_inner === undefined ? 4 * d_model : positiveInt(c, 'n_inner');
  const d_vocab = positiveInt(c, 'vocab_size');
  const n_ctx = positiveInt(c, c.n_positions === undefined && c.n_ctx !== undefined ? 'n_ctx' : 'n_positions');

  const actName = c.activation_function ?? 'gelu_new';
  const act_fn = typeof actName === 'string' ? ACT_FNS[actName] : undefined;
  if (act_fn === undefined) {
    throw new Error(
      `${modelName}: config.json activation_function ${JSON.stringify(actName)} is not supported; supported: ${Object.keys(ACT_FNS).join(', ')}`,
    );
  }
  const eps = c.layer_norm_epsilon ?? 1e-5;
  if (typeof eps !== 'number' || !(eps > 0)) {
    throw new Error(`${modelName}: config.json layer_norm_epsilon must be a positive number, got ${JSON.stringify(c.layer_norm_epsilon)}`);
  }
  const initRange = c.initializer_range ?? 0.02;
  if (typeof initRange !== 'number' || !(initRange > 0)) {
    throw new Error(`${modelName}: config.json initializer_range must be a positive number, got ${JSON.stringify(c.initializer_range)}`);
  }

  return {
    model_name: modelName,
    n_layers,
    d_model,
    n_heads,
    d_head: d_model / n_heads,
    d_mlp,
    d_vocab,
    n_ctx,
    act_fn,
    eps,
    normalization_type: 'LN',
    original_architecture: 'GPT2LMHeadModel',
    bos_token_id: tokenId(c, 'bos_token_id'),
    eos_token_id: tokenId(c, 'eos_token_id'),
    default_prepend_bos: true,
    initializer_range: initRange,
  };
}

/** The config.json Hugging Face writes for a GPT-2 with this config (the inverse of hfConfigToHooked; dropout fields are unused by inference). */
export function hookedToHfConfig(cfg: HookedTransformerConfig): Record<string, unknown> {
  return {
    architectures: ['GPT2LMHeadModel'],
    model_type: 'gpt2',
    activation_function: cfg.act_fn,
    n_layer: cfg.n_layers,
    n_embd: cfg.d_model,
    n_head: cfg.n_heads,
    n_inner: cfg.d_mlp === 4 * cfg.d_model ? null : cfg.d_mlp,
    vocab_size: cfg.d_vocab,
    n_positions: cfg.n_ctx,
    n_ctx: cfg.n_ctx,
    layer_norm_epsilon: cfg.eps,
    initializer_range: cfg.initializer_range,
    bos_token_id: cfg.bos_token_id,
    eos_token_id: cfg.eos_token_id,
    attn_pdrop: 0.1,
    embd_pdrop: 0.1,
    resid_pdrop: 0.1,
    scale_attn_weights: true,
    tie_word_embeddings: true,
    use_cache: true,
  };
}
