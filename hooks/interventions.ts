/**
 * In-graph interventions: ablations and patching that run inside the onnxruntime graph as
 * `Where(mask, value, activation)`, and steering as `activation + vector`, with no round trip to
 * JavaScript.
 */
import type { HookedTransformerConfig } from './config.ts';
import { blockHook, hookPointMap, hookShape, type Dim, type HookName, type HookPointInfo } from './hookPoints.ts';
import { Tensor } from './tensor.ts';
import type { Intervention } from './engine/engine.ts';

/** Dimension names an intervention can select along. */
export type SelectDim = Exclude<Dim, '1'>;

export interface InterventionSpec {
  hook: HookName;
  /** Indices to replace along named dims of the hook point (every index of a dim not named). */
  where?: Partial<Record<SelectDim, number | readonly number[]>>;
  /** An explicit mask (non-zero = replace), same rank as the hook point, broadcastable to it; replaces `where`. */
  mask?: Tensor;
  /** The replacement: a number, or a Tensor of the hook's rank broadcastable to its shape. Default 0 (zero ablation). */
  value?: number | Tensor;
  /**
   * Steering: add this (a number, or a Tensor of the hook's rank broadcastable to its shape) where
   * `where`/`mask` select, instead of replacing. An additive spec has no `value`; several add up, and
   * they apply after the hook point's replacements.
   */
  add?: number | Tensor;
}

/** Zero- (or mean-/value-) ablates attention heads of one layer at `hook_z` (default) or `hook_result`. */
export function ablateHeads(
  layer: number,
  heads: number | readonly number[],
  opts: { value?: number | Tensor; at?: 'z' | 'result'; positions?: number | readonly number[]; batch?: number | readonly number[] } = {},
): InterventionSpec {
  return {
    hook: blockHook(layer, opts.at === 'result' ? 'attn.hook_result' : 'attn.hook_z'),
    where: { head: heads, ...(opts.positions !== undefined ? { pos: opts.positions } : {}), ...(opts.batch !== undefined ? { batch: opts.batch } : {}) },
    value: opts.value ?? 0,
  };
}

/** Ablates MLP neurons of one layer at `mlp.hook_post`. */
export function ablateNeurons(
  layer: number,
  neurons: number | readonly number[],
  opts: { value?: number | Tensor; positions?: number | readonly number[] } = {},
): InterventionSpec {
  return {
    hook: blockHook(layer, 'mlp.hook_post'),
    where: { d_mlp: neurons, ...(opts.positions !== undefined ? { pos: opts.positions } : {}) },
    value: opts.value ?? 0,
  };
}

/** The residual-stream hook point of each short name. */
export const RESID_HOOKS = { resid_pre: 'hook_resid_pre', resid_mid: 'hook_resid_mid', resid_post: 'hook_resid_post' } as const;

/** Ablates positions of the residual stream at a resid hook (`resid_pre`, `resid_mid`, `resid_post`). */
export function ablatePositions(
  layer: number,
  positions: number | readonly number[],
  opts: { value?: number | Tensor; at?: 'resid_pre' | 'resid_mid' | 'resid_post' } = {},
): InterventionSpec {
  return { hook: blockHook(layer, RESID_HOOKS[opts.at ?? 'resid_pre']), where: { pos: positions }, value: opts.value ?? 0 };
}

/** Patches a hook point (whole, or the selected positions/heads) with the activation from another run. */
export function patchFrom(
  hook: HookName,
  source: Tensor,
  where?: InterventionSpec['where'],
): InterventionSpec {
  return { hook, value: source, ...(where ? { where } : {}) };
}

function asList(v: number | readonly number[]): readonly number[] {
  return typeof v === 'number' ? [v] : v;
}

/**
 * Turns the specs into one full-size mask and value per hook point for a run of `batch` × `pos`,
 * applying specs on the same hook in order (a later one wins where they overlap).
 */
