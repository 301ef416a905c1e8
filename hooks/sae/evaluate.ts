/**
 * SAELens-style evaluation of an SAE on a model over contexts of a corpus: explained variance, L0,
 * dead and dense feature fractions, the feature density histogram, and the CE loss recovered,
 * (loss zero-ablated − loss spliced) / (loss zero-ablated − loss clean). As SAELens's evals with
 * ignore_tokens, positions holding BOS (<|endoftext|>) are left out: kept clean in the spliced and
 * ablated runs, and not counted in any metric.
 */
import type { HookedTransformer } from '../HookedTransformer.ts';
import { saeHook, type HookName, type ModelHookName } from '../hookPoints.ts';
import type { InterventionSpec } from '../interventions.ts';
import { Tensor } from '../tensor.ts';
import { forEachBatch } from './corpus.ts';
import type { Sae } from './Sae.ts';

export interface SaeEvalOptions {
  /** Stop after this many evaluated positions (default: every context given). */
  maxTokens?: number;
  /** Contexts per forward pass (default 16). */
  batchSize?: number;
  /** A feature is dense when it fires on more than this share of tokens (default 0.1). */
  denseThreshold?: number;
  /** Called after each batch with positions evaluated so far and the budget (maxTokens, or null). */
  onProgress?: (done: number, total: number | null) => void;
  signal?: AbortSignal;
}

export interface DensityHistogram {
  /** Bin edges in log10(feature density): bins [edges[i], edges[i+1]). */
  edges: number[];
  counts: number[];
  /** Features that never fired (log10 density −∞), not in any bin. */
  dead: number;
}

export interface SaeEvalResult {
  /** Positions evaluated (BOS left out) and the contexts they came from. */
  tokens: number;
  contexts: number;
  /** 1 − Σ‖x − x̂‖² / Σ‖x − mean x‖² over the evaluated positions. */
  explainedVariance: number;
  /** Mean ‖x − x̂‖² per position. */
  mse: number;
  /** Mean active features per position. */
  l0: number;
  /** Share of features that never fired, and that fired on more than denseThreshold of the positions. */
  deadFraction: number;
  denseFraction: number;
  denseThreshold: number;
  /** Mean next-token loss of the predictions made at evaluated positions. */
  ceLossClean: number;
  ceLossSpliced: number;
  ceLossZeroAblated: number;
  /** (zero-ablated − spliced) / (zero-ablated − clean). */
  ceLossRecovered: number;
  /** Each feature's share of positions on which it fires, [d_sae]. */
  featureDensity: Float32Array;
  densityHistogram: DensityHistogram;
}

/** A histogram of log10(density) over [-8, 0] in quarter decades; features with density 0 counted apart. */
export function densityHistogram(density: ArrayLike<number>): DensityHistogram {
  const edges = Array.from({ length: 33 }, (_, i) => -8 + i * 0.25);
  const counts = new Array<number>(32).fill(0);
  let dead = 0;
  for (let f = 0; f < density.length; f++) {
    if (density[f] <= 0) {
      dead++;
      continue;
    }
    const bin = Math.min(31, Math.max(0, Math.floor((Math.log10(density[f]) + 8) / 0.25)));
    counts[bin]++;
  }
  return { edges, counts, dead };
}

/** Mean of loss[b][p] over the predictions made at positions p whose token is not BOS. */
function meanLoss(loss: Tensor, tokens: number[][], bos: number): { sum: number; n: number } {
  const [batch, preds] = loss.shape;
  let sum = 0;
  let n = 0;
  for (let b = 0; b < batch; b++) {
    for (let p = 0; p < preds; p++) {
      if (tokens[b][p] === bos) continue;
      sum += loss.data[b * preds + p];
      n++;
    }
  }
  return { sum, n };
}

