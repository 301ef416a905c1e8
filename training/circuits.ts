/**
 * Circuit measurements on a HookedTransformer (the workbench API): losses on repeated random tokens,
 * TransformerLens's induction and previous-token head scores, head ablation, IOI logit differences,
 * and logit-lens accuracy per layer.
 */
import type { HookedTransformer } from '../hooks/HookedTransformer.ts';
import { blockHook } from '../hooks/hookPoints.ts';
import { ablateHeads } from '../hooks/interventions.ts';
import type { InterventionSpec } from '../hooks/interventions.ts';
import { Rng } from '../hooks/random.ts';
import { randomTokens } from '../hooks/datasets/induction.ts';
import { randomIoiPrompt, swapRepeatedName, type IoiPrompt } from '../hooks/datasets/ioi.ts';

export interface RepeatLosses {
  /** Mean per-token loss predicting tokens 2 … L of the first copy, and of the second copy. */
  first: number;
  second: number;
}

/**
 * `n` sequences [BOS, r₁ … r_L, r₁ … r_L] with L uniform in [minSpan, maxSpan] and r drawn from `pool`;
 * mean loss over the first copy (predicting its tokens 2 … L) and the second copy (tokens 2 … L).
 */
export async function repeatedTokenLosses(model: HookedTransformer, pool: ArrayLike<number>, opts: { n?: number; minSpan?: number; maxSpan?: number; seed?: number; interventions?: InterventionSpec[] } = {}): Promise<RepeatLosses> {
  const rng = new Rng(opts.seed ?? 0);
  const bos = model.cfg.bos_token_id;
  let f = 0;
  let s = 0;
  let nf = 0;
  let ns = 0;
  for (let i = 0; i < (opts.n ?? 50); i++) {
    const L = rng.int(opts.minSpan ?? 20, (opts.maxSpan ?? 40) + 1);
    const r = randomTokens(rng, pool, L);
    const per = (await model.forward([[bos, ...r, ...r]], { returnType: 'loss', lossPerToken: true, interventions: opts.interventions })) as { data: Float32Array };
    // per[p] = loss predicting token p + 1; token 1 + j is r[j]
    for (let p = 1; p < L; p++) { f += per.data[p]; nf++; }
    for (let p = L + 1; p < 2 * L; p++) { s += per.data[p]; ns++; }
  }
  return { first: f / nf, second: s / ns };
}

export interface HeadScores {
  /** [layer][head] */
  induction: number[][];
  previousToken: number[][];
  /**
   * Mean attention on the stripe key = query − (L − 2): the token two after the previous occurrence (not a
   * TransformerLens score; the embedded model's copying heads attend there, see its model card).
   */
  shiftedInduction: number[][];
}

/**
 * TransformerLens's scores on [BOS, r, r] (span L): induction = mean attention on the stripe
 * key = query − (L − 1) (the token after the previous occurrence); previous token = mean attention
 * from each query q ≥ 1 to q − 1. Averaged over `n` sequences.
 */
export async function headScores(model: HookedTransformer, pool: ArrayLike<number>, opts: { n?: number; span?: number; seed?: number } = {}): Promise<HeadScores> {
  const { n_layers, n_heads } = model.cfg;
  const L = opts.span ?? 30;
  const n = opts.n ?? 10;
  const rng = new Rng(opts.seed ?? 1);
  const bos = model.cfg.bos_token_id;
  const rows = Array.from({ length: n }, () => {
    const r = randomTokens(rng, pool, L);
    return [bos, ...r, ...r];
  });
  const T = 2 * L + 1;
  const names = Array.from({ length: n_layers }, (_, l) => blockHook(l, 'attn.hook_pattern'));
  const [, cache] = await model.runWithCache(rows, { namesFilter: names, returnType: 'none' });
  const induction: number[][] = [];
  const previousToken: number[][] = [];
  const shiftedInduction: number[][] = [];
  for (let l = 0; l < n_layers; l++) {
    const p = cache.get(names[l]).data; // [batch, head, q, k]
    induction.push([]);
    previousToken.push([]);
    shiftedInduction.push([]);
    for (let h = 0; h < n_heads; h++) {
      let ind = 0;
      let indN = 0;
      let prev = 0;
      let prevN = 0;
      let shifted = 0;
      let shiftedN = 0;
      for (let b = 0; b < n; b++) {
        const o = (b * n_heads + h) * T * T;
        for (let q = L - 1; q < T; q++) { ind += p[o + q * T + q - (L - 1)]; indN++; }
        for (let q = L + 1; q < T; q++) { shifted += p[o + q * T + q - (L - 2)]; shiftedN++; }
        for (let q = 1; q < T; q++) { prev += p[o + q * T + q - 1]; prevN++; }
      }
      induction[l].push(ind / indN);
      previousToken[l].push(prev / prevN);
      shiftedInduction[l].push(shifted / shiftedN);
    }
  }
  return { induction, previousToken, shiftedInduction };
}