export function materializeInterventions(
  cfg: HookedTransformerConfig,
  specs: readonly InterventionSpec[],
  batch: number,
  pos: number,
  hookInfo: ReadonlyMap<HookName, HookPointInfo> = hookPointMap(cfg),
): Map<HookName, Intervention> {
  const out = new Map<HookName, Intervention>();
  for (const spec of specs) {
    const info = hookInfo.get(spec.hook);
    if (!info) throw new Error(`intervention: unknown hook point '${spec.hook}'`);
    if (spec.hook === 'hook_tokens') throw new Error(`intervention: 'hook_tokens' cannot be ablated; edit the tokens instead`);
    if (spec.add !== undefined && spec.value !== undefined) throw new Error(`intervention on '${spec.hook}': give either value (replace) or add (steer), not both`);
    const shape = hookShape(info, cfg, batch, pos);
    const size = shape.reduce((a, b) => a * b, 1);
    const current = out.get(spec.hook) ?? {};
    const mask = specMask(spec, info, shape);
    const given = spec.add ?? spec.value;
    const tensor = typeof given === 'object' ? broadcastTo(given, shape, spec.hook) : null;
    const fill = typeof given === 'number' ? given : 0;
    if (spec.add !== undefined) {
      const add = (current.add ??= Tensor.zeros(shape)).data;
      for (let i = 0; i < size; i++) if (mask[i]) add[i] += tensor ? tensor.data[i] : fill;
    } else {
      const m = (current.mask ??= { shape, data: new Uint8Array(size) }).data;
      const v = (current.value ??= Tensor.zeros(shape)).data;
      for (let i = 0; i < size; i++) {
        if (mask[i]) {
          m[i] = 1;
          v[i] = tensor ? tensor.data[i] : fill;
        }
      }
    }
    out.set(spec.hook, current);
  }
  return out;
}

function specMask(spec: InterventionSpec, info: HookPointInfo, shape: number[]): Uint8Array {
  if (spec.mask) {
    const m = broadcastTo(spec.mask, shape, spec.hook).data;
    const out = new Uint8Array(m.length);
    for (let i = 0; i < m.length; i++) out[i] = m[i] !== 0 ? 1 : 0;
    return out;
  }
  return selectionMask(`intervention on '${spec.hook}'`, info.dims, shape, spec.where);
}

/**
 * A 0/1 mask over `shape` (row-major) that is 1 where every dim named in `where` is at one of its
 * listed indices (negative allowed); dims not named are selected whole. `what` opens error messages.
 */
export function selectionMask(
  what: string,
  dims: readonly Dim[],
  shape: readonly number[],
  where: Partial<Record<SelectDim, number | readonly number[]>> | undefined,
): Uint8Array {
  for (const key of Object.keys(where ?? {})) {
    if (!dims.includes(key as Dim)) throw new Error(`${what}: it has no '${key}' dimension; its dims are ${dims.join(', ')}`);
  }
  const selectors = dims.map((dim, axis) => {
    const chosen = where?.[dim as SelectDim];
    const sel = new Uint8Array(shape[axis]);
    if (chosen === undefined) return sel.fill(1);
    for (const raw of asList(chosen)) {
      if (!Number.isInteger(raw) || raw < -shape[axis] || raw >= shape[axis]) {
        throw new Error(`${what}: ${dim} index ${raw} is out of range; allowed 0…${shape[axis] - 1}`);
      }
      sel[raw < 0 ? raw + shape[axis] : raw] = 1;
    }
    return sel;
  });
  const size = shape.reduce((a, b) => a * b, 1);
  const mask = new Uint8Array(size);
  const idx = new Array<number>(shape.length).fill(0);
  for (let i = 0; i < size; i++) {
    let on = 1;
    for (let a = 0; a < shape.length && on; a++) on = selectors[a][idx[a]];
    mask[i] = on;
    for (let a = shape.length - 1; a >= 0; a--) {
      if (++idx[a] < shape[a]) break;
      idx[a] = 0;
    }
  }
  return mask;
}

function broadcastTo(t: Tensor, shape: number[], hook: HookName): Tensor {
  if (t.shape.length !== shape.length || t.shape.some((d, i) => d !== 1 && d !== shape[i])) {
    throw new Error(
      `intervention on '${hook}': tensor of shape [${t.shape.join(', ')}] does not broadcast to the hook's shape [${shape.join(', ')}] (same rank; each dim equal or 1)`,
    );
  }
  return Tensor.zeros(shape).add(t);
}
