/**
 * TransformerLens's weight processing (fold_ln, center_writing_weights, center_unembed,
 * fold_value_biases), same order and maths as HookedTransformer.process_weights_.
 *
 * Every function here MUTATES the weights' Float32Arrays IN PLACE (so gpt2-xl fits in memory) and
 * returns the same object; clone first if the unprocessed weights are still needed. Sums and means
 * are accumulated in float64.
 */
import type { HookedTransformerConfig, ProcessingFlags } from './config.ts';
import { checkWeightShapes, type LayerNormWeights, type TransformerWeights } from './weights.ts';

/** Every array of the weights, with its name. */
function namedArrays(w: TransformerWeights): [string, Float32Array][] {
  const out: [string, Float32Array][] = [['W_E', w.W_E], ['W_pos', w.W_pos]];
  const ln = (name: string, l: LayerNormWeights | null) => {
    if (l) out.push([`${name}.w`, l.w], [`${name}.b`, l.b]);
  };
  w.blocks.forEach((b, l) => {
    const p = `blocks[${l}]`;
    ln(`${p}.ln1`, b.ln1);
    ln(`${p}.ln2`, b.ln2);
    for (const k of ['W_Q', 'b_Q', 'W_K', 'b_K', 'W_V', 'b_V', 'W_O', 'b_O', 'W_in', 'b_in', 'W_out', 'b_out'] as const) out.push([`${p}.${k}`, b[k]]);
  });
  ln('ln_final', w.ln_final);
  out.push(['W_U', w.W_U], ['b_U', w.b_U]);
  return out;
}

/**
 * In-place processing would apply twice to memory that two tensors share; refuse weights whose
 * arrays overlap (the same array used twice, or overlapping views of one buffer).
 */
export function assertNoSharedArrays(w: TransformerWeights): void {
  const arrays = namedArrays(w).filter(([, a]) => a.length > 0);
  const byBuffer = new Map<ArrayBufferLike, [string, Float32Array][]>();
  for (const entry of arrays) {
    const list = byBuffer.get(entry[1].buffer) ?? [];
    list.push(entry);
    byBuffer.set(entry[1].buffer, list);
  }
  for (const list of byBuffer.values()) {
    if (list.length < 2) continue;
    list.sort((a, b) => a[1].byteOffset - b[1].byteOffset);
    for (let i = 1; i < list.length; i++) {
      const [prevName, prev] = list[i - 1];
      const [name, cur] = list[i];
      if (cur.byteOffset < prev.byteOffset + prev.byteLength) {
        throw new Error(`weight processing works in place, but ${prevName} and ${name} share memory; give each tensor its own array`);
      }
    }
  }
}

/** W [rows, cols] row-major: W[r, c] -= mean over r of W[:, c] (centre each column along the row axis). */
function centreColumns(W: Float32Array, rows: number, cols: number): void {
  const mean = new Float64Array(cols);
  for (let r = 0; r < rows; r++) {
    const o = r * cols;
    for (let c = 0; c < cols; c++) mean[c] += W[o + c];
  }
  for (let c = 0; c < cols; c++) mean[c] /= rows;
  for (let r = 0; r < rows; r++) {
    const o = r * cols;
    for (let c = 0; c < cols; c++) W[o + c] -= mean[c];
  }
}

/** W [rows, cols] row-major: W[r, c] -= mean over c of W[r, :] (centre each row along the column axis). */
function centreRows(W: Float32Array, rows: number, cols: number): void {
  for (let r = 0; r < rows; r++) {
    const o = r * cols;
    let s = 0;
    for (let c = 0; c < cols; c++) s += W[o + c];
    const m = s / cols;
    for (let c = 0; c < cols; c++) W[o + c] -= m;
  }
}

/** v -= mean(v). */
function centreVector(v: Float32Array): void {
  let s = 0;
  for (let i = 0; i < v.length; i++) s += v[i];
  const m = s / v.length;
  for (let i = 0; i < v.length; i++) v[i] -= m;
}

/**
 * Folds a LayerNorm (w, b) into the linear map W [d_model, cols] + bias [cols] that reads from it,
 * then centres W along d_model (the LN output it now reads is centred, so this changes nothing):
 *   bias[c] += Σ_d b[d] · W[d, c]   (with the original W)
 *   W[d, c] *= w[d]
 *   W[:, c] -= mean_d W[:, c]
 */
function foldInto(ln: LayerNormWeights, W: Float32Array, bias: Float32Array, dModel: number, cols: number): void {
  const acc = new Float64Array(cols);
  for (let c = 0; c < cols; c++) acc[c] = bias[c];
  for (let d = 0; d < dModel; d++) {
    const bd = ln.b[d];
    const o = d * cols;
    for (let c = 0; c < cols; c++) acc[c] += bd * W[o + c];
  }
  bias.set(acc);
  for (let d = 0; d < dModel; d++) {
    const wd = ln.w[d];
    const o = d * cols;
    for (let c = 0; c < cols; c++) W[o + c] *= wd;
  }
  centreColumns(W, dModel, cols);
}

/**
 * TL fold_layer_norm (fold_biases and center_weights on, as for LayerNorm models): ln1 into
 * W_Q/W_K/W_V and b_Q/b_K/b_V, ln2 into W_in/b_in, ln_final into W_U/b_U; each folded weight is
 * centred along d_model (TL centres W_Q/K/V per head and d_head column, W_in per d_mlp column,
 * W_U per vocab column). The LNs become null (LNPre); returns the cfg with normalization_type 'LNPre'.
 */
