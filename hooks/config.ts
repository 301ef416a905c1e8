/** The model's hyper-parameters, named as in TransformerLens's HookedTransformerConfig. */

export type ActFn = 'gelu_new' | 'gelu' | 'gelu_fast' | 'relu';

/** 'LN' = LayerNorm with weight and bias; 'LNPre' = centring and scaling only (after foldLn). */
export type NormalizationType = 'LN' | 'LNPre';

export interface HookedTransformerConfig {
  model_name: string;
  n_layers: number;
  d_model: number;
  n_heads: number;
  d_head: number;
  d_mlp: number;
  d_vocab: number;
  n_ctx: number;
  act_fn: ActFn;
  eps: number;
  normalization_type: NormalizationType;
  original_architecture: 'GPT2LMHeadModel';
  /** GPT-2's <|endoftext|> id, used as BOS, EOS and pad. */
  bos_token_id: number;
  eos_token_id: number;
  default_prepend_bos: boolean;
  initializer_range: number;
}

/** Which of TransformerLens's weight-processing steps have been applied to the weights. */
export interface ProcessingFlags {
  foldLn: boolean;
  centerWritingWeights: boolean;
  centerUnembed: boolean;
  foldValueBiases: boolean;
}

export const NO_PROCESSING: ProcessingFlags = {
  foldLn: false,
  centerWritingWeights: false,
  centerUnembed: false,
  foldValueBiases: false,
};

export const DEFAULT_PROCESSING: ProcessingFlags = {
  foldLn: true,
  centerWritingWeights: true,
  centerUnembed: true,
  foldValueBiases: true,
};
