/** The activations of one run, by hook name (TransformerLens's ActivationCache). */
import { getActName, type HookName } from './hookPoints.ts';
import type { Tensor } from './tensor.ts';

export class ActivationCache {
  private readonly store: Map<HookName, Tensor>;

  constructor(
    store: Map<HookName, Tensor>,
    /** True when the batch dimension was removed (a batch of one, `removeBatchDim`). */
    readonly hasBatchDim = true,
  ) {
    this.store = store;
  }

  /**
   * The activation at a hook point: a full name (`blocks.3.attn.hook_pattern`) or TransformerLens's
   * shorthand as arguments to getActName (`get('pattern', 3)`, `get('scale', 2, 'ln1')`).
   */
  get(name: HookName | string, layer?: number | null, layerType?: 'ln1' | 'ln2' | 'ln_final'): Tensor {
    const key = this.resolve(name, layer, layerType);
    const value = this.store.get(key);
    if (!value) {
      const known = [...this.store.keys()];
      throw new Error(
        `ActivationCache has no '${key}'. ${known.length} cached: ${known.slice(0, 8).join(', ')}${known.length > 8 ? ', …' : ''}. Pass it in namesFilter to cache it.`,
      );
    }
    return value;
  }

  has(name: HookName | string, layer?: number | null, layerType?: 'ln1' | 'ln2' | 'ln_final'): boolean {
    try {
      return this.store.has(this.resolve(name, layer, layerType));
    } catch {
      return false;
    }
  }

  /** Cached hook names in forward order. */
  keys(): HookName[] {
    return [...this.store.keys()];
  }

  entries(): [HookName, Tensor][] {
    return [...this.store.entries()];
  }

  get size(): number {
    return this.store.size;
  }

  private resolve(name: string, layer?: number | null, layerType?: 'ln1' | 'ln2' | 'ln_final'): HookName {
    if (this.store.has(name as HookName)) return name as HookName;
    if (name.includes('.') || name.startsWith('hook_')) return name as HookName;
    return getActName(name, layer, layerType);
  }
}
