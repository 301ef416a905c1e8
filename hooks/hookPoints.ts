/**
 * The names and shapes of every hook point, exactly as TransformerLens names them for GPT-2,
 * listed in the order the forward pass reaches them (which is also the order of the cache).
 */
import type { HookedTransformerConfig } from './config.ts';

type BlockHookSuffix =
  | 'hook_resid_pre'
  | 'ln1.hook_scale'
  | 'ln1.hook_normalized'
  | 'attn.hook_q'
  | 'attn.hook_k'
  | 'attn.hook_v'
  | 'attn.hook_attn_scores'
  | 'attn.hook_pattern'
  | 'attn.hook_z'
  | 'attn.hook_result'
  | 'hook_attn_out'
  | 'hook_resid_mid'
  | 'ln2.hook_scale'
  | 'ln2.hook_normalized'
  | 'mlp.hook_pre'
  | 'mlp.hook_post'
  | 'hook_mlp_out'
  | 'hook_resid_post'
  // TransformerLens's optional hook points, cached only when enabled
  | 'hook_q_input'
  | 'hook_k_input'
  | 'hook_v_input'
  | 'hook_attn_in'
  | 'hook_mlp_in';

export type BlockHookName = `blocks.${number}.${BlockHookSuffix}`;
export type TopHookName =
  | 'hook_tokens'
  | 'hook_embed'
  | 'hook_pos_embed'
  | 'ln_final.hook_scale'
  | 'ln_final.hook_normalized';
/** Any hook point's name; a typo fails at compile time. */
export type HookName = TopHookName | BlockHookName;

/** Symbolic dimension names used in hook shapes. */
export type Dim = 'batch' | 'pos' | 'query_pos' | 'key_pos' | 'head' | 'd_model' | 'd_head' | 'd_mlp' | '1';

export interface HookPointInfo {
  name: HookName;
  /** Layer index, or null for hook points outside the blocks. */
  layer: number | null;
  dims: Dim[];
  /** True for TransformerLens's hook points that exist only when enabled in its config. */
  optional: boolean;
}

export interface OptionalHooks {
  /** hook_tokens */
  useHookTokens?: boolean;
  /** blocks.L.hook_q_input / hook_k_input / hook_v_input */
  useSplitQkvInput?: boolean;
  /** blocks.L.hook_attn_in */
  useAttnIn?: boolean;
  /** blocks.L.hook_mlp_in */
  useHookMlpIn?: boolean;
}

const BSD: Dim[] = ['batch', 'pos', 'd_model'];
const SCALE: Dim[] = ['batch', 'pos', '1'];
const HEAD: Dim[] = ['batch', 'pos', 'head', 'd_head'];
const PATTERN: Dim[] = ['batch', 'head', 'query_pos', 'key_pos'];

function blockHooks(layer: number, opts: OptionalHooks): HookPointInfo[] {
  const p = `blocks.${layer}.`;
  const h = (suffix: BlockHookSuffix, dims: Dim[], optional = false): HookPointInfo => ({
    name: `${p}${suffix}` as HookName,
    layer,
    dims,
    optional,
  });
  const list: HookPointInfo[] = [h('hook_resid_pre', BSD)];
  if (opts.useAttnIn) list.push(h('hook_attn_in', ['batch', 'pos', 'head', 'd_model'], true));
  if (opts.useSplitQkvInput) {
    list.push(h('hook_q_input', ['batch', 'pos', 'head', 'd_model'], true));
    list.push(h('hook_k_input', ['batch', 'pos', 'head', 'd_model'], true));
    list.push(h('hook_v_input', ['batch', 'pos', 'head', 'd_model'], true));
  }
  // With per-head attention inputs, ln1 works on [batch, pos, head, d_model], as in TransformerLens.
  const perHead = opts.useAttnIn || opts.useSplitQkvInput;
  list.push(
    h('ln1.hook_scale', perHead ? ['batch', 'pos', 'head', '1'] : SCALE),
    h('ln1.hook_normalized', perHead ? ['batch', 'pos', 'head', 'd_model'] : BSD),
    h('attn.hook_q', HEAD),
    h('attn.hook_k', HEAD),
    h('attn.hook_v', HEAD),
    h('attn.hook_attn_scores', PATTERN),
    h('attn.hook_pattern', PATTERN),
    h('attn.hook_z', HEAD),
    h('attn.hook_result', ['batch', 'pos', 'head', 'd_model']),
    h('hook_attn_out', BSD),
    h('hook_resid_mid', BSD),
  );
  if (opts.useHookMlpIn) list.push(h('hook_mlp_in', BSD, true));
  list.push(
    h('ln2.hook_scale', SCALE),
    h('ln2.hook_normalized', BSD),
    h('mlp.hook_pre', ['batch', 'pos', 'd_mlp']),
    h('mlp.hook_post', ['batch', 'pos', 'd_mlp']),
    h('hook_mlp_out', BSD),
    h('hook_resid_post', BSD),
  );
  return list;
}

