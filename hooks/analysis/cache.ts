/** Attaching the model to an ActivationCache, so its decomposition methods work on any cache. */
import { ActivationCache, type CacheModel } from '../ActivationCache.ts';

/** The cache itself when it already knows its model, else a cache over the same activations with `model` attached. */
export function withModel(cache: ActivationCache, model: CacheModel): ActivationCache {
  return cache.model ? cache : new ActivationCache(new Map(cache.entries()), cache.hasBatchDim, model);
}