/** Zero-ablation (at hook_z) of these heads, one intervention per layer. */
export function ablationOf(heads: readonly (readonly [number, number])[]): InterventionSpec[] {
  const byLayer = new Map<number, number[]>();
  for (const [l, h] of heads) byLayer.set(l, [...(byLayer.get(l) ?? []), h]);
  return [...byLayer].map(([l, hs]) => ablateHeads(l, hs));
}

export interface IoiMetrics {
  /** Mean of logit(IO) − logit(S) at the last position. */
  meanLogitDiff: number;
  /** Fraction with logit(IO) > logit(S). */
  accuracy: number;
  /** Fraction where IO is the top-1 prediction. */
  top1: number;
  /** The same prompts with the other name repeated: mean of logit(old IO) − logit(old S) (should be negative) and the fraction whose sign flipped. */
  swappedMeanLogitDiff: number;
  flipRate: number;
}

async function lastLogits(model: HookedTransformer, text: string): Promise<Float32Array> {
  const logits = await model.forward(text);
  const [, pos, V] = logits.shape;
  return logits.data.slice((pos - 1) * V, pos * V);
}

/** IOI logit differences on `n` random prompts over `names` (ABBA and BABA, all templates). */
export async function ioiMetrics(model: HookedTransformer, names: readonly string[], opts: { n?: number; seed?: number } = {}): Promise<IoiMetrics> {
  const rng = new Rng(opts.seed ?? 2);
  const n = opts.n ?? 100;
  let sum = 0;
  let correct = 0;
  let top1 = 0;
  let swappedSum = 0;
  let flipped = 0;
  for (let i = 0; i < n; i++) {
    const p: IoiPrompt = randomIoiPrompt(rng, { names });
    const io = model.toSingleToken(` ${p.io}`);
    const s = model.toSingleToken(` ${p.s}`);
    const l = await lastLogits(model, p.prompt);
    const d = l[io] - l[s];
    sum += d;
    if (d > 0) correct++;
    let best = 0;
    for (let v = 1; v < l.length; v++) if (l[v] > l[best]) best = v;
    if (best === io) top1++;
    const ls = await lastLogits(model, swapRepeatedName(p).prompt);
    const ds = ls[io] - ls[s];
    swappedSum += ds;
    if (Math.sign(ds) === -Math.sign(d) && d !== 0) flipped++;
  }
  return { meanLogitDiff: sum / n, accuracy: correct / n, top1: top1 / n, swappedMeanLogitDiff: swappedSum / n, flipRate: flipped / n };
}

/**
 * Logit lens: top-1 next-token accuracy of the residual stream read through ln_final and W_U after
 * the embeddings and after each layer (accumulatedResid with applyLn, i.e. ln_final recomputed per
 * component); entry 0 = embeddings, entry l + 1 = after block l (the last one = the model's own logits).
 */
export async function logitLensAccuracy(model: HookedTransformer, rows: number[][]): Promise<number[]> {
  const { n_layers, d_model: D } = model.cfg;
  const [, cache] = await model.runWithCache(rows, { returnType: 'none' });
  const stack = cache.accumulatedResid({ layer: n_layers, applyLn: true }); // [n_layers + 1, batch, pos, d_model]
  const B = rows.length;
  const T = rows[0].length;
  const W_Ut = model.transposedWeight('W_U'); // [d_vocab, d_model], no copy
  const bU = model.b_U.data;
  const acc: number[] = [];
  for (let c = 0; c < n_layers + 1; c++) {
    const x = stack.data.subarray(c * B * T * D, (c + 1) * B * T * D);
    // the unembedding's top token per row (ties to the lower id), on the model's onnxruntime kernels
    const { topIds } = await model.kernels.unembedTopK({ data: x, shape: [B * T, D] }, W_Ut, bU, 1); // [B·T, 1]
    let hit = 0;
    let count = 0;
    for (let b = 0; b < B; b++) {
      for (let p = 0; p < T - 1; p++) {
        if (Number(topIds[b * T + p]) === rows[b][p + 1]) hit++;
        count++;
      }
    }
    acc.push(hit / count);
  }
  return acc;
}
