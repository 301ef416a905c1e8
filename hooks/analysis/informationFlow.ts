/**
 * Information-flow routes (Ferrando & Voita 2024, "Information Flow Routes: Automatically Interpreting Language Models
 * at Scale"; the LLM Transparency Tool's contribution graph): the graph of the representations a prediction is built
 * from, traced top-down from the prediction and pruned by a threshold, from one forward pass.
 *
 * Each representation is a sum of parts, and each part's importance is its proximity to the sum (ALTI's measure):
 *   importance(part, whole) = max(0, ‖whole‖₁ − ‖whole − part‖₁), normalised over the parts to sum to 1.
 * - After an MLP: resid_post[l, i] = resid_mid[l, i] + mlp_out[l, i]; the parts are the residual and the MLP.
 * - After attention: resid_mid[l, i] = resid_pre[l, i] + Σ_h Σ_{j≤i} α^h_{i,j} · v^h_j W_O^h + b_O; the parts are the
 *   residual and each (head, source token) term — v includes b_V, as TransformerLens's hook_v does; b_O is in the whole
 *   but is not a part, as in the LLM Transparency Tool.
 * Edges (flowGraph.ts): residual and MLP edges carry their part's importance; a head h of layer l reading token j for
 * position i is two edges: X/I_j → H{l}.{h}_i with the importance of that (head, token) term, and H{l}.{h}_i → A{l}_i with
 * the head's total over its source tokens. Heads are kept apart (the LLM Transparency Tool sums the terms over heads
 * before pruning, so it keeps a token-to-token edge no single head carries). An edge is kept when its importance is
 * above the threshold and its target is kept, starting from the prediction's node; a kept head whose every source term
 * is below the threshold is a node without incoming edges (it reads from many tokens, none much).
 */
import type { ActivationCache } from '../ActivationCache.ts';
import type { HookedTransformer, ModelInput } from '../HookedTransformer.ts';
import { blockHook, type HookName } from '../hookPoints.ts';
import type { Tensor } from '../tensor.ts';
import { withModel } from './cache.ts';
import { flowNodeId, type FlowEdge, type FlowGraph, type FlowNode, type FlowNodeKind } from './flowGraph.ts';

export interface InformationFlowOptions {
  /** The predicting position (negatives from the end); default -1. */
  position?: number;
  /** Edges kept weigh more than this, in [0, 1); default 0.04 (the LLM Transparency Tool's default). */
  threshold?: number;
  /** The batch row of the cache (default 0). */
  batchIndex?: number;
  /** Called after each layer (from the last down), e.g. to report progress or stop a cancelled job. */
  onLayer?: (done: number, total: number) => void;
}

/** The hook points the graph reads: each layer's resid_pre, resid_mid, resid_post, mlp_out, v and pattern. */
export function informationFlowHookNames(cfg: { n_layers: number }): HookName[] {
  const names: HookName[] = [];
  for (let l = 0; l < cfg.n_layers; l++) {
    names.push(
      blockHook(l, 'hook_resid_pre'), blockHook(l, 'attn.hook_v'), blockHook(l, 'attn.hook_pattern'),
      blockHook(l, 'hook_resid_mid'), blockHook(l, 'hook_mlp_out'), blockHook(l, 'hook_resid_post'),
    );
  }
  return names;
}

/** ‖y‖₁ − ‖y − scale · x‖₁, floored at 0: the proximity of the part scale · x to the whole y (both [n]). */
function proximity(y: Float32Array, yNorm: number, x: Float32Array, scale = 1): number {
  let dist = 0;
  for (let d = 0; d < y.length; d++) dist += Math.abs(y[d] - scale * x[d]);
  return Math.max(0, yNorm - dist);
}

function l1(y: Float32Array): number {
  let s = 0;
  for (let d = 0; d < y.length; d++) s += Math.abs(y[d]);
  return s;
}

