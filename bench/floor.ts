/** The benchmark's floor: GPT-2 as one plain ONNX graph — no hook outputs, weights embedded and prepacked. */
import type { HookedTransformerConfig } from '../hooks/config.ts';
import { buildGpt2Graph } from '../hooks/engine/gpt2Graph.ts';
import { createSession, int64Rows, runSession } from '../hooks/engine/runtime.ts';
import { partitionGraph } from '../hooks/engine/segments.ts';
import type { TransformerWeights } from '../hooks/weights.ts';

export interface Floor {
  forward(tokens: number[][]): Promise<Float32Array>;
  release(): Promise<void>;
}

export async function buildFloor(cfg: HookedTransformerConfig, w: TransformerWeights): Promise<Floor> {
  const graph = buildGpt2Graph(cfg, {
    observed: new Set(),
    interventions: new Set(),
    cuts: new Set(),
    hasAttentionMask: false,
    lnHasWeights: cfg.normalization_type === 'LN',
    logits: true,
    tokenLogprobs: false,
  });
  const arrays = new Map<string, Float32Array>([['W_E', w.W_E], ['W_pos', w.W_pos], ['W_U', w.W_U], ['b_U', w.b_U]]);
  if (w.ln_final) arrays.set('ln_final.w', w.ln_final.w).set('ln_final.b', w.ln_final.b);
  w.blocks.forEach((b, l) => {
    for (const [k, v] of Object.entries(b)) {
      if (v instanceof Float32Array) arrays.set(`blocks.${l}.${k}`, v);
      else if (v) arrays.set(`blocks.${l}.${k}.w`, v.w).set(`blocks.${l}.${k}.b`, v.b);
    }
  });
  const [segment] = partitionGraph(graph.builder, [], new Set(['logits']), new Set(arrays.keys()));
  const session = await createSession(segment.model, { device: 'cpu', threads: 0 }, new Map(segment.external.map((n) => [n, arrays.get(n)!])));
  return {
    async forward(tokens) {
      const out = await runSession(session, { tokens: int64Rows(tokens, 'tokens') });
      return out.logits.data as Float32Array;
    },
    release: () => session.release(),
  };
}
