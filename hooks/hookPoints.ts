/**
 * The one list of hook points: every TransformerLens hook point of GPT-2, with its shape, in the
 * order the forward pass reaches them (which is also the order of the cache). Names, shapes and
 * layers everywhere else (the graph builder, the engine, the reference, the cache, the toolkit)
 * come from here: `blockHook(3, 'attn.hook_pattern')` makes `blocks.3.attn.hook_pattern`, typed.
 */
import type { HookedTransformerConfig } from './config.ts';

/** Symbolic dimension names used in hook shapes. */
export type Dim = 'batch' | 'pos' | 'query_pos' | 'key_pos' | 'head' | 'd_model' | 'd_head' | 'd_mlp' | '1' | 'd_in' | 'd_sae';

/** TransformerLens's optional hook points (each exists only when its option is on). */
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

const BSD: readonly Dim[] = ['batch', 'pos', 'd_model'];
const SCALE: readonly Dim[] = ['batch', 'pos', '1'];
const HEAD: readonly Dim[] = ['batch', 'pos', 'head', 'd_head'];
const PATTERN: readonly Dim[] = ['batch', 'head', 'query_pos', 'key_pos'];
const PER_HEAD: readonly Dim[] = ['batch', 'pos', 'head', 'd_model'];
const MLP: readonly Dim[] = ['batch', 'pos', 'd_mlp'];

interface PointSpec {
  readonly suffix: string;
  readonly dims: readonly Dim[];
  /** The option that enables this (optional) hook point. */
  readonly enabledBy?: keyof OptionalHooks;
  /** Dims when the attention input is per head (useAttnIn or useSplitQkvInput): ln1 then runs per head, as in TransformerLens. */
  readonly perHeadDims?: readonly Dim[];
}

/** The hook points of one block, in forward order. */
const BLOCK_POINTS = [
  { suffix: 'hook_resid_pre', dims: BSD },
  { suffix: 'hook_attn_in', dims: PER_HEAD, enabledBy: 'useAttnIn' },
  { suffix: 'hook_q_input', dims: PER_HEAD, enabledBy: 'useSplitQkvInput' },
  { suffix: 'hook_k_input', dims: PER_HEAD, enabledBy: 'useSplitQkvInput' },
  { suffix: 'hook_v_input', dims: PER_HEAD, enabledBy: 'useSplitQkvInput' },
  { suffix: 'ln1.hook_scale', dims: SCALE, perHeadDims: ['batch', 'pos', 'head', '1'] },
  { suffix: 'ln1.hook_normalized', dims: BSD, perHeadDims: PER_HEAD },
  { suffix: 'attn.hook_q', dims: HEAD },
  { suffix: 'attn.hook_k', dims: HEAD },
  { suffix: 'attn.hook_v', dims: HEAD },
  { suffix: 'attn.hook_attn_scores', dims: PATTERN },
  { suffix: 'attn.hook_pattern', dims: PATTERN },
  { suffix: 'attn.hook_z', dims: HEAD },
  { suffix: 'attn.hook_result', dims: PER_HEAD },
  { suffix: 'hook_attn_out', dims: BSD },
  { suffix: 'hook_resid_mid', dims: BSD },
  { suffix: 'hook_mlp_in', dims: BSD, enabledBy: 'useHookMlpIn' },
  { suffix: 'ln2.hook_scale', dims: SCALE },
  { suffix: 'ln2.hook_normalized', dims: BSD },
  { suffix: 'mlp.hook_pre', dims: MLP },
  { suffix: 'mlp.hook_post', dims: MLP },
  { suffix: 'hook_mlp_out', dims: BSD },
  { suffix: 'hook_resid_post', dims: BSD },
] as const satisfies readonly PointSpec[];

/** The hook points before the blocks, in forward order. */
const EMBED_POINTS = [
  { suffix: 'hook_tokens', dims: ['batch', 'pos'], enabledBy: 'useHookTokens' },
  { suffix: 'hook_embed', dims: BSD },
  { suffix: 'hook_pos_embed', dims: BSD },
] as const satisfies readonly PointSpec[];

/** The hook points after the blocks. */
const FINAL_POINTS = [
  { suffix: 'ln_final.hook_scale', dims: SCALE },
  { suffix: 'ln_final.hook_normalized', dims: BSD },
] as const satisfies readonly PointSpec[];

/**
 * The hook points of a sparse autoencoder spliced in at a hook point (TransformerLens's
 * HookedSAETransformer), in forward order: its input (flattened to d_in), pre- and post-activation
 * feature values, reconstruction, error term (input minus the reconstruction without hooks), and the
 * value that flows on. `base` dims are the dims of the hook point the SAE is spliced at.
 */
const SAE_POINTS = [
  { suffix: 'hook_sae_input', dims: ['batch', 'pos', 'd_in'] },
  { suffix: 'hook_sae_acts_pre', dims: ['batch', 'pos', 'd_sae'] },
  { suffix: 'hook_sae_acts_post', dims: ['batch', 'pos', 'd_sae'] },
  { suffix: 'hook_sae_recons', dims: ['batch', 'pos', 'd_in'] },
  { suffix: 'hook_sae_error', dims: 'base' },
  { suffix: 'hook_sae_output', dims: 'base' },
] as const satisfies readonly { suffix: string; dims: readonly Dim[] | 'base' }[];

