/**
 * Input saliency: how much each input token's embedding contributes to a metric, from gradients at
 * hook_embed (the token embeddings; the positional embeddings are left as they are).
 * - `grad_x_input` (Ecco's gradient × input, signed): embedding · ∂metric/∂embedding, one backward pass.
 * - `integrated_gradients` (Sundararajan et al. 2017): (embedding − baseline) · the mean of
 *   ∂metric/∂embedding along the straight path from the baseline to the embedding (midpoint rule,
 *   `steps` points, run as batched copies of the prompts). Complete: the scores add up to
 *   metric(input) − metric(baseline), up to the rule's error.
 */
import type { DifferentiableMetric, MetricGradient } from '../gradients.ts';
import type { HookedTransformer, ModelInput } from '../HookedTransformer.ts';
import type { InterventionSpec } from '../interventions.ts';
import { Tensor } from '../tensor.ts';
import { throwIfAborted } from './batchedRuns.ts';

export type SaliencyMethod = 'grad_x_input' | 'integrated_gradients';

export interface SaliencyOptions {
  method?: SaliencyMethod;
  /** Integrated gradients: points on the path (default 64). */
  steps?: number;
  /** Integrated gradients: the baseline embedding — 'zero' (default), or a token id whose embedding stands at every position. */
  baseline?: 'zero' | number;
  /** [batch, pos] 0/1 attention mask of the prompts (padded batches). */
  attentionMask?: readonly (readonly number[])[];
  /** Integrated gradients: rows per forward + backward pass (copies of the prompts; default 32). */
  rowsPerPass?: number;
  onProgress?: (done: number, total: number) => void;
  signal?: AbortSignal;
}

export interface SaliencyResult {
  method: SaliencyMethod;
  /** Integrated gradients' points on the path (1 for grad_x_input). */
  steps: number;
  /** Per token, the sum of its attributions over d_model: [batch, pos]. */
  scores: Tensor;
  /** The attributions of each embedding dimension: [batch, pos, d_model]. */
  attributions: Tensor;
  /** metric(input). */
  value: number;
  /** Integrated gradients: metric(baseline); null for grad_x_input. */
  baselineValue: number | null;
}

/** The metric of `copies` stacked copies of a batch of `batch` prompts: the sum of the metric of each copy (so each copy's rows get that copy's own gradient). */
function perCopy(metric: DifferentiableMetric, batch: number, copies: number): DifferentiableMetric {
  const each = (logits: Tensor, fn: (l: Tensor) => MetricGradient): MetricGradient => {
    let value = 0;
    const grads: Tensor[] = [];
    for (let c = 0; c < copies; c++) {
      const out = fn(logits.slice(0, c * batch, (c + 1) * batch));
      value += out.value;
      grads.push(out.gradient);
    }
    return { value, gradient: Tensor.cat(grads, 0) };
  };
  const positions = metric.positions === undefined || typeof metric.positions === 'number' ? metric.positions : Array.from({ length: copies }, () => [...(metric.positions as readonly number[])]).flat();
  const at = metric.atPositionsValueAndGrad;
  return Object.assign((logits: Tensor) => each(logits, metric.valueAndGrad).value, {
    valueAndGrad: (l: Tensor) => each(l, metric.valueAndGrad),
    ...(positions !== undefined && at ? { positions, atPositionsValueAndGrad: (l: Tensor) => each(l, at) } : {}),
  });
}

/** Σ over d_model: [batch, pos, d_model] -> [batch, pos]. */
const perToken = (a: Tensor) => a.sum(-1);

/**
 * Gradient × input or integrated gradients of `metric` (one that gives its gradient: logitDiffMetric,
 * tokenLogprobMetric, lossMetric, …) with respect to each input token's embedding (hook_embed).
 */
