/**
 * SAELens's cfg.json: what Lensboard reads (SAELens 6's layout with a `metadata` object, and the
 * flat layout of earlier releases such as gpt2-small-res-jb, with `hook_point`, `activation_fn_str`
 * and `activation_fn_kwargs.k`), checked field by field, and what it writes (the flat layout, which
 * every SAELens version reads).
 */
import type { SaeArchitecture } from '../engine/graph/sae.ts';

export type { SaeArchitecture } from '../engine/graph/sae.ts';

export const SAE_ARCHITECTURES: readonly SaeArchitecture[] = ['standard', 'topk', 'jumprelu', 'gated'];

/** SAELens's normalize_activations. */
export type SaeNormalization = 'none' | 'expected_average_only_in' | 'constant_norm_rescale' | 'layer_norm';
export const SAE_NORMALIZATIONS: readonly SaeNormalization[] = ['none', 'expected_average_only_in', 'constant_norm_rescale', 'layer_norm'];

/** An SAE's configuration, with SAELens's field names. */
export interface SaeConfig {
  architecture: SaeArchitecture;
  d_in: number;
  d_sae: number;
  /** The hook point it reads and (spliced) replaces, e.g. `blocks.1.hook_resid_post`. */
  hook_name: string;
  /** The block of hook_name (null outside the blocks). */
  hook_layer: number | null;
  /** TopK's k (topk only). */
  k: number | null;
  /** sae_in = x - b_dec before encoding (default true). */
  apply_b_dec_to_input: boolean;
  normalize_activations: SaeNormalization;
  /** 'hook_z': the hook value's heads are flattened to d_in (SAELens's reshape_activations). */
  reshape_activations: 'none' | 'hook_z';
  /** The dtype SAELens ran it in (Lensboard always computes in float32). */
  dtype: string;
  /** The model it was trained on, as named by its trainer (e.g. gpt2-small). */
  model_name: string | null;
  /** Tokens per training context, whether BOS was prepended, and the dataset (informational). */
  context_size: number | null;
  prepend_bos: boolean;
  dataset_path: string | null;
  /** Every other field of the file, kept as read. */
  extra: Record<string, unknown>;
}

/** The fields of SaeConfig that cfg.json must or may give; the rest default as in SAELens. */
export type SaeConfigInput = Pick<SaeConfig, 'architecture' | 'd_in' | 'd_sae' | 'hook_name'> & Partial<Omit<SaeConfig, 'architecture' | 'd_in' | 'd_sae' | 'hook_name'>>;

/** The block of a hook name (`blocks.3.…` → 3), or null. */
export function hookLayerOf(hookName: string): number | null {
  const m = /^blocks\.(\d+)\./.exec(hookName);
  return m ? Number(m[1]) : null;
}

/** Fills SAELens's defaults and checks every field (the message names `where`, the field and what is allowed). */
export function saeConfig(input: SaeConfigInput, where = 'SAE config'): SaeConfig {
  const fail = (field: string, got: unknown, allowed: string): never => {
    throw new Error(`${where}: ${field} must be ${allowed}; got ${JSON.stringify(got)}`);
  };
  const positive = (field: string, v: unknown) => (Number.isSafeInteger(v) && (v as number) > 0 ? (v as number) : fail(field, v, 'a positive integer'));
  if (!SAE_ARCHITECTURES.includes(input.architecture)) fail('architecture', input.architecture, `one of ${SAE_ARCHITECTURES.join(', ')}`);
  const d_in = positive('d_in', input.d_in);
  const d_sae = positive('d_sae', input.d_sae);
  if (typeof input.hook_name !== 'string' || input.hook_name === '') fail('hook_name', input.hook_name, 'a hook point name such as blocks.1.hook_resid_post');
  let k: number | null = null;
  if (input.architecture === 'topk') {
    k = positive('k', input.k);
    if (k > d_sae) fail('k', k, `at most d_sae (${d_sae})`);
  }
  const normalize = input.normalize_activations ?? 'none';
  if (!SAE_NORMALIZATIONS.includes(normalize)) fail('normalize_activations', normalize, `one of ${SAE_NORMALIZATIONS.join(', ')}`);
  const reshape = input.reshape_activations ?? (/hook_z$/.test(input.hook_name) ? 'hook_z' : 'none');
  if (reshape !== 'none' && reshape !== 'hook_z') fail('reshape_activations', reshape, "'none' or 'hook_z'");
  const bool = (field: string, v: unknown, dflt: boolean) => (v === undefined || v === null ? dflt : typeof v === 'boolean' ? v : fail(field, v, 'true or false'));
  const optString = (field: string, v: unknown) => (v === undefined || v === null ? null : typeof v === 'string' ? v : fail(field, v, 'a string'));
  const hookLayer = input.hook_layer ?? hookLayerOf(input.hook_name);
  if (hookLayer !== null && !(Number.isSafeInteger(hookLayer) && hookLayer >= 0)) fail('hook_layer', hookLayer, 'a layer index ≥ 0');
  const contextSize = input.context_size ?? null;
  if (contextSize !== null) positive('context_size', contextSize);
  return {
    architecture: input.architecture,
    d_in,
    d_sae,
    hook_name: input.hook_name,
    hook_layer: hookLayer,
    k,
    apply_b_dec_to_input: bool('apply_b_dec_to_input', input.apply_b_dec_to_input, true),
    normalize_activations: normalize,
    reshape_activations: reshape,
    dtype: optString('dtype', input.dtype) ?? 'float32',
    model_name: optString('model_name', input.model_name),
    context_size: contextSize,
    prepend_bos: bool('prepend_bos', input.prepend_bos, true),
    dataset_path: optString('dataset_path', input.dataset_path),
    extra: { ...(input.extra ?? {}) },
  };
}

