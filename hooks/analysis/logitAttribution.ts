/**
 * Direct logit attribution for any prompt and target: what the embeddings, every head, every MLP layer and the biases
 * write into logit(target) (− logit(vs)) at one position, through the final LayerNorm with the run's own scale, so that
 * the parts add up to the model's logit (difference). TransformerLens's decomposition, exactly:
 * `cache.get_full_resid_decomposition(expand_neurons=False)` (heads `L9H6`, MLP layers `3_mlp_out`, `embed`,
 * `pos_embed`, and `bias` = Σ b_O, TL's accumulated_bias without MLP biases) through `cache.logit_attrs`, plus what
 * logit_attrs leaves out: `b_U` and, on a model whose LayerNorms are not folded, ln_final's own weight and bias. The
 * top neurons are given too; they refine their MLP layer (its value = Σ its neurons + b_out) and are not counted twice.
 *
 * What "the biases" are depends on the weight processing (README, "Attribution, information flow and neurons"). With TransformerLens's defaults
 * (foldLn, centerWritingWeights, centerUnembed, foldValueBiases): ln_final's w is folded into W_U and its b into b_U;
 * the value biases b_V are folded into b_O (heads then write z·W_O without them, and `bias` carries Σ_h b_V[h]·W_O[h]);
 * ln1/ln2's biases are folded into b_Q/b_K/b_V/b_in, so they reach the logit only through heads, `bias` and neurons;
 * every writing weight and bias is centred over d_model (the LayerNorm's centring then changes no component); W_U and
 * b_U are centred over the vocabulary, which moves every logit at a position by the same constant (a logit difference
 * does not move). Without processing: b_V stays inside each head's z, ln_final's w scales the direction and its b is the
 * component `ln_final.b`.
 */
import type { ActivationCache } from '../ActivationCache.ts';
import type { HookedTransformer, ModelInput } from '../HookedTransformer.ts';
import { blockHook } from '../hookPoints.ts';
import { withModel } from './cache.ts';
import { attributeAlong, dlaHookNames } from './directLogitAttribution.ts';

export type AttributionKind = 'embed' | 'pos_embed' | 'head' | 'mlp' | 'bias' | 'neuron';

export interface AttributionComponent {
  /** TransformerLens's label: `embed`, `pos_embed`, `L9H6`, `3_mlp_out`, `bias`, `b_U`, `ln_final.b`, `L3N2047`. */
  label: string;
  kind: AttributionKind;
  layer?: number;
  head?: number;
  neuron?: number;
  /** Its direct contribution to logit(target) (− logit(vs)). */
  value: number;
  /** A neuron's activation (mlp.hook_post) at the position. */
  activation?: number;
}

export interface LogitAttributionOptions {
  /** The token whose logit is explained (an id, or a string that is one token). */
  target: number | string;
  /** Explain logit(target) − logit(vs) instead (an id or a one-token string). */
  vs?: number | string | null;
  /** The position read (negatives from the end); default -1. */
  position?: number;
  /** How many neurons to list, by |value| (default 10; 0 for none). */
  topNeurons?: number;
  prependBos?: boolean;
}

export interface LogitAttributionResult {
  tokens: number[];
  position: number;
  target: number;
  vs: number | null;
  /** The model's logit(target) (− logit(vs)) at the position, from its logits. */
  total: number;
  /** ln_final.hook_scale at the position: every component is divided by it. */
  scale: number;
  /**
   * embed, pos_embed, each head (L0H0, L0H1, …), each MLP layer (0_mlp_out, …), bias (Σ b_O), b_U (b_U[target] −
   * b_U[vs]) and, without folded LayerNorms, ln_final.b; then the top neurons (kind 'neuron', by |value|). Every
   * component that is not a neuron is a term of the total: they add up to it (to float precision).
   */
  components: AttributionComponent[];
}

function tokenIdOf(model: { cfg: { d_vocab: number }; toSingleToken?(t: string): number }, t: number | string, what: string): number {
  if (typeof t === 'string') {
    if (!model.toSingleToken) throw new Error(`logitAttribution: ${what} '${t}' is a string but the model has no tokenizer; give a token id`);
    return model.toSingleToken(t);
  }
  if (!Number.isInteger(t) || t < 0 || t >= model.cfg.d_vocab) throw new Error(`logitAttribution: ${what} ${t} is not a token id in [0, ${model.cfg.d_vocab})`);
  return t;
}

/**
 * The attribution from a cache holding dlaHookNames (batch dim kept) at batch row `batchIndex` (default 0) and an
 * absolute `position`. `total` is left as the sum of the components (logitAttribution puts the model's logit there).
 */
