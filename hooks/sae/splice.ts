/** Which SAEs a run splices in, and whether each fits the model it is spliced into. */
import type { HookedTransformerConfig } from '../config.ts';
import type { EngineSae } from '../engine/engine.ts';
import { hookShape, type HookName, type HookPointInfo, type ModelHookName } from '../hookPoints.ts';
import type { Sae } from './Sae.ts';

/** An SAE attached to a model (HookedSAETransformer's add_sae), or given to one run. */
export interface SaeAttachment {
  sae: Sae;
  useErrorTerm: boolean;
}

/**
 * Throws unless `sae` can be spliced into a model with these hook points: its hook_name must be one
 * of the model's own hook points with [batch, pos, d_in] values (or [batch, pos, head, d] with
 * head·d = d_in, read flattened as SAELens reads hook_z).
 */
export function checkSaeFits(sae: Sae, cfg: HookedTransformerConfig, points: ReadonlyMap<HookName, HookPointInfo>): void {
  const hook = sae.cfg.hook_name as HookName;
  const info = points.get(hook);
  const label = `SAE ${sae.name} (hook ${sae.cfg.hook_name}, d_in ${sae.cfg.d_in})`;
  if (!info || info.sae) {
    throw new Error(`${label} does not fit this model: '${sae.cfg.hook_name}' is not one of its hook points (see model.hookPoints())`);
  }
  const [d0, d1, ...rest] = info.dims;
  const shape = hookShape(info, cfg, 1, 1).slice(2);
  const width = shape.reduce((a, b) => a * b, 1);
  const positional = rest.some((d) => d === 'query_pos' || d === 'key_pos');
  if (d0 !== 'batch' || d1 !== 'pos' || positional || rest.length === 0 || rest.length > 2 || (rest.length === 2 && rest[0] !== 'head')) {
    throw new Error(`${label} does not fit this model: '${hook}' has dims [${info.dims.join(', ')}]; an SAE reads [batch, pos, d] or [batch, pos, head, d]`);
  }
  if (width !== sae.cfg.d_in) {
    const what = rest.length === 2 ? `${shape[0]} heads × ${shape[1]} = ${width}` : `${rest[0]} = ${width}`;
    throw new Error(`${label} does not fit this model: '${hook}' has ${what} per position, not d_in ${sae.cfg.d_in}`);
  }
}

/** The SAEs of a run: attachments (by hook point, later ones winning), each checked against the model. */
export function engineSaes(attachments: Iterable<SaeAttachment>, cfg: HookedTransformerConfig, points: ReadonlyMap<HookName, HookPointInfo>): EngineSae[] {
  const byHook = new Map<ModelHookName, SaeAttachment>();
  for (const a of attachments) {
    checkSaeFits(a.sae, cfg, points);
    byHook.set(a.sae.cfg.hook_name as ModelHookName, a);
  }
  return [...byHook.values()].map((a) => a.sae.splice(a.useErrorTerm));
}

/** `saes` as a list, each checked to be an Sae-like object. */
export function saeList(saes: Sae | readonly Sae[] | undefined, what: string): Sae[] {
  const list = saes === undefined ? [] : Array.isArray(saes) ? [...saes] : [saes as Sae];
  for (const s of list) {
    if (!s || typeof s !== 'object' || typeof (s as Sae).splice !== 'function') throw new Error(`${what}: saes must be an Sae or a list of them (Sae.fromPretrained)`);
  }
  return list;
}
