/**
 * Direct logit attribution: how much each head, layer output, neuron, embedding and bias writes along a
 * logit-difference direction W_U[:, correct] − W_U[:, incorrect], through the cached ln_final scale
 * (TransformerLens's logit_attrs with apply_ln). Computed analytically per component, no [component,
 * batch, pos, d_model] stack. On a model with folded LayerNorm (the default processing) the parts sum
 * to the logit difference minus the b_U difference (given as `unembedBias`).
 */
import type { ActivationCache, CacheModel } from '../ActivationCache.ts';
import { withModel } from './cache.ts';
import type { HookedTransformer, ModelInput } from '../HookedTransformer.ts';
import { blockHook, type HookName } from '../hookPoints.ts';
import { Tensor } from '../tensor.ts';
import { logitDiffs } from './metrics.ts';

export interface DlaOptions {
  /** Correct and incorrect answer token per prompt (or one for all). */
  correct: number | readonly number[];
  incorrect: number | readonly number[];
  /** Position read per prompt (or one for all; negatives from the end). Default -1. */
  positions?: number | readonly number[];
  prependBos?: boolean;
  attentionMask?: readonly (readonly number[])[];
}

export interface DlaResult {
  /** The model's logit difference per prompt [batch] (from its logits). */
  logitDiff: Tensor;
  /** Per-prompt attributions; mean over the batch is in `mean`. */
  heads: Tensor; // [batch, n_layers, n_heads]
  /** Labels and values [batch, component] of embed, pos_embed, L_attn_out, L_mlp_out (TL decompose_resid order). */
  layerLabels: string[];
  layers: Tensor; // [batch, 2 + 2·n_layers]
  neurons: Tensor; // [batch, n_layers, d_mlp]
  /** Everything in the final residual stream that is not a head: embeds, MLPs and biases [batch]. */
  headRemainder: Tensor;
  /** b_U[correct] − b_U[incorrect] [batch] (not part of the residual stream). */
  unembedBias: Tensor;
  /** Means over the batch: heads [n_layers, n_heads], layers [component], neurons [n_layers, d_mlp]. */
  mean: { logitDiff: number; heads: Tensor; layers: Tensor; neurons: Tensor; headRemainder: number };
}

function perPrompt(v: number | readonly number[], batch: number, what: string): number[] {
  if (typeof v === 'number') return new Array<number>(batch).fill(v);
  if (v.length !== batch) throw new Error(`directLogitAttribution: ${what} has ${v.length} entries for ${batch} prompts`);
  return [...v];
}

/**
 * Runs the model and attributes the logit difference at each prompt's position to heads, layers and neurons. Logits are
 * computed at those positions only (`logitPositions`), so a batch costs d_vocab floats per prompt, not per token.
 */
export async function directLogitAttribution(model: HookedTransformer, input: ModelInput, opts: DlaOptions): Promise<DlaResult> {
  const { tokens, attentionMask } = model.prepareInput(input, { prependBos: opts.prependBos, attentionMask: opts.attentionMask });
  const names = dlaHookNames(model.cfg);
  const pos = tokens[0].length;
  const positions = perPrompt(opts.positions ?? -1, tokens.length, 'positions').map((p) => (p < 0 ? p + pos : p));
  for (const p of positions) {
    if (!Number.isInteger(p) || p < 0 || p >= pos) throw new Error(`directLogitAttribution: position ${p} is out of range for ${pos} positions`);
  }
  // Logits only where the difference is read: [batch, 1, d_vocab], not [batch, pos, d_vocab].
  const [logits, raw] = await model.runWithCache(tokens, {
    namesFilter: names, logitPositions: positions.map((p) => [p]), ...(attentionMask ? { attentionMask } : {}),
  });
  const cache = withModel(raw, model);
  const result = dlaFromCache(cache, opts.correct, opts.incorrect, positions);
  const diffs = logitDiffs(logits, { correct: opts.correct, incorrect: opts.incorrect, positions: 0 });
  result.logitDiff = Tensor.from(diffs);
  result.mean.logitDiff = diffs.reduce((a, b) => a + b, 0) / diffs.length;
  return result;
}

/** The hook points direct logit attribution reads: embeddings, the ln_final scale, the final residual stream, and each layer's z, attn_out, mlp post and mlp_out. */
export function dlaHookNames(cfg: { n_layers: number }): HookName[] {
  const names: HookName[] = ['hook_embed', 'hook_pos_embed', 'ln_final.hook_scale', blockHook(cfg.n_layers - 1, 'hook_resid_post')];
  for (let l = 0; l < cfg.n_layers; l++) {
    names.push(blockHook(l, 'attn.hook_z'), blockHook(l, 'hook_attn_out'), blockHook(l, 'mlp.hook_post'), blockHook(l, 'hook_mlp_out'));
  }
  return names;
}

