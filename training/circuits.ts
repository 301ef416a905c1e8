/**
 * Circuit measurements on a HookedTransformer (the workbench API): losses and induction-stripe / previous-token
 * attention on repeated random tokens and repeated sentences, head ablation, IOI logit differences (TransformerLens's
 * 8 prompts and generated ones), and logit-lens accuracy per layer.
 */
import type { HookedTransformer } from '../hooks/HookedTransformer.ts';
import { blockHook } from '../hooks/hookPoints.ts';
import { ablateHeads } from '../hooks/interventions.ts';
import type { InterventionSpec } from '../hooks/interventions.ts';
import { Rng } from '../hooks/random.ts';
import { randomTokens } from '../hooks/datasets/induction.ts';
import { randomIoiPrompt, swapRepeatedName, type IoiPrompt } from '../hooks/datasets/ioi.ts';

/** Every token id but BOS: what TransformerLens draws random tokens from (GPT-2: ids 0–50255). */
export function wholeVocabulary(cfg: { d_vocab: number; bos_token_id: number }): Int32Array {
  const ids: number[] = [];
  for (let t = 0; t < cfg.d_vocab; t++) if (t !== cfg.bos_token_id) ids.push(t);
  return Int32Array.from(ids);
}

/** `n` rows [BOS, r₁ … r_L, r₁ … r_L] with L uniform in [minSpan, maxSpan] and r drawn uniformly from `pool` . */
export function repeatedRows(bos: number, pool: ArrayLike<number>, opts: { n?: number; minSpan?: number; maxSpan?: number; seed?: number } = {}): { rows: number[][]; spans: number[] } {
  const rng = new Rng(opts.seed ?? 0);
  const rows: number[][] = [];
  const spans: number[] = [];
  for (let i = 0; i < (opts.n ?? 50); i++) {
    const L = rng.int(opts.minSpan ?? 20, (opts.maxSpan ?? 40) + 1);
    const r = randomTokens(rng, pool, L);
    rows.push([bos, ...r, ...r]);
    spans.push(L);
  }
  return { rows, spans };
}

export interface RepeatedRowStats {
  /** Mean loss predicting tokens 2 … L of the first copy, and of the second copy (per token, over all rows). */
  first: number;
  second: number;
  /** [layer][head]: mean attention from each second-copy token to the token after its earlier occurrence (the induction stripe). */
  secondCopyStripe: number[][];
  /** [layer][head]: mean attention from each position after BOS to the one before it. */
  previousToken: number[][];
}

/**
 * Losses and second-copy induction-stripe attention on rows [BOS, s, s] (spans[i] = |s| of row i), one forward
 * pass per row (rows differ in length), `interventions` applied.
 */
export async function repeatedRowStats(model: HookedTransformer, rows: readonly number[][], spans: readonly number[], interventions?: InterventionSpec[]): Promise<RepeatedRowStats> {
  const { n_layers, n_heads } = model.cfg;
  const names = Array.from({ length: n_layers }, (_, l) => blockHook(l, 'attn.hook_pattern'));
  let f = 0;
  let s = 0;
  let nf = 0;
  let ns = 0;
  const stripe = Array.from({ length: n_layers }, () => new Array<number>(n_heads).fill(0));
  const previous = Array.from({ length: n_layers }, () => new Array<number>(n_heads).fill(0));
  let nq = 0;
  let np = 0;
  for (let i = 0; i < rows.length; i++) {
    const L = spans[i];
    const T = rows[i].length;
    if (T !== 2 * L + 1) throw new Error(`repeatedRowStats: row ${i} has ${T} tokens; expected BOS + 2 × ${L}`);
    const [per, cache] = await model.runWithCache([rows[i]], { namesFilter: names, returnType: 'loss', lossPerToken: true, interventions });
    const loss = (per as { data: Float32Array }).data; // [1, T - 1]: loss[p] predicts token p + 1
    for (let p = 1; p < L; p++) { f += loss[p]; nf++; }
    for (let p = L + 1; p < 2 * L; p++) { s += loss[p]; ns++; }
    for (let l = 0; l < n_layers; l++) {
      const pat = cache.get(names[l]).data; // [1, head, q, k]
      for (let h = 0; h < n_heads; h++) {
        for (let q = L + 1; q <= 2 * L; q++) stripe[l][h] += pat[(h * T + q) * T + q - L + 1];
        for (let q = 1; q < T; q++) previous[l][h] += pat[(h * T + q) * T + q - 1];
      }
    }
    nq += L;
    np += T - 1;
  }
  return { first: f / nf, second: s / ns, secondCopyStripe: stripe.map((r) => r.map((v) => v / nq)), previousToken: previous.map((r) => r.map((v) => v / np)) };
}

/**
 * Mean loss over the first and second copies of `n` rows [BOS, r, r] with r drawn from `pool` (see repeatedRows).
 */
