/** The SAE store of a model a dataset experiment runs on: SAEs by name under its saes/ folder or on the hub (as the server; no paths). */
import { existsSync, statSync } from 'node:fs';
import type { HookedTransformer } from '../hooks/HookedTransformer.ts';
import { SaeStore } from '../services/saes/store.ts';

export function saeStoreFor(model: HookedTransformer, source: string): SaeStore {
  const modelDir = existsSync(source) && statSync(source).isDirectory() ? source : null;
  return new SaeStore({ model, modelDir, hub: {} });
}
