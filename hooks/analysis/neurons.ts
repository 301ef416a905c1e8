/**
 * Neurons (mlp.hook_post of a layer): a prompt's most active neurons, one neuron's activation over a prompt, and what a
 * neuron writes into the logits (its output weights through the unembedding).
 */
import type { ActivationCache, CacheModel } from '../ActivationCache.ts';
import { blockHook } from '../hookPoints.ts';

export interface NeuronRef {
  layer: number;
  neuron: number;
}

export interface ActiveNeuron extends NeuronRef {
  /** Its largest activation over the positions considered, and where. */
  activation: number;
  position: number;
}

function checkNeuron(cfg: { n_layers: number; d_mlp: number }, layer: number, neuron: number, what: string): void {
  if (!Number.isInteger(layer) || layer < 0 || layer >= cfg.n_layers) throw new Error(`${what}: layer ${layer} is out of range; allowed 0..${cfg.n_layers - 1}`);
  if (!Number.isInteger(neuron) || neuron < 0 || neuron >= cfg.d_mlp) throw new Error(`${what}: neuron ${neuron} is out of range; allowed 0..${cfg.d_mlp - 1}`);
}

/**
 * The `k` neurons with the largest activation (mlp.hook_post) at any of `positions` (default: every position but the
 * first, which is BOS for text and where activations say little about the prompt), from a cache holding every layer's
 * mlp.hook_post (batch dim kept), batch row `batchIndex`. Ties: lower layer, then lower neuron, first.
 */
export function topNeuronsByActivation(cache: ActivationCache, k: number, opts: { positions?: readonly number[]; batchIndex?: number } = {}): ActiveNeuron[] {
  const model = cache.model;
  if (!model) throw new Error('topNeuronsByActivation: the cache has no model; use a cache from model.runWithCache');
  const { n_layers, d_mlp } = model.cfg;
  const b = opts.batchIndex ?? 0;
  const post0 = cache.get(blockHook(0, 'mlp.hook_post'));
  const pos = post0.shape[1];
  const positions = opts.positions ?? Array.from({ length: Math.max(1, pos - 1) }, (_v, i) => (pos > 1 ? i + 1 : 0));
  for (const p of positions) if (!Number.isInteger(p) || p < 0 || p >= pos) throw new Error(`topNeuronsByActivation: position ${p} is out of range for ${pos} positions`);
  const best = new Float32Array(n_layers * d_mlp).fill(-Infinity);
  const where = new Int32Array(n_layers * d_mlp);
  for (let l = 0; l < n_layers; l++) {
    const post = cache.get(blockHook(l, 'mlp.hook_post')); // [batch, pos, d_mlp]
    for (const p of positions) {
      const o = (b * pos + p) * d_mlp;
      for (let n = 0; n < d_mlp; n++) {
        const v = post.data[o + n];
        if (v > best[l * d_mlp + n]) {
          best[l * d_mlp + n] = v;
          where[l * d_mlp + n] = p;
        }
      }
    }
  }
  const order = Array.from({ length: n_layers * d_mlp }, (_v, i) => i).sort((x, y) => best[y] - best[x] || x - y);
  return order.slice(0, Math.max(0, k)).map((i) => ({ layer: Math.floor(i / d_mlp), neuron: i % d_mlp, activation: best[i], position: where[i] }));
}

/** One neuron's activation (mlp.hook_post) at every position of batch row `batchIndex`, [pos]. */
export function neuronActivations(cache: ActivationCache, layer: number, neuron: number, batchIndex = 0): Float32Array {
  const cfg = cache.model?.cfg;
  if (cfg) checkNeuron(cfg, layer, neuron, 'neuronActivations');
  const post = cache.get(blockHook(layer, 'mlp.hook_post')); // [batch, pos, d_mlp]
  const [, pos, d_mlp] = post.shape;
  const out = new Float32Array(pos);
  for (let p = 0; p < pos; p++) out[p] = post.data[(batchIndex * pos + p) * d_mlp + neuron];
  return out;
}

export interface TokenValue {
  token: number;
  value: number;
}

/**
 * What one unit of the neuron's activation adds to each logit directly: its output weights W_out[n] through the final
 * LayerNorm's centring (and its weight, when not folded) and the unembedding, W_out[n] · W_U over the vocabulary
 * (TransformerLens's neuron-to-logit weights on a model with the default processing). The `k` largest and smallest.
 */
export function neuronOutputTokens(model: CacheModel, layer: number, neuron: number, k: number): { top: TokenValue[]; bottom: TokenValue[] } {
  const { d_model, d_mlp, d_vocab } = model.cfg;
  checkNeuron(model.cfg, layer, neuron, 'neuronOutputTokens');
  const W_outT = model.weights.matrix('W_out', layer); // [d_model, d_mlp]
  const ln = model.weights.layerNorm('ln_final');
  const dir = new Float64Array(d_model);
  let mean = 0;
  for (let d = 0; d < d_model; d++) mean += W_outT[d * d_mlp + neuron];
  mean /= d_model;
  for (let d = 0; d < d_model; d++) dir[d] = (W_outT[d * d_mlp + neuron] - mean) * (ln ? ln.w[d] : 1);
  const W_Ut = model.weights.matrix('W_U'); // [d_vocab, d_model]
  const values = new Float32Array(d_vocab);
  for (let t = 0; t < d_vocab; t++) {
    let acc = 0;
    const o = t * d_model;
    for (let d = 0; d < d_model; d++) acc += W_Ut[o + d] * dir[d];
    values[t] = acc;
  }
  const order = Array.from({ length: d_vocab }, (_v, i) => i).sort((x, y) => values[y] - values[x] || x - y);
  const n = Math.min(Math.max(0, k), d_vocab);
  const pick = (ids: number[]) => ids.map((token) => ({ token, value: values[token] }));
  return { top: pick(order.slice(0, n)), bottom: pick(order.slice(d_vocab - n).reverse()) };
}