export async function inputSaliency(model: HookedTransformer, input: ModelInput, metric: DifferentiableMetric, opts: SaliencyOptions = {}): Promise<SaliencyResult> {
  const method = opts.method ?? 'grad_x_input';
  if (method !== 'grad_x_input' && method !== 'integrated_gradients') throw new Error(`saliency: method must be 'grad_x_input' or 'integrated_gradients'; got '${String(method)}'`);
  const { tokens, attentionMask } = model.prepareInput(input, { attentionMask: opts.attentionMask });
  const maskOpt = attentionMask ? { attentionMask } : {};
  const [, cache] = await model.runWithCache(tokens, { returnType: 'none', inclBwd: true, backwardFrom: metric, namesFilter: ['hook_embed'], ...maskOpt });
  const embed = cache.get('hook_embed'); // [batch, pos, d_model]
  if (method === 'grad_x_input') {
    const attributions = embed.mul(cache.get('hook_embed_grad'));
    return { method, steps: 1, scores: perToken(attributions), attributions, value: cache.backwardValue!, baselineValue: null };
  }

  const steps = opts.steps ?? 64;
  if (!Number.isInteger(steps) || steps < 1 || steps > 4096) throw new Error(`saliency: steps must be an integer in 1…4096; got ${steps}`);
  const batch = tokens.length;
  const baseline = await baselineEmbedding(model, tokens, embed, opts.baseline ?? 'zero', maskOpt);
  const delta = embed.sub(baseline); // [batch, pos, d_model]
  const copiesPerPass = Math.max(1, Math.floor((opts.rowsPerPass ?? 32) / batch));
  const gradSum = Tensor.zeros(embed.shape); // Σ over the path's points of ∂metric/∂embedding
  for (let first = 0; first < steps; first += copiesPerPass) {
    throwIfAborted(opts.signal);
    const copies = Math.min(copiesPerPass, steps - first);
    // The midpoints α = (i + ½) / steps of this pass's copies: embedding = baseline + α · delta.
    const path = Tensor.cat(Array.from({ length: copies }, (_, c) => baseline.add(delta.mul((first + c + 0.5) / steps))), 0);
    const interventions: InterventionSpec[] = [{ hook: 'hook_embed', value: path }];
    const tiled = Array.from({ length: copies }, () => tokens).flat();
    const tiledMask = attentionMask ? Array.from({ length: copies }, () => attentionMask).flat() : undefined;
    const [, pass] = await model.runWithCache(tiled, {
      returnType: 'none', inclBwd: true, backwardFrom: perCopy(metric, batch, copies), namesFilter: ['hook_embed'], interventions,
      ...(tiledMask ? { attentionMask: tiledMask } : {}),
    });
    const g = pass.get('hook_embed_grad').data; // [copies · batch, pos, d_model]
    const n = gradSum.data.length;
    for (let i = 0; i < g.length; i++) gradSum.data[i % n] += g[i];
    opts.onProgress?.(Math.min(first + copies, steps), steps);
  }
  const baselineValue = metric(await model.forward(tokens, { interventions: [{ hook: 'hook_embed', value: baseline }], ...maskOpt }));
  const attributions = delta.mul(gradSum.div(steps));
  return { method, steps, scores: perToken(attributions), attributions, value: cache.backwardValue!, baselineValue };
}

/** The baseline's embedding [batch, pos, d_model]: zeros, or the token's embedding at every position. */
async function baselineEmbedding(
  model: HookedTransformer, tokens: number[][], embed: Tensor, baseline: 'zero' | number, maskOpt: { attentionMask?: number[][] },
): Promise<Tensor> {
  if (baseline === 'zero') return Tensor.zeros(embed.shape);
  if (!Number.isInteger(baseline) || baseline < 0 || baseline >= model.cfg.d_vocab) {
    throw new Error(`saliency: baseline must be 'zero' or a token id in [0, ${model.cfg.d_vocab}); got ${String(baseline)}`);
  }
  const [, cache] = await model.runWithCache(tokens.map((row) => row.map(() => baseline)), { returnType: 'none', namesFilter: ['hook_embed'], ...maskOpt });
  return cache.get('hook_embed');
}
