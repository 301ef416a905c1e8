/**
 * Interventions on an SAE's features, for forward passes and generate: steering (α · W_dec[f] added
 * at the SAE's hook point, with or without the SAE spliced in), and feature ablation and patching at
 * hook_sae_acts_post (the SAE spliced in).
 */
import { saeHook, type ModelHookName } from '../hookPoints.ts';
import { patchFrom, type InterventionSpec } from '../interventions.ts';
import { Tensor } from '../tensor.ts';
import type { Sae } from './Sae.ts';

/** One feature and how strongly to steer with it. */
export interface FeatureStrength {
  feature: number;
  strength: number;
}

/** Σ strength · W_dec[feature]: [d_in]. */
export function steeringVector(sae: Sae, features: readonly FeatureStrength[]): Tensor {
  const out = new Float32Array(sae.cfg.d_in);
  for (const { feature, strength } of features) {
    if (!Number.isFinite(strength)) throw new Error(`steering: the strength of feature ${feature} must be a finite number; got ${strength}`);
    const dir = sae.featureDirection(feature);
    for (let i = 0; i < out.length; i++) out[i] += strength * dir[i];
  }
  return new Tensor(out, [sae.cfg.d_in]);
}

/**
 * Steering (Neuronpedia's, Templeton et al.'s): adds Σ α · W_dec[f] to the SAE's hook point at every
 * position (or at `positions`), whether or not the SAE is spliced in. A hook_z SAE steers
 * [head, d_head]: give `nHeads`.
 */
export function steerFeatures(sae: Sae, features: readonly FeatureStrength[], opts: { positions?: number | readonly number[]; nHeads?: number } = {}): InterventionSpec {
  const v = steeringVector(sae, features);
  let add: Tensor;
  if (sae.cfg.reshape_activations === 'hook_z') {
    const h = opts.nHeads;
    if (h === undefined || !Number.isInteger(h) || h < 1 || sae.cfg.d_in % h !== 0) {
      throw new Error(`steering with a hook_z SAE (d_in ${sae.cfg.d_in}) needs nHeads, the model's n_heads, dividing d_in`);
    }
    add = v.reshape([1, 1, h, sae.cfg.d_in / h]);
  } else {
    add = v.reshape([1, 1, sae.cfg.d_in]);
  }
  return { hook: sae.cfg.hook_name as ModelHookName, add, ...(opts.positions !== undefined ? { where: { pos: opts.positions } } : {}) };
}

/** Sets features of the spliced SAE to `value` (default 0) at hook_sae_acts_post, at every position or at `positions`. */
export function ablateFeatures(sae: Sae, features: number | readonly number[], opts: { positions?: number | readonly number[]; value?: number } = {}): InterventionSpec {
  const list = typeof features === 'number' ? [features] : [...features];
  for (const f of list) sae.checkFeature(f);
  return {
    hook: saeHook(sae.cfg.hook_name as ModelHookName, 'hook_sae_acts_post'),
    where: { d_sae: list, ...(opts.positions !== undefined ? { pos: opts.positions } : {}) },
    value: opts.value ?? 0,
  };
}

/** Patches the spliced SAE's features (all, or `features`, at `positions`) with their activations from another run, [batch, pos, d_sae]. */
export function patchFeatures(sae: Sae, source: Tensor, opts: { features?: readonly number[]; positions?: number | readonly number[] } = {}): InterventionSpec {
  for (const f of opts.features ?? []) sae.checkFeature(f);
  const where = { ...(opts.features ? { d_sae: opts.features } : {}), ...(opts.positions !== undefined ? { pos: opts.positions } : {}) };
  return patchFrom(saeHook(sae.cfg.hook_name as ModelHookName, 'hook_sae_acts_post'), source, Object.keys(where).length ? where : undefined);
}