/** A hook point of a block, named as in TransformerLens without the `blocks.L.` prefix (`attn.hook_pattern`). */
export type BlockHookSuffix = (typeof BLOCK_POINTS)[number]['suffix'];
export type BlockHookName<S extends BlockHookSuffix = BlockHookSuffix> = `blocks.${number}.${S}`;
export type TopHookName = (typeof EMBED_POINTS)[number]['suffix'] | (typeof FINAL_POINTS)[number]['suffix'];
/** A hook point of a spliced SAE, without the name of the hook point it is spliced at (`hook_sae_acts_post`). */
export type SaeHookSuffix = (typeof SAE_POINTS)[number]['suffix'];
/** A hook point of the model itself. */
export type ModelHookName = TopHookName | BlockHookName;
/** A spliced SAE's hook point: `blocks.1.hook_resid_post.hook_sae_acts_post`. */
export type SaeHookName<S extends SaeHookSuffix = SaeHookSuffix> = `${ModelHookName}.${S}`;
/** Any hook point's name; a typo fails at compile time. */
export type HookName = ModelHookName | SaeHookName;
/** The cache key of a hook point's gradient (TransformerLens's `<hook>_grad`, cached by `runWithCache(…, { inclBwd: true })`). */
export type GradName = `${HookName}_grad`;
/** A key of an ActivationCache: a hook point's value or its gradient. */
export type CacheKey = HookName | GradName;

/** The cache key of hook point `hook`'s gradient: `blocks.3.attn.hook_z` -> `blocks.3.attn.hook_z_grad`. */
export const gradName = (hook: HookName): GradName => `${hook}_grad`;

export interface HookPointInfo {
  name: HookName;
  /** Layer index, or null for hook points outside the blocks. */
  layer: number | null;
  /** The name without `blocks.L.` (the whole name outside the blocks): which hook point of its layer this is. */
  suffix: BlockHookSuffix | TopHookName | `${BlockHookSuffix | TopHookName}.${SaeHookSuffix}`;
  dims: Dim[];
  /** True for TransformerLens's hook points that exist only when enabled in its config. */
  optional: boolean;
  /** A spliced SAE's hook point: the hook point it is spliced at and the SAE's widths (for the dims d_in, d_sae). */
  sae?: { base: ModelHookName; d_in: number; d_sae: number };
}

/** The name of hook point `suffix` of block `layer`: `blockHook(3, 'attn.hook_pattern')` = `blocks.3.attn.hook_pattern`. */
export function blockHook<S extends BlockHookSuffix>(layer: number, suffix: S): BlockHookName<S> {
  return `blocks.${layer}.${suffix}`;
}

/** The LayerNorm hook points under `prefix` (`ln_final`, or ln1 / ln2 of a block). */
export function layerNormHooks(layer: number | null, ln: 'ln1' | 'ln2' | 'ln_final'): { scale: HookName; normalized: HookName } {
  if (ln === 'ln_final' || layer === null) return { scale: 'ln_final.hook_scale', normalized: 'ln_final.hook_normalized' };
  return { scale: blockHook(layer, `${ln}.hook_scale`), normalized: blockHook(layer, `${ln}.hook_normalized`) };
}

function enabled(spec: PointSpec, opts: OptionalHooks): boolean {
  return spec.enabledBy === undefined || opts[spec.enabledBy] === true;
}

/** Every hook point of the model, in forward order. */
export function listHookPoints(cfg: HookedTransformerConfig, opts: OptionalHooks = {}): HookPointInfo[] {
  const perHead = opts.useAttnIn === true || opts.useSplitQkvInput === true;
  const info = (spec: PointSpec, layer: number | null): HookPointInfo => ({
    name: (layer === null ? spec.suffix : `blocks.${layer}.${spec.suffix}`) as HookName,
    layer,
    suffix: spec.suffix as HookPointInfo['suffix'],
    dims: [...(perHead && spec.perHeadDims ? spec.perHeadDims : spec.dims)],
    optional: spec.enabledBy !== undefined,
  });
  const list: HookPointInfo[] = [];
  for (const spec of EMBED_POINTS) if (enabled(spec, opts)) list.push(info(spec, null));
  for (let l = 0; l < cfg.n_layers; l++) for (const spec of BLOCK_POINTS) if (enabled(spec, opts)) list.push(info(spec, l));
  for (const spec of FINAL_POINTS) list.push(info(spec, null));
  return list;
}

/** The hook points of a model by name, in forward order (what HookedTransformer.hookPoints() lists). */
export function hookPointMap(cfg: HookedTransformerConfig, opts: OptionalHooks = {}): Map<HookName, HookPointInfo> {
  return new Map(listHookPoints(cfg, opts).map((h) => [h.name, h]));
}