/**
 * What each part of the residual stream at one batch row and position writes along a residual direction `d`
 * [d_model], through the final LayerNorm with the run's cached scale: part · (d − mean d) / scale (the LayerNorm's
 * centring moved onto the direction). Every value is a term of final · (d − mean d) / scale.
 */
export interface AttributionAlong {
  /** ln_final.hook_scale at the position. */
  scale: number;
  embed: number;
  posEmbed: number;
  /** Each head's z · W_O (no b_O), [n_layers · n_heads]. */
  heads: Float64Array;
  /** Each neuron's post · W_out[n] (no b_out), [n_layers · d_mlp]. */
  neurons: Float64Array;
  /** hook_attn_out (heads + b_O) and hook_mlp_out (neurons + b_out) per layer, [n_layers]. */
  attnOut: Float64Array;
  mlpOut: Float64Array;
  /** b_O and b_out per layer, [n_layers]. */
  bO: Float64Array;
  bOut: Float64Array;
  /** The final residual stream (blocks.{n_layers-1}.hook_resid_post): the sum of all the parts. */
  final: number;
}

/**
 * Direct attribution along `direction` [d_model] at batch row `b`, position `p`, from a cache holding dlaHookNames
 * (batch dim kept). The matrices are read as the model stores them ([out, in]: no copy of W_O or W_out).
 */
export function attributeAlong(cache: ActivationCache, b: number, p: number, direction: ArrayLike<number>): AttributionAlong {
  const model: CacheModel | undefined = cache.model;
  if (!model) throw new Error('attributeAlong: the cache has no model; use a cache from model.runWithCache');
  if (!cache.hasBatchDim) throw new Error('attributeAlong: the cache must keep its batch dim');
  const { n_layers, n_heads, d_head, d_model, d_mlp } = model.cfg;
  const H = n_heads * d_head;
  const embed = cache.get('hook_embed'); // [batch, pos, d_model]
  const [batch, pos] = embed.shape;
  if (!Number.isInteger(b) || b < 0 || b >= batch) throw new Error(`attributeAlong: batch row ${b} is out of range for ${batch} rows`);
  if (!Number.isInteger(p) || p < 0 || p >= pos) throw new Error(`directLogitAttribution: position ${p} is out of range for ${pos} positions`);
  if (direction.length !== d_model) throw new Error(`attributeAlong: the direction has ${direction.length} entries; d_model is ${d_model}`);
  // Centred direction: (x − mean x)·d = x·(d − mean d).
  const dir = new Float64Array(d_model);
  let mean = 0;
  for (let i = 0; i < d_model; i++) mean += direction[i];
  mean /= d_model;
  for (let i = 0; i < d_model; i++) dir[i] = direction[i] - mean;
  const s = cache.get('ln_final.hook_scale').data[b * pos + p]; // [batch, pos, 1]
  const row = (b * pos + p) * d_model;
  /** x[b, p, :] · dir / scale for an activation [batch, pos, d_model]. */
  const project = (act: Tensor): number => {
    let acc = 0;
    for (let i = 0; i < d_model; i++) acc += act.data[row + i] * dir[i];
    return acc / s;
  };
  const dot = (v: Float32Array): number => {
    let acc = 0;
    for (let i = 0; i < d_model; i++) acc += v[i] * dir[i];
    return acc / s;
  };
  /** out[j] = Σ_i Wt[i, j] · dir[i] for Wt [d_model, n] (a transposed [n, d_model] matrix), row by row. */
  const projectRows = (Wt: Float32Array, n: number, out: Float64Array): void => {
    out.fill(0);
    for (let i = 0; i < d_model; i++) {
      const di = dir[i];
      const r = i * n;
      for (let j = 0; j < n; j++) out[j] += Wt[r + j] * di;
    }
  };
  const out: AttributionAlong = {
    scale: s,
    embed: project(embed),
    posEmbed: project(cache.get('hook_pos_embed')),
    heads: new Float64Array(n_layers * n_heads),
    neurons: new Float64Array(n_layers * d_mlp),
    attnOut: new Float64Array(n_layers),
    mlpOut: new Float64Array(n_layers),
    bO: new Float64Array(n_layers),
    bOut: new Float64Array(n_layers),
    final: project(cache.get(blockHook(n_layers - 1, 'hook_resid_post'))),
  };
  const proj = new Float64Array(H); // W_O · dir, [head·d_head]
  const projMlp = new Float64Array(d_mlp); // W_out · dir, [d_mlp]
  for (let l = 0; l < n_layers; l++) {
    const z = cache.get(blockHook(l, 'attn.hook_z')); // [batch, pos, head, d_head]
    const post = cache.get(blockHook(l, 'mlp.hook_post')); // [batch, pos, d_mlp]
    projectRows(model.weights.matrix('W_O', l), H, proj); // W_O stored [d_model, head·d_head]
    for (let h = 0; h < n_heads; h++) {
      let acc = 0;
      const zo = ((b * pos + p) * n_heads + h) * d_head;
      for (let e = 0; e < d_head; e++) acc += z.data[zo + e] * proj[h * d_head + e];
      out.heads[l * n_heads + h] = acc / s;
    }
    projectRows(model.weights.matrix('W_out', l), d_mlp, projMlp); // W_out stored [d_model, d_mlp]
    const po = (b * pos + p) * d_mlp;
    for (let n = 0; n < d_mlp; n++) out.neurons[l * d_mlp + n] = (post.data[po + n] * projMlp[n]) / s;
    out.attnOut[l] = project(cache.get(blockHook(l, 'hook_attn_out')));
    out.mlpOut[l] = project(cache.get(blockHook(l, 'hook_mlp_out')));
    out.bO[l] = dot(model.weights.vector('b_O', l));
    out.bOut[l] = dot(model.weights.vector('b_out', l));
  }
  return out;
}