/**
 * Each head's value vectors through its W_O, v^h_j · W_O^h for j in 0..upTo and every head: [upTo + 1, n_heads, d_model]
 * (W_O read as stored, [d_model, n_heads · d_head]).
 */
function headValues(cache: ActivationCache, layer: number, b: number, upTo: number): Float32Array {
  const { n_heads, d_head, d_model } = cache.model!.cfg;
  const Hd = n_heads * d_head;
  const v = cache.get(blockHook(layer, 'attn.hook_v')); // [batch, pos, head, d_head]
  const pos = v.shape[1];
  const W_Ot = cache.model!.weights.matrix('W_O', layer);
  const out = new Float32Array((upTo + 1) * n_heads * d_model);
  for (let j = 0; j <= upTo; j++) {
    for (let h = 0; h < n_heads; h++) {
      const vo = ((b * pos + j) * n_heads + h) * d_head;
      const o = (j * n_heads + h) * d_model;
      for (let d = 0; d < d_model; d++) {
        const w = d * Hd + h * d_head;
        let acc = 0;
        for (let e = 0; e < d_head; e++) acc += v.data[vo + e] * W_Ot[w + e];
        out[o + d] = acc;
      }
    }
  }
  return out;
}

/**
 * The information-flow graph of the prediction at `position`, from a cache holding informationFlowHookNames (batch
 * dim kept), pruned at `threshold` top-down: only the representations that reach the prediction are computed.
 */
