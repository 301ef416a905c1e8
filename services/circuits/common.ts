/** What the circuits features share: head checks, and the per-model maps read past block 0's MLP (pastMlp0). */
import type { HookedTransformer } from '../../hooks/HookedTransformer.ts';
import type { TokenEmbedding } from '../../hooks/circuits/index.ts';
import type { Tensor } from '../../hooks/tensor.ts';
import { UserError } from '../context.ts';
import { checkIndex } from '../common/requests.ts';

export function checkHead(model: HookedTransformer, layer: number, head: number): void {
  checkIndex('layer', layer, model.cfg.n_layers, 'n_layers');
  checkIndex('head', head, model.cfg.n_heads, 'n_heads');
}

/** pastMlp0 reads through block 0's MLP with LayerNorm as a plain normalisation: the LayerNorms must be folded. */
export function checkPastMlp0(model: HookedTransformer): void {
  if (model.cfg.normalization_type !== 'LNPre') {
    throw new UserError(`pastMlp0: needs the model loaded with LayerNorm folded (the default processing); this one has normalization_type '${model.cfg.normalization_type}'`);
  }
}

/**
 * Per model, what pastMlp0 reads through — block 0's MLP linearisation and the effective embedding over the
 * model's token set. Both depend on the weights alone, so each is computed once (seconds on GPT-2 small), not
 * for every composition mode or copying request.
 */
export const blockZeroMaps = new WeakMap<HookedTransformer, Promise<Tensor>>();
export const tokenSetEmbeddings = new WeakMap<HookedTransformer, Promise<TokenEmbedding>>();

export function perModel<T>(cache: WeakMap<HookedTransformer, Promise<T>>, model: HookedTransformer, make: () => Promise<T>): Promise<T> {
  let p = cache.get(model);
  if (!p) {
    p = make();
    cache.set(model, p);
    p.catch(() => cache.delete(model)); // a failure is not remembered
  }
  return p;
}