/** The name of a spliced SAE's hook point: `saeHook('blocks.1.hook_resid_post', 'hook_sae_acts_post')`. */
export function saeHook<S extends SaeHookSuffix>(base: ModelHookName, suffix: S): SaeHookName<S> {
  return `${base}.${suffix}`;
}

/** What splicing an SAE at a hook point needs to know to name its hook points. */
export interface SaeSpliceShape {
  /** The hook point the SAE is spliced at. */
  hook: ModelHookName;
  d_in: number;
  d_sae: number;
  /** Without the error term there is no hook_sae_error (as in SAELens, where it is never called). */
  useErrorTerm: boolean;
}

/**
 * `points` (the model's hook points, in forward order) with the hook points of SAEs spliced at some of
 * them, each SAE's right after its base hook point, in forward order. A base that is not one of
 * `points` is an error naming the SAE's hook.
 */
export function withSaeHookPoints(points: ReadonlyMap<HookName, HookPointInfo>, saes: readonly SaeSpliceShape[]): Map<HookName, HookPointInfo> {
  if (saes.length === 0) return new Map(points);
  const byBase = new Map<HookName, SaeSpliceShape>();
  for (const s of saes) {
    if (!points.has(s.hook)) throw new Error(`an SAE is spliced at '${s.hook}', which is not one of this model's hook points`);
    if (byBase.has(s.hook)) throw new Error(`two SAEs are spliced at '${s.hook}'; one hook point takes one SAE`);
    byBase.set(s.hook, s);
  }
  const out = new Map<HookName, HookPointInfo>();
  for (const [name, info] of points) {
    out.set(name, info);
    const s = byBase.get(name);
    if (!s) continue;
    for (const spec of SAE_POINTS) {
      if (spec.suffix === 'hook_sae_error' && !s.useErrorTerm) continue;
      const full = saeHook(s.hook, spec.suffix);
      out.set(full, {
        name: full,
        layer: info.layer,
        suffix: `${info.suffix}.${spec.suffix}` as HookPointInfo['suffix'],
        dims: spec.dims === 'base' ? [...info.dims] : [...spec.dims],
        optional: false,
        sae: { base: s.hook, d_in: s.d_in, d_sae: s.d_sae },
      });
    }
  }
  return out;
}

/** The concrete shape of a hook point for a batch of `batch` prompts of `pos` tokens. */
export function hookShape(info: HookPointInfo, cfg: HookedTransformerConfig, batch: number, pos: number): number[] {
  return info.dims.map((d) => {
    switch (d) {
      case 'd_in': case 'd_sae':
        if (!info.sae) throw new Error(`internal: hook point '${info.name}' has a '${d}' dim but is not an SAE's`);
        return info.sae[d];
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

/** TransformerLens's short activation names (utils.get_act_name) and the block hook point each stands for. */
const SHORT_NAMES: Record<string, BlockHookSuffix> = {
  resid_pre: 'hook_resid_pre', resid_mid: 'hook_resid_mid', resid_post: 'hook_resid_post',
  attn_out: 'hook_attn_out', mlp_out: 'hook_mlp_out', mlp_in: 'hook_mlp_in', attn_in: 'hook_attn_in',
  q_input: 'hook_q_input', k_input: 'hook_k_input', v_input: 'hook_v_input',
  q: 'attn.hook_q', k: 'attn.hook_k', v: 'attn.hook_v', z: 'attn.hook_z', result: 'attn.hook_result',
  attn_scores: 'attn.hook_attn_scores', scores: 'attn.hook_attn_scores',
  pattern: 'attn.hook_pattern', attn: 'attn.hook_pattern',
  pre: 'mlp.hook_pre', post: 'mlp.hook_post',
};

const TOP_SHORT_NAMES: Record<string, TopHookName> = { embed: 'hook_embed', pos_embed: 'hook_pos_embed', tokens: 'hook_tokens' };

/**
 * TransformerLens's `utils.get_act_name`: `getActName('pattern', 3)` → `blocks.3.attn.hook_pattern`.
 * `getActName('scale', 2, 'ln1')`, `getActName('embed')`, `getActName('scale', null, 'ln_final')`.
 */
export function getActName(name: string, layer?: number | null, layerType?: 'ln1' | 'ln2' | 'ln_final' | 'attn' | 'mlp'): HookName {
  const top = TOP_SHORT_NAMES[name];
  if (top) return top;
  if (name === 'scale' || name === 'normalized') {
    if (layerType === 'ln_final' || layer === undefined || layer === null) return layerNormHooks(null, 'ln_final')[name];
    if (layerType !== 'ln1' && layerType !== 'ln2') {
      throw new Error(`getActName('${name}', ${layer}): say which LayerNorm, 'ln1' or 'ln2'`);
    }
    return layerNormHooks(layer, layerType)[name];
  }
  const suffix = SHORT_NAMES[name];
  if (!suffix) {
    throw new Error(`getActName: unknown activation '${name}'; known: ${[...Object.keys(TOP_SHORT_NAMES), 'scale', 'normalized', ...Object.keys(SHORT_NAMES)].join(', ')}`);
  }
  if (layer === undefined || layer === null) throw new Error(`getActName('${name}') needs a layer index`);
  return blockHook(layer, suffix);
}