export async function repeatedTokenLosses(model: HookedTransformer, pool: ArrayLike<number>, opts: { n?: number; minSpan?: number; maxSpan?: number; seed?: number; interventions?: InterventionSpec[] } = {}): Promise<{ first: number; second: number }> {
  const { rows, spans } = repeatedRows(model.cfg.bos_token_id, pool, opts);
  const { first, second } = await repeatedRowStats(model, rows, spans, opts.interventions);
  return { first, second };
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

/**
 * Five natural sentences from held-out Tiny Shakespeare (its last 10 %, never trained on): the first five of 15–30 GPT-2
 * tokens without a speaker's name (sentences split at . ! ?, whitespace collapsed). Repeated ([BOS] s s) they test
 * induction on natural text, where the copied tokens are ordinary words.
 */
export const HELD_OUT_SENTENCES: readonly string[] = [
  'Kate like the hazel-twig Is straight and slender and as brown in hue As hazel nuts and sweeter than the kernels.',
  'O, be thou Dian, and let her be Kate; And then let Kate be chaste and Dian sportful!',
  "'Tis bargain'd 'twixt us twain, being alone, That she shall still be curst in company.",
  'Provide the feast, father, and bid the guests; I will be sure my Katharina shall be fine.',
  'Was it not to refresh the mind of man After his studies or his usual pain?',
];

/** Rows [BOS, s, s] of the held-out sentences (each encoded with a leading space, so both copies are the same tokens). */
export function repeatedSentenceRows(model: HookedTransformer): { rows: number[][]; spans: number[] } {
  const bos = model.cfg.bos_token_id;
  const spans: number[] = [];
  const rows = HELD_OUT_SENTENCES.map((text) => {
    const s = model.tokenizer!.encode(` ${text}`);
    spans.push(s.length);
    return [bos, ...s, ...s];
  });
  return { rows, spans };
}

/** The best head of `grid` [layer][head] among layers ≥ `fromLayer`. */
export function bestHead(grid: number[][], fromLayer = 0): { layer: number; head: number; value: number } {
  let best = { layer: -1, head: -1, value: -Infinity };
  grid.forEach((hs, layer) => hs.forEach((value, head) => { if (layer >= fromLayer && value > best.value) best = { layer, head, value }; }));
  return best;
}

/**
 * A quick look at the embedded model's circuits while it trains: whole-vocabulary repeated random tokens (16 rows,
 * spans 20–40), the five repeated held-out sentences, TransformerLens's 8 IOI prompts. One line.
 */
export async function embeddedProbe(model: HookedTransformer): Promise<string> {
  const { rows, spans } = repeatedRows(model.cfg.bos_token_id, wholeVocabulary(model.cfg), { n: 16, seed: 99 });
  const r = await repeatedRowStats(model, rows, spans);
  const t = repeatedSentenceRows(model);
  const s = await repeatedRowStats(model, t.rows, t.spans);
  const ioi = await tlIoiLogitDiffs(model);
  const f = (x: number) => x.toFixed(2);
  const grid = (g: number[][]) => g.map((hs) => hs.map(f).join(',')).join(' / ');
  const ind = bestHead(r.secondCopyStripe, 1);
  return `vocab repeats ${f(r.first)} → ${f(r.second)} (drop ${f(r.first - r.second)}), stripe ${grid(r.secondCopyStripe)}, best L${ind.layer}H${ind.head}; ` +
    `previous-token ${grid(r.previousToken)}; sentences ${f(s.first)} → ${f(s.second)} (drop ${f(s.first - s.second)}), stripe ${grid(s.secondCopyStripe)}; ` +
    `TL IOI ${ioi.filter((d) => d > 0).length}/8 correct, mean ${f(ioi.reduce((a, b) => a + b, 0) / 8)}`;
}

/**
 * TransformerLens's IOI demo prompts (Main Demo / Exploratory Analysis Demo), verbatim: four name pairs, each in both
 * orders; the answer is the name that is not repeated.
 */
export const TL_IOI_PROMPTS: readonly { prompt: string; correct: string; incorrect: string }[] = [
  { prompt: 'When John and Mary went to the shops, John gave the bag to', correct: ' Mary', incorrect: ' John' },
  { prompt: 'When John and Mary went to the shops, Mary gave the bag to', correct: ' John', incorrect: ' Mary' },
  { prompt: 'When Tom and James went to the park, James gave the ball to', correct: ' Tom', incorrect: ' James' },
  { prompt: 'When Tom and James went to the park, Tom gave the ball to', correct: ' James', incorrect: ' Tom' },
  { prompt: 'When Dan and Sid went to the shops, Sid gave an apple to', correct: ' Dan', incorrect: ' Sid' },
  { prompt: 'When Dan and Sid went to the shops, Dan gave an apple to', correct: ' Sid', incorrect: ' Dan' },
  { prompt: 'After Martin and Amy went to the park, Amy gave a drink to', correct: ' Martin', incorrect: ' Amy' },
  { prompt: 'After Martin and Amy went to the park, Martin gave a drink to', correct: ' Amy', incorrect: ' Martin' },
];

/** Logit differences (correct − incorrect) at the last position of TransformerLens's 8 IOI prompts. */
export async function tlIoiLogitDiffs(model: HookedTransformer): Promise<number[]> {
  const out: number[] = [];
  for (const p of TL_IOI_PROMPTS) {
    const l = await lastLogits(model, p.prompt);
    out.push(l[model.toSingleToken(p.correct)] - l[model.toSingleToken(p.incorrect)]);
  }
  return out;
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