/**
 * Direct logit attribution from a cache holding dlaHookNames (batch dim kept).
 * `logitDiff` is left as the residual stream's attribution plus `unembedBias`.
 */
export function dlaFromCache(cache: ActivationCache, correct: number | readonly number[], incorrect: number | readonly number[], positions: readonly number[]): DlaResult {
  const model: CacheModel | undefined = cache.model;
  if (!model) throw new Error('dlaFromCache: the cache has no model; use a cache from model.runWithCache');
  if (!cache.hasBatchDim) throw new Error('dlaFromCache: the cache must keep its batch dim');
  const { n_layers, n_heads, d_model, d_mlp, d_vocab } = model.cfg;
  const W_Ut = model.weights.matrix('W_U'); // [d_vocab, d_model]: row t = W_U[:, t]
  const b_U = model.weights.vector('b_U'); // [d_vocab]
  const [batch] = cache.get('hook_embed').shape;
  if (positions.length !== batch) throw new Error(`dlaFromCache: ${positions.length} positions for ${batch} prompts`);
  const good = perPrompt(correct, batch, 'correct');
  const bad = perPrompt(incorrect, batch, 'incorrect');
  const heads = new Float32Array(batch * n_layers * n_heads);
  const neurons = new Float32Array(batch * n_layers * d_mlp);
  const layerLabels = ['embed', 'pos_embed'];
  for (let l = 0; l < n_layers; l++) layerLabels.push(`${l}_attn_out`, `${l}_mlp_out`);
  const layerVals: number[][] = [];
  const headRemainder = new Float32Array(batch);
  const unembedBias = new Float32Array(batch);
  const total = new Float32Array(batch);
  for (let b = 0; b < batch; b++) {
    for (const t of [good[b], bad[b]]) if (!Number.isInteger(t) || t < 0 || t >= d_vocab) throw new Error(`directLogitAttribution: token ${t} is not an integer in [0, ${d_vocab})`);
    const dir = new Float64Array(d_model); // W_U[:, correct] − W_U[:, incorrect]
    for (let i = 0; i < d_model; i++) dir[i] = W_Ut[good[b] * d_model + i] - W_Ut[bad[b] * d_model + i];
    const a = attributeAlong(cache, b, positions[b], dir);
    heads.set(a.heads, b * n_layers * n_heads);
    neurons.set(a.neurons, b * n_layers * d_mlp);
    const vals = [a.embed, a.posEmbed];
    for (let l = 0; l < n_layers; l++) vals.push(a.attnOut[l], a.mlpOut[l]);
    layerVals.push(vals);
    headRemainder[b] = a.final - a.heads.reduce((x, y) => x + y, 0);
    unembedBias[b] = b_U[good[b]] - b_U[bad[b]];
    total[b] = a.final + unembedBias[b];
  }
  const headsT = new Tensor(heads, [batch, n_layers, n_heads]);
  const layersT = Tensor.from(layerVals);
  const neuronsT = new Tensor(neurons, [batch, n_layers, d_mlp]);
  const remT = new Tensor(headRemainder, [batch]);
  return {
    logitDiff: new Tensor(total, [batch]),
    heads: headsT,
    layerLabels,
    layers: layersT,
    neurons: neuronsT,
    headRemainder: remT,
    unembedBias: new Tensor(unembedBias, [batch]),
    mean: {
      logitDiff: total.reduce((a, b) => a + b, 0) / batch,
      heads: headsT.mean(0),
      layers: layersT.mean(0),
      neurons: neuronsT.mean(0),
      headRemainder: remT.mean().item(),
    },
  };
}