/** Every hook point of the model, in forward order. */
export function listHookPoints(cfg: HookedTransformerConfig, opts: OptionalHooks = {}): HookPointInfo[] {
  const list: HookPointInfo[] = [];
  if (opts.useHookTokens) list.push({ name: 'hook_tokens', layer: null, dims: ['batch', 'pos'], optional: true });
  list.push({ name: 'hook_embed', layer: null, dims: BSD, optional: false });
  list.push({ name: 'hook_pos_embed', layer: null, dims: BSD, optional: false });
  for (let l = 0; l < cfg.n_layers; l++) list.push(...blockHooks(l, opts));
  list.push({ name: 'ln_final.hook_scale', layer: null, dims: SCALE, optional: false });
  list.push({ name: 'ln_final.hook_normalized', layer: null, dims: BSD, optional: false });
  return list;
}

/** The concrete shape of a hook point for a batch of `batch` prompts of `pos` tokens. */
export function hookShape(info: HookPointInfo, cfg: HookedTransformerConfig, batch: number, pos: number): number[] {
  return info.dims.map((d) => {
    switch (d) {
      case 'batch': return batch;
      case 'pos': case 'query_pos': case 'key_pos': return pos;
      case 'head': return cfg.n_heads;
      case 'd_model': return cfg.d_model;
      case 'd_head': return cfg.d_head;
      case 'd_mlp': return cfg.d_mlp;
      case '1': return 1;
    }
  });
}

const SHORT_NAMES: Record<string, string> = {
  resid_pre: 'hook_resid_pre', resid_mid: 'hook_resid_mid', resid_post: 'hook_resid_post',
  attn_out: 'hook_attn_out', mlp_out: 'hook_mlp_out', mlp_in: 'hook_mlp_in', attn_in: 'hook_attn_in',
  q_input: 'hook_q_input', k_input: 'hook_k_input', v_input: 'hook_v_input',
  q: 'attn.hook_q', k: 'attn.hook_k', v: 'attn.hook_v', z: 'attn.hook_z', result: 'attn.hook_result',
  attn_scores: 'attn.hook_attn_scores', scores: 'attn.hook_attn_scores',
  pattern: 'attn.hook_pattern', attn: 'attn.hook_pattern',
  pre: 'mlp.hook_pre', post: 'mlp.hook_post',
};

/**
 * TransformerLens's `utils.get_act_name`: `getActName('pattern', 3)` → `blocks.3.attn.hook_pattern`.
 * `getActName('scale', 2, 'ln1')`, `getActName('embed')`, `getActName('scale', null, 'ln_final')`.
 */
export function getActName(name: string, layer?: number | null, layerType?: 'ln1' | 'ln2' | 'ln_final' | 'attn' | 'mlp'): HookName {
  if (name === 'embed' || name === 'pos_embed' || name === 'tokens') return `hook_${name}` as HookName;
  if (name === 'scale' || name === 'normalized') {
    if (layerType === 'ln_final' || layer === undefined || layer === null) return `ln_final.hook_${name}` as HookName;
    if (layerType !== 'ln1' && layerType !== 'ln2') {
      throw new Error(`getActName('${name}', ${layer}): say which LayerNorm, 'ln1' or 'ln2'`);
    }
    return `blocks.${layer}.${layerType}.hook_${name}` as HookName;
  }
  const suffix = SHORT_NAMES[name];
  if (!suffix) {
    throw new Error(`getActName: unknown activation '${name}'; known: ${['embed', 'pos_embed', 'tokens', 'scale', 'normalized', ...Object.keys(SHORT_NAMES)].join(', ')}`);
  }
  if (layer === undefined || layer === null) throw new Error(`getActName('${name}') needs a layer index`);
  return `blocks.${layer}.${suffix}` as HookName;
}
