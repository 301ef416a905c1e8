/** What the analysis services share: the ablation source of a request, and the memory of batched variants and backward passes. */
import type { HookedTransformer } from '../../hooks/HookedTransformer.ts';
import { UserError } from '../context.ts';
import { engineBytesPerToken, F32, type MemoryPart } from '../common/budget.ts';
import { userCall } from '../common/requests.ts';

/** The ablation source of a request; resample's reference prompts must have the prompt's token length. */
export function ablationSource(model: HookedTransformer, p: { mode: 'zero' | 'mean' | 'resample'; reference?: string[]; seed: number }, pos: number) {
  if (p.reference && p.mode !== 'zero') {
    const ref = userCall('reference', () => model.prepareInput(p.reference!));
    const lengths = ref.attentionMask ? ref.attentionMask.map((r) => r.reduce((a, b) => a + b, 0)) : ref.tokens.map((r) => r.length);
    if (p.mode === 'resample' && lengths.some((n) => n !== pos)) {
      throw new UserError(`reference: resample needs reference prompts of the prompt's length (${pos} tokens); got ${lengths.join(', ')}`);
    }
  }
  return { kind: p.mode, ...(p.reference ? { reference: p.reference } : {}), seed: p.seed };
}

/** Per variant row of a batched sweep or patching pass: its tokens' working memory and its logits (one position, or all for a loss). */
export function variantRow(model: HookedTransformer, pos: number, positioned: boolean): MemoryPart[] {
  const V = model.cfg.d_vocab;
  return [
    { what: `onnxruntime working memory for ${pos} tokens per variant`, bytes: pos * engineBytesPerToken(model.cfg, pos) },
    { what: `intervention mask and value per variant`, bytes: 2 * pos * model.cfg.d_model * F32 },
    positioned
      ? { what: `logits 1 × ${V} floats per variant`, bytes: V * F32 }
      : { what: `logits ${pos} × ${V} floats per variant (the loss reads every position)`, bytes: pos * V * F32 },
  ];
}

/**
 * onnxruntime's working memory for a forward and backward pass over `pos` tokens: the forward's (engineBytesPerToken),
 * the forward values the backward pass reads, and the gradients it makes, about three forwards' worth.
 */
export function backwardWorkingMemory(model: HookedTransformer, pos: number): MemoryPart {
  return { what: `onnxruntime working memory of a forward and backward pass over ${pos} tokens`, bytes: 3 * pos * engineBytesPerToken(model.cfg, pos) };
}
