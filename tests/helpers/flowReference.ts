/**
 * The information-flow graph computed independently of the library, for tests: every edge weight of every layer and
 * position from the reference forward's activations and the model's raw weights (float64; the whole graph, as the LLM
 * Transparency Tool builds it, heads kept apart), then pruned top-down by a plain depth-first search.
 */
import type { HookedTransformerConfig } from '../../hooks/config.ts';
import { blockHook, type HookName } from '../../hooks/hookPoints.ts';
import { referenceForward } from '../../hooks/reference.ts';
import type { TransformerWeights } from '../../hooks/weights.ts';

export interface ReferenceEdge {
  from: string;
  to: string;
  weight: number;
}

/** Every edge of the whole graph of `tokens` (one prompt). */
export function referenceFlowEdges(cfg: HookedTransformerConfig, w: TransformerWeights, tokens: number[]): ReferenceEdge[] {
  const { n_layers, n_heads, d_head, d_model } = cfg;
  const { cache } = referenceForward(cfg, w, [tokens]);
  const n = tokens.length;
  const vec = (name: HookName, i: number) => Array.from({ length: d_model }, (_v, d) => cache.get(name)!.get(0, i, d));
  const L1 = (x: number[]) => x.reduce((a, b) => a + Math.abs(b), 0);
  /** The parts' normalised proximities to the whole: max(0, ‖y‖₁ − ‖y − x‖₁) / Σ. */
  const shares = (y: number[], parts: number[][]) => {
    const raw = parts.map((x) => Math.max(0, L1(y) - L1(y.map((v, d) => v - x[d]))));
    const s = raw.reduce((a, b) => a + b, 0);
    return raw.map((r) => (s > 0 ? r / s : 0));
  };
  const edges: ReferenceEdge[] = [];
  for (let l = 0; l < n_layers; l++) {
    const src = (j: number) => (l === 0 ? `X0_${j}` : `I${l - 1}_${j}`);
    const v = cache.get(blockHook(l, 'attn.hook_v'))!; // [1, pos, head, d_head]
    const pattern = cache.get(blockHook(l, 'attn.hook_pattern'))!; // [1, head, q, k]
    const W_O = w.blocks[l].W_O; // [head · d_head, d_model]
    for (let i = 0; i < n; i++) {
      const parts: number[][] = [];
      const keys: [number, number][] = [];
      for (let j = 0; j <= i; j++) {
        for (let h = 0; h < n_heads; h++) {
          const a = pattern.get(0, h, i, j);
          parts.push(Array.from({ length: d_model }, (_x, d) => {
            let s = 0;
            for (let e = 0; e < d_head; e++) s += v.get(0, j, h, e) * W_O[(h * d_head + e) * d_model + d];
            return a * s;
          }));
          keys.push([j, h]);
        }
      }
      parts.push(vec(blockHook(l, 'hook_resid_pre'), i));
      const c = shares(vec(blockHook(l, 'hook_resid_mid'), i), parts);
      edges.push({ from: src(i), to: `A${l}_${i}`, weight: c[c.length - 1] });
      for (let h = 0; h < n_heads; h++) {
        let total = 0;
        keys.forEach(([j, hh], k) => {
          if (hh !== h) return;
          total += c[k];
          edges.push({ from: src(j), to: `H${l}.${h}_${i}`, weight: c[k] });
        });
        edges.push({ from: `H${l}.${h}_${i}`, to: `A${l}_${i}`, weight: total });
      }
      const [cm, cr] = shares(vec(blockHook(l, 'hook_resid_post'), i), [vec(blockHook(l, 'hook_mlp_out'), i), vec(blockHook(l, 'hook_resid_mid'), i)]);
      edges.push({ from: `A${l}_${i}`, to: `M${l}_${i}`, weight: cm }, { from: `M${l}_${i}`, to: `I${l}_${i}`, weight: cm });
      edges.push({ from: `A${l}_${i}`, to: `I${l}_${i}`, weight: cr });
    }
  }
  return edges;
}

/** Depth-first from `output` over edges weighing more than `threshold`: the edges reached, "from->to" → weight. */
export function pruneReference(edges: readonly ReferenceEdge[], output: string, threshold: number): Map<string, number> {
  const into = new Map<string, ReferenceEdge[]>();
  for (const e of edges) (into.get(e.to) ?? into.set(e.to, []).get(e.to)!).push(e);
  const kept = new Map<string, number>();
  const visit = (node: string) => {
    for (const e of into.get(node) ?? []) {
      if (e.weight <= threshold) continue;
      const key = `${e.from}->${e.to}`;
      if (kept.has(key)) continue;
      kept.set(key, e.weight);
      visit(e.from);
    }
  };
  visit(output);
  return kept;
}