/** The fields parseSaeConfigJson maps into SaeConfig (the rest go to `extra`). */
const KNOWN = new Set([
  'architecture', 'd_in', 'd_sae', 'hook_name', 'hook_point', 'hook_layer', 'hook_point_layer', 'k', 'activation_fn', 'activation_fn_str',
  'activation_fn_kwargs', 'apply_b_dec_to_input', 'normalize_activations', 'reshape_activations', 'dtype', 'model_name',
  'context_size', 'prepend_bos', 'dataset_path', 'hook_head_index', 'hook_point_head_index', 'metadata',
]);

/**
 * A cfg.json's parsed JSON → SaeConfig. `where` (the file) opens every error message. Reads SAELens 6
 * (hook_name, model_name, … in `metadata`) and earlier flat configs (`hook_point`, `activation_fn_str`,
 * `activation_fn_kwargs.k`; normalize_activations as a boolean). Refuses what Lensboard cannot run:
 * other architectures, and SAEs of one attention head (hook_head_index).
 */
export function parseSaeConfigJson(json: unknown, where: string): SaeConfig {
  if (typeof json !== 'object' || json === null || Array.isArray(json)) throw new Error(`${where}: not a JSON object`);
  const raw = json as Record<string, unknown>;
  const meta = typeof raw.metadata === 'object' && raw.metadata !== null && !Array.isArray(raw.metadata) ? (raw.metadata as Record<string, unknown>) : {};
  const field = (...names: string[]): unknown => {
    for (const n of names) {
      if (raw[n] !== undefined) return raw[n];
      if (meta[n] !== undefined) return meta[n];
    }
    return undefined;
  };
  const activationFn = field('activation_fn', 'activation_fn_str');
  const kwargs = field('activation_fn_kwargs');
  const kwargsK = typeof kwargs === 'object' && kwargs !== null ? (kwargs as Record<string, unknown>).k : undefined;
  let architecture = field('architecture') ?? (activationFn === 'topk' ? 'topk' : 'standard');
  if (architecture === 'standard' && activationFn === 'topk' && kwargsK !== undefined) architecture = 'topk'; // SAELens < 6
  if (!SAE_ARCHITECTURES.includes(architecture as SaeArchitecture)) {
    throw new Error(`${where}: architecture must be one of ${SAE_ARCHITECTURES.join(', ')}; got ${JSON.stringify(architecture)}`);
  }
  if (activationFn !== undefined && activationFn !== null && !['relu', 'topk'].includes(activationFn as string)) {
    throw new Error(`${where}: activation_fn must be 'relu' or 'topk'; got ${JSON.stringify(activationFn)}`);
  }
  const head = field('hook_head_index', 'hook_point_head_index');
  if (head !== undefined && head !== null) {
    throw new Error(`${where}: hook_head_index is ${JSON.stringify(head)}: SAEs of a single attention head are not supported (SAEs of a whole hook point are)`);
  }
  let normalize = field('normalize_activations');
  if (typeof normalize === 'boolean') normalize = normalize ? 'expected_average_only_in' : 'none'; // SAELens < 6
  const extra: Record<string, unknown> = {};
  for (const [key, v] of Object.entries(raw)) if (!KNOWN.has(key)) extra[key] = v;
  for (const [key, v] of Object.entries(meta)) if (!KNOWN.has(key) && !(key in extra)) extra[key] = v;
  return saeConfig(
    {
      architecture: architecture as SaeArchitecture,
      d_in: field('d_in') as number,
      d_sae: field('d_sae') as number,
      hook_name: field('hook_name', 'hook_point') as string,
      hook_layer: (field('hook_layer', 'hook_point_layer') as number | undefined) ?? undefined,
      k: ((field('k') ?? kwargsK) as number | undefined) ?? undefined,
      apply_b_dec_to_input: field('apply_b_dec_to_input') as boolean | undefined,
      normalize_activations: (normalize as SaeNormalization | undefined) ?? undefined,
      reshape_activations: field('reshape_activations') as SaeConfig['reshape_activations'] | undefined,
      dtype: field('dtype') as string | undefined,
      model_name: field('model_name') as string | undefined,
      context_size: field('context_size') as number | undefined,
      prepend_bos: field('prepend_bos') as boolean | undefined,
      dataset_path: field('dataset_path') as string | undefined,
      extra,
    },
    where,
  );
}

/** The cfg.json Lensboard writes: SAELens's flat layout (read by SAELens 6 and earlier), with k in both places TopK is read from. */
export function saeConfigJson(cfg: SaeConfig): Record<string, unknown> {
  return {
    ...cfg.extra,
    architecture: cfg.architecture,
    d_in: cfg.d_in,
    d_sae: cfg.d_sae,
    dtype: cfg.dtype,
    device: 'cpu',
    model_name: cfg.model_name,
    hook_name: cfg.hook_name,
    hook_layer: cfg.hook_layer,
    hook_head_index: null,
    activation_fn: cfg.architecture === 'topk' ? 'topk' : 'relu',
    ...(cfg.architecture === 'topk' ? { k: cfg.k, activation_fn_kwargs: { k: cfg.k } } : { activation_fn_kwargs: {} }),
    apply_b_dec_to_input: cfg.apply_b_dec_to_input,
    normalize_activations: cfg.normalize_activations,
    reshape_activations: cfg.reshape_activations,
    context_size: cfg.context_size,
    prepend_bos: cfg.prepend_bos,
    dataset_path: cfg.dataset_path,
    finetuning_scaling_factor: false,
  };
}