export function logitAttributionFromCache(
  cache: ActivationCache,
  opts: { target: number | string; vs?: number | string | null; position: number; batchIndex?: number; topNeurons?: number },
): Omit<LogitAttributionResult, 'tokens'> {
  const model = cache.model;
  if (!model) throw new Error('logitAttributionFromCache: the cache has no model; use a cache from model.runWithCache');
  const { n_layers, n_heads, d_model, d_mlp } = model.cfg;
  const target = tokenIdOf(model, opts.target, 'target');
  const vs = opts.vs === undefined || opts.vs === null ? null : tokenIdOf(model, opts.vs, 'vs');
  const b = opts.batchIndex ?? 0;
  const p = opts.position;
  const W_Ut = model.weights.matrix('W_U'); // [d_vocab, d_model]: row t = W_U[:, t]
  const b_U = model.weights.vector('b_U');
  // The unembedding direction, and what ln_final's own weight and bias make of it (null once folded).
  const ln = model.weights.layerNorm('ln_final');
  const dir = new Float64Array(d_model);
  for (let i = 0; i < d_model; i++) dir[i] = W_Ut[target * d_model + i] - (vs === null ? 0 : W_Ut[vs * d_model + i]);
  let lnBias = 0;
  if (ln) {
    for (let i = 0; i < d_model; i++) {
      lnBias += ln.b[i] * dir[i];
      dir[i] *= ln.w[i];
    }
  }
  const a = attributeAlong(cache, b, p, dir);
  const components: AttributionComponent[] = [
    { label: 'embed', kind: 'embed', value: a.embed },
    { label: 'pos_embed', kind: 'pos_embed', value: a.posEmbed },
  ];
  for (let l = 0; l < n_layers; l++) {
    for (let h = 0; h < n_heads; h++) components.push({ label: `L${l}H${h}`, kind: 'head', layer: l, head: h, value: a.heads[l * n_heads + h] });
  }
  for (let l = 0; l < n_layers; l++) components.push({ label: `${l}_mlp_out`, kind: 'mlp', layer: l, value: a.mlpOut[l] });
  components.push({ label: 'bias', kind: 'bias', value: a.bO.reduce((x, y) => x + y, 0) });
  components.push({ label: 'b_U', kind: 'bias', value: b_U[target] - (vs === null ? 0 : b_U[vs]) });
  if (ln) components.push({ label: 'ln_final.b', kind: 'bias', value: lnBias });
  const total = components.reduce((acc, c) => acc + c.value, 0);
  const k = Math.min(opts.topNeurons ?? 10, n_layers * d_mlp);
  if (k > 0) {
    const post = (l: number) => cache.get(blockHook(l, 'mlp.hook_post')); // [batch, pos, d_mlp]
    const pos = cache.get('hook_embed').shape[1];
    const order = Array.from({ length: n_layers * d_mlp }, (_v, i) => i).sort((x, y) => Math.abs(a.neurons[y]) - Math.abs(a.neurons[x]) || x - y);
    for (const i of order.slice(0, k)) {
      const layer = Math.floor(i / d_mlp);
      const neuron = i % d_mlp;
      components.push({
        label: `L${layer}N${neuron}`, kind: 'neuron', layer, neuron, value: a.neurons[i],
        activation: post(layer).data[(b * pos + p) * d_mlp + neuron],
      });
    }
  }
  return { position: p, target, vs, total, scale: a.scale, components };
}

/**
 * Runs the model on one prompt and attributes logit(target) (− logit(vs)) at `position` to its components (see the
 * module comment). Logits are computed at that position only.
 */
export async function logitAttribution(model: HookedTransformer, input: ModelInput, opts: LogitAttributionOptions): Promise<LogitAttributionResult> {
  const { tokens, attentionMask } = model.prepareInput(input, { prependBos: opts.prependBos });
  if (tokens.length !== 1) throw new Error(`logitAttribution: give one prompt; got ${tokens.length}`);
  const n = tokens[0].length;
  const position = (opts.position ?? -1) < 0 ? (opts.position ?? -1) + n : (opts.position ?? -1);
  if (!Number.isInteger(position) || position < 0 || position >= n) {
    throw new Error(`logitAttribution: position ${opts.position} is out of range for a prompt of ${n} tokens (allowed ${-n}..${n - 1})`);
  }
  const [logits, raw] = await model.runWithCache(tokens, {
    namesFilter: dlaHookNames(model.cfg), logitPositions: [[position]], ...(attentionMask ? { attentionMask } : {}),
  });
  const r = logitAttributionFromCache(withModel(raw, model), { ...opts, position }); // logits [1, 1, d_vocab]
  const total = logits.data[r.target] - (r.vs === null ? 0 : logits.data[r.vs]);
  return { tokens: tokens[0], ...r, total };
}