/** Evaluates `sae` spliced into `model` on `contexts` (token rows of one length, BOS first as the SAE was trained). */
export async function evaluateSae(
  model: HookedTransformer,
  sae: Sae,
  contexts: AsyncIterable<number[]> | Iterable<number[]>,
  opts: SaeEvalOptions = {},
): Promise<SaeEvalResult> {
  const hook = sae.cfg.hook_name as ModelHookName;
  const bos = model.tokenizer?.bosTokenId ?? model.cfg.eos_token_id;
  const batchSize = opts.batchSize ?? 16;
  const { d_sae } = sae.cfg;
  const actsName = saeHook(hook, 'hook_sae_acts_post');
  const errorName = saeHook(hook, 'hook_sae_error');
  const fires = new Float64Array(d_sae);
  let sumX: Float64Array | null = null;
  let sumSq = 0;
  let sse = 0;
  let active = 0;
  let positions = 0;
  let nContexts = 0;
  const ce = { clean: { sum: 0, n: 0 }, spliced: { sum: 0, n: 0 }, ablated: { sum: 0, n: 0 } };
  const add = (into: { sum: number; n: number }, v: { sum: number; n: number }) => { into.sum += v.sum; into.n += v.n; };

  const runBatch = async (batch: number[][]) => {
    const pos = batch[0].length;
    // One run: the clean loss (the error term makes the spliced run the clean run), x, the features, and x − x̂ (the error).
    const [clean, cache] = await model.runWithCacheWithSaes(batch, { saes: sae, useErrorTerm: true, returnType: 'loss', lossPerToken: true, namesFilter: [hook, actsName, errorName] as HookName[] });
    const x = cache.get(hook);
    const acts = cache.get(actsName).data;
    const error = cache.get(errorName).data;
    const width = x.size / (batch.length * pos);
    sumX ??= new Float64Array(width);
    // Spliced: x̂ everywhere but at BOS (the error term kept there only); zero-ablated likewise.
    const notBos = new Tensor(Float32Array.from(batch.flat(), (t) => (t === bos ? 0 : 1)), [batch.length, pos, ...x.shape.slice(2).map(() => 1)]);
    const keepBosError: InterventionSpec = { hook: errorName, mask: notBos, value: 0 };
    const spliced = await model.runWithSaes(batch, { saes: sae, useErrorTerm: true, interventions: [keepBosError], returnType: 'loss', lossPerToken: true });
    const ablated = await model.forward(batch, { interventions: [{ hook, mask: notBos, value: 0 }], returnType: 'loss', lossPerToken: true });
    add(ce.clean, meanLoss(clean as Tensor, batch, bos));
    add(ce.spliced, meanLoss(spliced as Tensor, batch, bos));
    add(ce.ablated, meanLoss(ablated as Tensor, batch, bos));
    for (let b = 0; b < batch.length; b++) {
      for (let p = 0; p < pos; p++) {
        if (batch[b][p] === bos) continue;
        const r = b * pos + p;
        for (let i = 0; i < width; i++) {
          const v = x.data[r * width + i];
          sumX![i] += v;
          sumSq += v * v;
          sse += error[r * width + i] ** 2;
        }
        for (let f = 0; f < d_sae; f++) {
          if (acts[r * d_sae + f] > 0) {
            fires[f]++;
            active++;
          }
        }
        positions++;
      }
    }
    nContexts += batch.length;
    opts.onProgress?.(positions, opts.maxTokens ?? null);
  };

  await forEachBatch(contexts, batchSize, runBatch, { done: () => opts.maxTokens !== undefined && positions >= opts.maxTokens, signal: opts.signal, what: 'evaluation' });
  if (positions === 0 || ce.clean.n === 0) throw new Error('evaluateSae: no position to evaluate (give contexts of at least two tokens besides BOS)');

  const mean = sumX!.map((v) => v / positions);
  const sst = sumSq - positions * mean.reduce((a, v) => a + v * v, 0);
  const featureDensity = Float32Array.from(fires, (c) => c / positions);
  const denseThreshold = opts.denseThreshold ?? 0.1;
  const cleanLoss = ce.clean.sum / ce.clean.n;
  const splicedLoss = ce.spliced.sum / ce.spliced.n;
  const ablatedLoss = ce.ablated.sum / ce.ablated.n;
  return {
    tokens: positions,
    contexts: nContexts,
    explainedVariance: 1 - sse / sst,
    mse: sse / positions,
    l0: active / positions,
    deadFraction: featureDensity.filter((d) => d === 0).length / d_sae,
    denseFraction: featureDensity.filter((d) => d > denseThreshold).length / d_sae,
    denseThreshold,
    ceLossClean: cleanLoss,
    ceLossSpliced: splicedLoss,
    ceLossZeroAblated: ablatedLoss,
    ceLossRecovered: (ablatedLoss - splicedLoss) / (ablatedLoss - cleanLoss),
    featureDensity,
    densityHistogram: densityHistogram(featureDensity),
  };
}
