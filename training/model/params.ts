/**
 * The trainer's parameters: named Float32Arrays in Hugging Face GPT-2 layout (Conv1D weights
 * [in, out], c_attn = [W_Q | W_K | W_V]), except `wte.weight`, which holds one row per class of the
 * grouped vocabulary ([n_classes, d_model]; the last row is the shared unseen-token row u). An untied
 * unembedding adds `lm_head.weight`, laid out like `wte.weight`; without it the unembedding is wteᵀ (GPT-2).
 */
import type { HookedTransformerConfig } from '../../hooks/config.ts';
import { Rng } from '../../hooks/random.ts';

export interface ParamSpec {
  name: string;
  shape: number[];
  /** AdamW weight decay applies (matrices of the blocks only; not biases, LayerNorms or embeddings). */
  decay: boolean;
}

export interface ParamSet {
  specs: ParamSpec[];
  /** name → data, in the order of `specs`. */
  data: Map<string, Float32Array>;
}

/** The parameter list for a config with `nClasses` embedding rows (and an `lm_head.weight` when `untied`). */
export function paramSpecs(cfg: HookedTransformerConfig, nClasses: number, untied = false): ParamSpec[] {
  const { d_model: D, d_mlp: M, n_ctx: C } = cfg;
  const H = cfg.n_heads * cfg.d_head;
  const specs: ParamSpec[] = [
    { name: 'wte.weight', shape: [nClasses, D], decay: false },
    { name: 'wpe.weight', shape: [C, D], decay: false },
  ];
  for (let l = 0; l < cfg.n_layers; l++) {
    const h = `h.${l}.`;
    specs.push(
      { name: `${h}ln_1.weight`, shape: [D], decay: false },
      { name: `${h}ln_1.bias`, shape: [D], decay: false },
      { name: `${h}attn.c_attn.weight`, shape: [D, 3 * H], decay: true },
      { name: `${h}attn.c_attn.bias`, shape: [3 * H], decay: false },
      { name: `${h}attn.c_proj.weight`, shape: [H, D], decay: true },
      { name: `${h}attn.c_proj.bias`, shape: [D], decay: false },
      { name: `${h}ln_2.weight`, shape: [D], decay: false },
      { name: `${h}ln_2.bias`, shape: [D], decay: false },
      { name: `${h}mlp.c_fc.weight`, shape: [D, M], decay: true },
      { name: `${h}mlp.c_fc.bias`, shape: [M], decay: false },
      { name: `${h}mlp.c_proj.weight`, shape: [M, D], decay: true },
      { name: `${h}mlp.c_proj.bias`, shape: [D], decay: false },
    );
  }
  specs.push({ name: 'ln_f.weight', shape: [D], decay: false }, { name: 'ln_f.bias', shape: [D], decay: false });
  if (untied) specs.push({ name: 'lm_head.weight', shape: [nClasses, D], decay: false });
  return specs;
}

export const numel = (shape: readonly number[]) => shape.reduce((a, b) => a * b, 1);

export interface InitOptions {
  seed: number;
  /** Standard deviation of weight matrices and embeddings (GPT-2: 0.02). */
  std?: number;
  /** Random LayerNorm weights/biases and non-zero biases (for gradient tests). */
  randomAffine?: boolean;
  /**
   * Initialise the (learned) positional embeddings with sinusoids of this amplitude (Vaswani et al.
   * 2017: sin/cos pairs at geometric frequencies) instead of noise, so that dot products between
   * positions depend on their distance from the start; they are trained like any other weight.
   */
  sinusoidalPositions?: number;
  /** A separate unembedding `lm_head.weight` (initialised like the embedding) instead of wteᵀ. */
  untied?: boolean;
}

/** [n_ctx, d_model] sinusoidal position codes: dims 2i, 2i+1 = a·sin(p·ω_i), a·cos(p·ω_i), ω_i = 10000^(−2i/d_model). */
export function sinusoids(nCtx: number, D: number, amplitude: number): Float32Array {
  const out = new Float32Array(nCtx * D);
  for (let p = 0; p < nCtx; p++) {
    for (let i = 0; 2 * i < D; i++) {
      const w = Math.pow(10000, (-2 * i) / D);
      out[p * D + 2 * i] = amplitude * Math.sin(p * w);
      if (2 * i + 1 < D) out[p * D + 2 * i + 1] = amplitude * Math.cos(p * w);
    }
  }
  return out;
}

/**
 * GPT-2's initialisation: N(0, std²) matrices and token embeddings, N(0, (std/2)²) positions,
 * residual-writing projections (attn/mlp c_proj) scaled by 1/√(2·n_layers), LayerNorm w = 1, b = 0, zero biases.
 */
export function initParams(cfg: HookedTransformerConfig, nClasses: number, opts: InitOptions): ParamSet {
  const rng = new Rng(opts.seed);
  const std = opts.std ?? cfg.initializer_range;
  const specs = paramSpecs(cfg, nClasses, opts.untied ?? false);
  const data = new Map<string, Float32Array>();
  for (const s of specs) {
    const n = numel(s.shape);
    const isLnW = /ln_[12f]\.weight$/.test(s.name);
    const isBias = s.name.endsWith('.bias');
    let arr: Float32Array;
    if (isLnW) arr = opts.randomAffine ? rng.normals(n, 0.2, 1) : new Float32Array(n).fill(1);
    else if (isBias) arr = opts.randomAffine ? rng.normals(n, 0.1) : new Float32Array(n);
    else if (s.name === 'wpe.weight') {
      arr = rng.normals(n, std / 2);
      if (opts.sinusoidalPositions !== undefined) arr = sinusoids(cfg.n_ctx, cfg.d_model, opts.sinusoidalPositions);
    }
    else if (s.name.endsWith('c_proj.weight')) arr = rng.normals(n, std / Math.sqrt(2 * cfg.n_layers));
    else arr = rng.normals(n, std);
    data.set(s.name, arr);
  }
  return { specs, data };
}

/** The unembedding's class rows: `lm_head.weight` when untied, else the embedding `wte.weight` (tied, as GPT-2). */
export function unembedParamName(p: ParamSet): 'lm_head.weight' | 'wte.weight' {
  return p.data.has('lm_head.weight') ? 'lm_head.weight' : 'wte.weight';
}

export function getParam(p: ParamSet, name: string): Float32Array {
  const d = p.data.get(name);
  if (!d) throw new Error(`internal: no parameter '${name}'`);
  return d;
}

/** Zero-filled arrays with the same names and shapes (gradients, optimizer moments). */
export function zerosLike(p: ParamSet): ParamSet {
  return { specs: p.specs, data: new Map(p.specs.map((s) => [s.name, new Float32Array(numel(s.shape))])) };
}

export function cloneParams(p: ParamSet): ParamSet {
  return { specs: p.specs, data: new Map(p.specs.map((s) => [s.name, Float32Array.from(getParam(p, s.name))])) };
}

export function countParams(p: ParamSet): number {
  return p.specs.reduce((a, s) => a + numel(s.shape), 0);
}
