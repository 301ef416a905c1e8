/**
 * What the explanation services share (direct logit attribution, the information-flow graph, neurons): schema atoms
 * (a token with its string, a position, a layer, a neuron), the attribution run and its memory estimate, and the
 * neuron check.
 */
import { z } from 'zod';
import { dlaHookNames, withModel } from '../../hooks/analysis/index.ts';
import type { HookedTransformer } from '../../hooks/HookedTransformer.ts';
import type { Tensor } from '../../hooks/tensor.ts';
import { dlaFloatsPerToken, engineBytesPerToken, F32, type MemoryPart } from '../common/budget.ts';
import { checkIndex, strOf } from '../common/requests.ts';
import { Index, TokenIdOut } from '../common/schema.ts';

export const TokenRef = z.object({ token: TokenIdOut, str: z.string().nullable() });
export const Position = Index.optional().describe('the position read (negative counts from the end; default -1, the last)');
export const Layer = z.number().int().min(0).describe('a layer (0 ≤ layer < n_layers)');
export const NeuronIndex = z.number().int().min(0).describe('a neuron of the layer (0 ≤ neuron < d_mlp)');

export const tokenRef = (model: HookedTransformer, token: number) => ({ token, str: strOf(model, token) });

/** One prompt's cache of the direct-attribution hook points and logits at one position: what it holds at once. */
export function attributionMemory(model: HookedTransformer, pos: number): MemoryPart[] {
  return [
    { what: `cached activations for attribution, ${pos} tokens × ${dlaFloatsPerToken(model)} floats`, bytes: pos * dlaFloatsPerToken(model) * F32 },
    { what: `onnxruntime working memory for ${pos} tokens`, bytes: pos * engineBytesPerToken(model.cfg, pos) },
    { what: `logits 1 × ${model.cfg.d_vocab} floats`, bytes: model.cfg.d_vocab * F32 },
  ];
}

/** The run attribution reads: dlaHookNames cached, logits at `position` only ([1, 1, d_vocab]). */
export async function attributionRun(model: HookedTransformer, tokens: number[][], position: number) {
  const [logits, raw] = await model.runWithCache(tokens, { namesFilter: dlaHookNames(model.cfg), logitPositions: [[position]] });
  return { logits, cache: withModel(raw, model) };
}

/** logit(target) − logit(vs) from logits [1, 1, d_vocab]. */
export const logitOf = (logits: Tensor, target: number, vs: number | null) => logits.data[target] - (vs === null ? 0 : logits.data[vs]);

export function checkNeuron(model: HookedTransformer, layer: number, neuron: number): void {
  checkIndex('layer', layer, model.cfg.n_layers, 'n_layers');
  checkIndex('neuron', neuron, model.cfg.d_mlp, 'd_mlp');
}