export function foldLayerNorm(cfg: HookedTransformerConfig, w: TransformerWeights): HookedTransformerConfig {
  checkWeightShapes(cfg, w);
  const lns = [w.ln_final, ...w.blocks.flatMap((b) => [b.ln1, b.ln2])];
  if (cfg.normalization_type !== 'LN' || lns.some((ln) => ln === null)) {
    throw new Error(`foldLayerNorm: the LayerNorms are already folded (normalization_type '${cfg.normalization_type}'${lns.some((ln) => ln === null) ? ', null LayerNorm weights' : ''}); fold only 'LN' weights, once`);
  }
  assertNoSharedArrays(w);
  const { d_model, d_mlp, d_vocab } = cfg;
  const H = cfg.n_heads * cfg.d_head;
  for (const b of w.blocks) {
    const ln1 = b.ln1 as LayerNormWeights;
    foldInto(ln1, b.W_Q, b.b_Q, d_model, H);
    foldInto(ln1, b.W_K, b.b_K, d_model, H);
    foldInto(ln1, b.W_V, b.b_V, d_model, H);
    b.ln1 = null;
    foldInto(b.ln2 as LayerNormWeights, b.W_in, b.b_in, d_model, d_mlp);
    b.ln2 = null;
  }
  foldInto(w.ln_final as LayerNormWeights, w.W_U, w.b_U, d_model, d_vocab);
  w.ln_final = null;
  return { ...cfg, normalization_type: 'LNPre' };
}

/**
 * TL center_writing_weights: every weight that writes to the residual stream gets zero mean
 * along d_model — W_E and W_pos rows, W_O [n_heads, d_head, d_model] and W_out [d_mlp, d_model]
 * along d_model, and the biases b_O and b_out. Every LayerNorm reading the stream subtracts the
 * mean anyway, so the outputs do not change.
 */
export function centerWritingWeights(cfg: HookedTransformerConfig, w: TransformerWeights): void {
  checkWeightShapes(cfg, w);
  assertNoSharedArrays(w);
  const { d_model, d_vocab, n_ctx, d_mlp } = cfg;
  const H = cfg.n_heads * cfg.d_head;
  centreRows(w.W_E, d_vocab, d_model);
  centreRows(w.W_pos, n_ctx, d_model);
  for (const b of w.blocks) {
    centreRows(b.W_O, H, d_model);
    centreVector(b.b_O);
    centreRows(b.W_out, d_mlp, d_model);
    centreVector(b.b_out);
  }
}

/**
 * TL center_unembed: W_U [d_model, d_vocab] minus its mean over d_vocab (each row), b_U minus its
 * mean. Logits shift by a per-position constant; log-probs are unchanged.
 */
export function centerUnembed(cfg: HookedTransformerConfig, w: TransformerWeights): void {
  checkWeightShapes(cfg, w);
  assertNoSharedArrays(w);
  centreRows(w.W_U, cfg.d_model, cfg.d_vocab);
  centreVector(w.b_U);
}

/**
 * TL fold_value_biases: pattern rows sum to 1, so each head's value bias adds the constant
 * b_V[h] @ W_O[h] to attn_out. b_O += Σ_h Σ_e b_V[h, e] · W_O[h, e, :], then b_V = 0.
 * (Changes hook_v / hook_z / hook_result, not hook_attn_out, except at fully masked query rows.)
 */
export function foldValueBiases(cfg: HookedTransformerConfig, w: TransformerWeights): void {
  checkWeightShapes(cfg, w);
  assertNoSharedArrays(w);
  const { d_model } = cfg;
  const H = cfg.n_heads * cfg.d_head;
  const acc = new Float64Array(d_model);
  for (const b of w.blocks) {
    for (let d = 0; d < d_model; d++) acc[d] = b.b_O[d];
    for (let j = 0; j < H; j++) {
      const bv = b.b_V[j];
      const o = j * d_model;
      for (let d = 0; d < d_model; d++) acc[d] += bv * b.W_O[o + d];
    }
    b.b_O.set(acc);
    b.b_V.fill(0);
  }
}

/**
 * TL's process_weights, in its order: fold_ln, center_writing_weights, center_unembed,
 * fold_value_biases (and, as TL does when both fold_value_biases and center_writing_weights are
 * on, b_O is re-centred afterwards). MUTATES `weights` IN PLACE; returns the same weights and a new
 * cfg whose normalization_type is 'LNPre' when LN was folded.
 */
export function processWeights(
  cfg: HookedTransformerConfig,
  weights: TransformerWeights,
  flags: ProcessingFlags,
): { cfg: HookedTransformerConfig; weights: TransformerWeights } {
  let outCfg = { ...cfg };
  if (flags.foldLn) outCfg = foldLayerNorm(outCfg, weights);
  if (flags.centerWritingWeights) centerWritingWeights(outCfg, weights);
  if (flags.centerUnembed) centerUnembed(outCfg, weights);
  if (flags.foldValueBiases) {
    foldValueBiases(outCfg, weights);
    if (flags.centerWritingWeights) for (const b of weights.blocks) centreVector(b.b_O);
  }
  return { cfg: outCfg, weights };
}
