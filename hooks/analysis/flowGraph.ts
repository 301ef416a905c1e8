/**
 * The information-flow graph's shape (nodes, weighted edges) and its pruning by a threshold, without any model code,
 * so the dashboard re-prunes a graph it holds (its threshold slider) with the library's own rule.
 *
 * Node ids follow the LLM Transparency Tool's: `X0_{t}` token t's embedding (hook_embed + hook_pos_embed), `A{l}_{t}`
 * the residual stream after layer l's attention (resid_mid), `M{l}_{t}` layer l's MLP, `I{l}_{t}` the residual stream
 * after layer l (resid_post); and `H{l}.{h}_{t}` head h of layer l writing into position t.
 */

export type FlowNodeKind = 'embed' | 'head' | 'resid_mid' | 'mlp' | 'resid_post';

export interface FlowNode {
  id: string;
  kind: FlowNodeKind;
  /** The token position the node belongs to (a head node: the position it writes into). */
  position: number;
  /** Absent for embeddings. */
  layer?: number;
  head?: number;
}

/**
 * `residual`: the residual stream carried on (I{l-1}/X0 → A{l}, A{l} → I{l}); `attention`: a source token's
 * representation read by a head (I{l-1}_j / X0_j → H{l}.{h}_i); `head`: the head's output into the residual stream
 * (H{l}.{h}_i → A{l}_i); `mlp`: into and out of the MLP (A{l} → M{l} → I{l}, both with the MLP's weight).
 */
export type FlowEdgeKind = 'residual' | 'attention' | 'head' | 'mlp';

export interface FlowEdge {
  from: string;
  to: string;
  kind: FlowEdgeKind;
  /** Its importance in (0, 1]: the share of the target representation it accounts for (see informationFlow.ts). */
  weight: number;
}

export interface FlowGraph {
  /** The prediction's node: I{n_layers-1}_{position}. */
  output: string;
  position: number;
  /** Edges kept weigh more than this. */
  threshold: number;
  nodes: FlowNode[];
  edges: FlowEdge[];
}

/** The node id of a kind, layer, position (and head). */
export function flowNodeId(kind: FlowNodeKind, position: number, layer?: number, head?: number): string {
  switch (kind) {
    case 'embed': return `X0_${position}`;
    case 'resid_mid': return `A${layer}_${position}`;
    case 'mlp': return `M${layer}_${position}`;
    case 'resid_post': return `I${layer}_${position}`;
    case 'head': return `H${layer}.${head}_${position}`;
  }
}

/**
 * The routes of `graph` at a higher threshold: the edges weighing more than `threshold` that lead to the output
 * through such edges (the paper's top-down rule), and their nodes. Pruning a graph built at threshold t at t' ≥ t gives
 * the graph built at t'.
 */
export function pruneFlowGraph(graph: FlowGraph, threshold: number): FlowGraph {
  if (!(threshold >= graph.threshold)) {
    throw new Error(`pruneFlowGraph: the graph holds the edges above ${graph.threshold}; prune at that or higher (got ${threshold}), or build it again at ${threshold}`);
  }
  const into = new Map<string, FlowEdge[]>();
  for (const e of graph.edges) if (e.weight > threshold) (into.get(e.to) ?? into.set(e.to, []).get(e.to)!).push(e);
  const reached = new Set([graph.output]);
  const kept: FlowEdge[] = [];
  const stack = [graph.output];
  while (stack.length) {
    const id = stack.pop()!;
    for (const e of into.get(id) ?? []) {
      kept.push(e);
      if (!reached.has(e.from)) {
        reached.add(e.from);
        stack.push(e.from);
      }
    }
  }
  const keptSet = new Set(kept);
  return {
    ...graph,
    threshold,
    nodes: graph.nodes.filter((n) => reached.has(n.id)),
    edges: graph.edges.filter((e) => keptSet.has(e)),
  };
}
