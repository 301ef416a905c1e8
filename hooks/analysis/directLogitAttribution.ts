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
  const names: HookName[] = ['hook_embed', 'hook_pos_embed', 'ln_final.hook_scale', blockHook(model.cfg.n_layers - 1, 'hook_resid_post')];
  for (let l = 0; l < model.cfg.n_layers; l++) {
    names.push(blockHook(l, 'attn.hook_z'), blockHook(l, 'hook_attn_out'), blockHook(l, 'mlp.hook_post'), blockHook(l, 'hook_mlp_out'));
  }
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

/**
 * Direct logit attribution from a cache holding hook_embed, hook_pos_embed, ln_final.hook_scale, the last
 * resid_post and each layer's attn.hook_z, hook_attn_out, mlp.hook_post and hook_mlp_out (batch dim kept).
 * `logitDiff` is left as the residual stream's attribution plus `unembedBias`.
 */
export function dlaFromCache(cache: ActivationCache, correct: number | readonly number[], incorrect: number | readonly number[], positions: readonly number[]): DlaResult {
  const model: CacheModel | undefined = cache.model;
  if (!model) throw new Error('dlaFromCache: the cache has no model; use a cache from model.runWithCache');
  if (!cache.hasBatchDim) throw new Error('dlaFromCache: the cache must keep its batch dim');
  const { n_layers, n_heads, d_head, d_model, d_mlp, d_vocab } = model.cfg;
  const H = n_heads * d_head;
  // The matrices are read transposed, [out, in], as the model stores them (no copy of W_U, W_O, W_out).
  const W_Ut = model.weights.matrix('W_U'); // [d_vocab, d_model]
  const b_U = model.weights.vector('b_U'); // [d_vocab]
  const embed = cache.get('hook_embed');
  const [batch, pos] = embed.shape;
  if (positions.length !== batch) throw new Error(`dlaFromCache: ${positions.length} positions for ${batch} prompts`);
  const good = perPrompt(correct, batch, 'correct');
  const bad = perPrompt(incorrect, batch, 'incorrect');
  // Centred direction per prompt: (x − mean x)·dir = x·(dir − mean dir).
  const dirs = good.map((c, b) => {
    for (const t of [c, bad[b]]) if (!Number.isInteger(t) || t < 0 || t >= d_vocab) throw new Error(`directLogitAttribution: token ${t} is not an integer in [0, ${d_vocab})`);
    const d = new Float64Array(d_model);
    let mean = 0;
    for (let i = 0; i < d_model; i++) {
      d[i] = W_Ut[c * d_model + i] - W_Ut[bad[b] * d_model + i];
      mean += d[i];
    }
    mean /= d_model;
    for (let i = 0; i < d_model; i++) d[i] -= mean;
    return d;
  });
  const scale = cache.get('ln_final.hook_scale'); // [batch, pos, 1]
  const at = (b: number) => {
    const p = positions[b];
    if (!Number.isInteger(p) || p < 0 || p >= pos) throw new Error(`directLogitAttribution: position ${p} is out of range for ${pos} positions`);
    return p;
  };
  /** x[b, p_b, :] · dir_b / scale[b, p_b] for an activation [batch, pos, d_model]. */
  const project = (act: Tensor, b: number): number => {
    const p = at(b);
    const o = (b * pos + p) * d_model;
    let s = 0;
    for (let i = 0; i < d_model; i++) s += act.data[o + i] * dirs[b][i];
    return s / scale.data[b * pos + p];
  };

  const heads = new Float32Array(batch * n_layers * n_heads);
  const neurons = new Float32Array(batch * n_layers * d_mlp);
  const layerLabels = ['embed', 'pos_embed'];
  const layerVals: number[][] = Array.from({ length: batch }, (_, b) => [project(embed, b), project(cache.get('hook_pos_embed'), b)]);
  const proj = new Float64Array(H); // W_O · dir, [head·d_head]
  const projMlp = new Float64Array(d_mlp); // W_out · dir, [d_mlp]
  /** out[j] = Σ_i Wt[i, j] · dir[i] for Wt [d_model, n] (a transposed [n, d_model] matrix), row by row. */
  const projectRows = (Wt: Float32Array, n: number, dir: Float64Array, out: Float64Array): void => {
    out.fill(0);
    for (let i = 0; i < d_model; i++) {
      const di = dir[i];
      const row = i * n;
      for (let j = 0; j < n; j++) out[j] += Wt[row + j] * di;
    }
  };
  for (let l = 0; l < n_layers; l++) {
    layerLabels.push(`${l}_attn_out`, `${l}_mlp_out`);
    const z = cache.get(blockHook(l, 'attn.hook_z')); // [batch, pos, head, d_head]
    const post = cache.get(blockHook(l, 'mlp.hook_post')); // [batch, pos, d_mlp]
    const W_Ot = model.weights.matrix('W_O', l); // [d_model, head·d_head]
    const W_outT = model.weights.matrix('W_out', l); // [d_model, d_mlp]
    for (let b = 0; b < batch; b++) {
      const p = at(b);
      const s = scale.data[b * pos + p];
      projectRows(W_Ot, H, dirs[b], proj);
      for (let h = 0; h < n_heads; h++) {
        let acc = 0;
        const zo = ((b * pos + p) * n_heads + h) * d_head;
        for (let e = 0; e < d_head; e++) acc += z.data[zo + e] * proj[h * d_head + e];
        heads[(b * n_layers + l) * n_heads + h] = acc / s;
      }
      projectRows(W_outT, d_mlp, dirs[b], projMlp);
      for (let n = 0; n < d_mlp; n++) {
        neurons[(b * n_layers + l) * d_mlp + n] = (post.data[(b * pos + p) * d_mlp + n] * projMlp[n]) / s;
      }
      layerVals[b].push(project(cache.get(blockHook(l, 'hook_attn_out')), b), project(cache.get(blockHook(l, 'hook_mlp_out')), b));
    }
  }
  const final = cache.get(blockHook(n_layers - 1, 'hook_resid_post'));
  const headRemainder = new Float32Array(batch);
  const unembedBias = new Float32Array(batch);
  const total = new Float32Array(batch);
  for (let b = 0; b < batch; b++) {
    total[b] = project(final, b);
    let sumHeads = 0;
    for (let i = 0; i < n_layers * n_heads; i++) sumHeads += heads[b * n_layers * n_heads + i];
    headRemainder[b] = total[b] - sumHeads;
    unembedBias[b] = b_U[good[b]] - b_U[bad[b]];
    total[b] += unembedBias[b];
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