export function informationFlowFromCache(cache: ActivationCache, opts: InformationFlowOptions = {}): FlowGraph {
  const model = cache.model;
  if (!model) throw new Error('informationFlowFromCache: the cache has no model; use a cache from model.runWithCache');
  if (!cache.hasBatchDim) throw new Error('informationFlowFromCache: the cache must keep its batch dim');
  const { n_layers, n_heads, d_model } = model.cfg;
  const b = opts.batchIndex ?? 0;
  const first = cache.get(blockHook(0, 'hook_resid_pre')); // [batch, pos, d_model]
  const [batch, pos] = first.shape;
  if (!Number.isInteger(b) || b < 0 || b >= batch) throw new Error(`informationFlow: batch row ${b} is out of range for ${batch} rows`);
  const p = (opts.position ?? -1) < 0 ? (opts.position ?? -1) + pos : (opts.position ?? -1);
  if (!Number.isInteger(p) || p < 0 || p >= pos) throw new Error(`informationFlow: position ${opts.position} is out of range for ${pos} positions (allowed ${-pos}..${pos - 1})`);
  const threshold = opts.threshold ?? 0.04;
  if (!(threshold >= 0 && threshold < 1)) throw new Error(`informationFlow: threshold ${threshold} must be in [0, 1)`);

  const nodes = new Map<string, FlowNode>();
  const edges: FlowEdge[] = [];
  const node = (kind: FlowNodeKind, position: number, layer?: number, head?: number): string => {
    const id = flowNodeId(kind, position, layer, head);
    if (!nodes.has(id)) nodes.set(id, { id, kind, position, ...(layer === undefined ? {} : { layer }), ...(head === undefined ? {} : { head }) });
    return id;
  };
  /** Row (b, t) of an activation [batch, pos, d_model]. */
  const row = (t: Tensor, i: number) => t.data.subarray((b * pos + i) * d_model, (b * pos + i + 1) * d_model);

  const output = node('resid_post', p, n_layers - 1);
  let reachedPost = [p]; // positions whose I{l} node is in the graph
  for (let l = n_layers - 1; l >= 0; l--) {
    const residPre = cache.get(blockHook(l, 'hook_resid_pre'));
    const residMid = cache.get(blockHook(l, 'hook_resid_mid'));
    const residPost = cache.get(blockHook(l, 'hook_resid_post'));
    const mlpOut = cache.get(blockHook(l, 'hook_mlp_out'));
    // After the MLP: resid_post = resid_mid + mlp_out.
    const reachedMid = new Set<number>();
    for (const t of reachedPost) {
      const y = row(residPost, t);
      const yNorm = l1(y);
      const rawMlp = proximity(y, yNorm, row(mlpOut, t));
      const rawRes = proximity(y, yNorm, row(residMid, t));
      const sum = rawMlp + rawRes;
      if (sum === 0) continue;
      const I = flowNodeId('resid_post', t, l);
      if (rawMlp / sum > threshold) {
        const A = node('resid_mid', t, l);
        const M = node('mlp', t, l);
        edges.push({ from: A, to: M, kind: 'mlp', weight: rawMlp / sum }, { from: M, to: I, kind: 'mlp', weight: rawMlp / sum });
        reachedMid.add(t);
      }
      if (rawRes / sum > threshold) {
        edges.push({ from: node('resid_mid', t, l), to: I, kind: 'residual', weight: rawRes / sum });
        reachedMid.add(t);
      }
    }
    // After attention: resid_mid = resid_pre + Σ_h Σ_j α^h_{t,j} v^h_j W_O^h + b_O.
    const next = new Set<number>();
    const mids = [...reachedMid].sort((x, y) => x - y);
    if (mids.length) {
      const values = headValues(cache, l, b, mids[mids.length - 1]); // [j, head, d_model]
      const pattern = cache.get(blockHook(l, 'attn.hook_pattern')); // [batch, head, q, k]
      const source = (j: number) => (l === 0 ? node('embed', j) : node('resid_post', j, l - 1));
      for (const t of mids) {
        const y = row(residMid, t);
        const yNorm = l1(y);
        const raw = new Float64Array((t + 1) * n_heads); // [j, head]
        let sum = 0;
        for (let j = 0; j <= t; j++) {
          for (let h = 0; h < n_heads; h++) {
            const alpha = pattern.data[((b * n_heads + h) * pos + t) * pos + j];
            const o = (j * n_heads + h) * d_model;
            const r = alpha === 0 ? 0 : proximity(y, yNorm, values.subarray(o, o + d_model), alpha);
            raw[j * n_heads + h] = r;
            sum += r;
          }
        }
        const rawRes = proximity(y, yNorm, row(residPre, t));
        sum += rawRes;
        if (sum === 0) continue;
        const A = flowNodeId('resid_mid', t, l);
        if (rawRes / sum > threshold) {
          edges.push({ from: source(t), to: A, kind: 'residual', weight: rawRes / sum });
          next.add(t);
        }
        for (let h = 0; h < n_heads; h++) {
          let total = 0;
          for (let j = 0; j <= t; j++) total += raw[j * n_heads + h];
          if (total / sum <= threshold) continue;
          const H = node('head', t, l, h);
          edges.push({ from: H, to: A, kind: 'head', weight: total / sum });
          for (let j = 0; j <= t; j++) {
            const w = raw[j * n_heads + h] / sum;
            if (w > threshold) {
              edges.push({ from: source(j), to: H, kind: 'attention', weight: w });
              next.add(j);
            }
          }
        }
      }
    }
    reachedPost = [...next].sort((x, y) => x - y);
    opts.onLayer?.(n_layers - l, n_layers);
  }
  return { output, position: p, threshold, nodes: [...nodes.values()], edges };
}

/** Runs the model on one prompt and builds the information-flow graph of its prediction at `position`. */
export async function informationFlow(model: HookedTransformer, input: ModelInput, opts: InformationFlowOptions & { prependBos?: boolean } = {}): Promise<FlowGraph & { tokens: number[] }> {
  const { tokens } = model.prepareInput(input, { prependBos: opts.prependBos });
  if (tokens.length !== 1) throw new Error(`informationFlow: give one prompt; got ${tokens.length}`);
  const [, raw] = await model.runWithCache(tokens, { namesFilter: informationFlowHookNames(model.cfg), returnType: 'none' });
  return { tokens: tokens[0], ...informationFlowFromCache(withModel(raw, model), opts) };
}
