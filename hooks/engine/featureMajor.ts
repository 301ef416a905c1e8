/**
 * The engine's copy of the weights: Lensboard's arrays by feed name, with the matrices that
 * multiply activations (FEATURE_MAJOR) transposed in place to [out, in] ("feature-major"), the
 * layout onnxruntime multiplies fastest when weights are fed (see linear() in gpt2Graph.ts); and
 * Lensboard-layout views of that one copy for everything that reads TransformerWeights.
 */
import type { HookedTransformerConfig } from '../config.ts';
import { SCRATCH_FLOATS, transposeInPlace, transposeInto } from '../ops/index.ts';
import { checkWeightShapes, type BlockWeights, type LayerNormWeights, type TransformerWeights } from '../weights.ts';

/** The matrices stored feature-major: x W is computed as Gemm(x, Wᵀ, transB). */
export const FEATURE_MAJOR: ReadonlySet<string> = new Set(['W_Q', 'W_K', 'W_V', 'W_O', 'W_in', 'W_out', 'W_U']);

/** A matrix the engine stores feature-major ([out, in]). */
export type FeatureMajorMatrix = 'W_Q' | 'W_K' | 'W_V' | 'W_O' | 'W_in' | 'W_out' | 'W_U';

type MatrixKey = 'W_Q' | 'W_K' | 'W_V' | 'W_O' | 'W_in' | 'W_out';
const BLOCK_MATRICES: readonly MatrixKey[] = ['W_Q', 'W_K', 'W_V', 'W_O', 'W_in', 'W_out'];
const BLOCK_VECTORS = ['b_Q', 'b_K', 'b_V', 'b_O', 'b_in', 'b_out'] as const;

/** Lensboard's (row-major [in, out]) shape of a FEATURE_MAJOR matrix by its key ('W_Q', …, 'W_U'). */
export function lensboardMatrixDims(cfg: HookedTransformerConfig, key: string): [number, number] {
  const H = cfg.n_heads * cfg.d_head;
  switch (key) {
    case 'W_Q': case 'W_K': case 'W_V': return [cfg.d_model, H];
    case 'W_O': return [H, cfg.d_model];
    case 'W_in': return [cfg.d_model, cfg.d_mlp];
    case 'W_out': return [cfg.d_mlp, cfg.d_model];
    case 'W_U': return [cfg.d_model, cfg.d_vocab];
    default: throw new Error(`internal: '${key}' is not a feature-major matrix`);
  }
}

/**
 * The weights as the engine feeds them, one array per feed name: 'W_E', 'W_pos', 'W_U', 'b_U',
 * 'ln_final.w', 'blocks.3.W_Q', 'blocks.3.ln1.b', … (LayerNorms absent once folded). Matrices in
 * FEATURE_MAJOR are [out, in]: W_Q/W_K/W_V [H, d_model], W_O [d_model, H], W_in [d_mlp, d_model],
 * W_out [d_model, d_mlp], W_U [d_vocab, d_model]. Everything else is as in weights.ts.
 */
export interface FeatureMajorWeights {
  readonly layout: 'feature-major';
  readonly arrays: ReadonlyMap<string, Float32Array>;
  readonly n_layers: number;
  /** Whether the LayerNorms carry weights (false once folded). */
  readonly lnHasWeights: boolean;
}

/** A Lensboard-layout copy of the feature-major matrix `key` stored in `a`. */
export function lensboardCopy(cfg: HookedTransformerConfig, key: string, a: Float32Array): Float32Array {
  const [rows, cols] = lensboardMatrixDims(cfg, key);
  return transposeInto(a, cols, rows, new Float32Array(a.length));
}

/**
 * Makes `obj[key]` a Lensboard-layout view of the engine's feature-major `fm`: the first read
 * transposes it into a new array that the property then keeps (a copy: writing into it does not
 * change the model); assigning replaces the property.
 */
function defineView(obj: object, key: string, read: () => Float32Array): void {
  const settle = (value: Float32Array) => Object.defineProperty(obj, key, { value, writable: true, enumerable: true, configurable: true });
  Object.defineProperty(obj, key, {
    get() {
      const value = read();
      settle(value);
      return value;
    },
    set(value: Float32Array) {
      settle(value);
    },
    enumerable: true,
    configurable: true,
  });
}

/**
 * Lensboard-layout views of `fm`'s matrices on `target` (a TransformerWeights-shaped object);
 * with `all`, every other tensor too becomes a view (a copy on first read), so that nothing
 * written through `target` reaches the model.
 */
function installViews(cfg: HookedTransformerConfig, fm: FeatureMajorWeights, target: TransformerWeights, all: boolean): void {
  const a = fm.arrays;
  const copyOf = (name: string) => () => a.get(name)!.slice();
  const lnViews = (ln: LayerNormWeights | null, prefix: string) => {
    if (!ln) return;
    defineView(ln, 'w', copyOf(`${prefix}.w`));
    defineView(ln, 'b', copyOf(`${prefix}.b`));
  };
  defineView(target, 'W_U', () => lensboardCopy(cfg, 'W_U', a.get('W_U')!));
  target.blocks.forEach((block, l) => {
    for (const key of BLOCK_MATRICES) defineView(block, key, () => lensboardCopy(cfg, key, a.get(`blocks.${l}.${key}`)!));
    if (!all) return;
    for (const key of BLOCK_VECTORS) defineView(block, key, copyOf(`blocks.${l}.${key}`));
    lnViews(block.ln1, `blocks.${l}.ln1`);
    lnViews(block.ln2, `blocks.${l}.ln2`);
  });
  if (!all) return;
  for (const key of ['W_E', 'W_pos', 'b_U']) defineView(target, key, copyOf(key));
  lnViews(target.ln_final, 'ln_final');
}

/**
 * A TransformerWeights in Lensboard's layout (weights.ts) over the engine's copy: vectors,
 * embeddings and LayerNorms are the engine's own arrays (do not mutate them); each matrix is
 * transposed into a new array when first read from this object, which then keeps it. Keep the
 * object while you use it: every call builds a fresh one.
 */
export function lensboardView(cfg: HookedTransformerConfig, fm: FeatureMajorWeights): TransformerWeights {
  const a = fm.arrays;
  const ln = (prefix: string): LayerNormWeights | null => (fm.lnHasWeights ? { w: a.get(`${prefix}.w`)!, b: a.get(`${prefix}.b`)! } : null);
  const blocks = Array.from({ length: fm.n_layers }, (_, l) => {
    const p = `blocks.${l}`;
    const block = { ln1: ln(`${p}.ln1`), ln2: ln(`${p}.ln2`) } as Partial<BlockWeights>;
    for (const key of BLOCK_VECTORS) block[key] = a.get(`${p}.${key}`)!;
    return block as BlockWeights;
  });
  const view = { W_E: a.get('W_E')!, W_pos: a.get('W_pos')!, blocks, ln_final: ln('ln_final'), b_U: a.get('b_U')! } as TransformerWeights;
  installViews(cfg, fm, view, false);
  return view;
}

/**
 * Takes over `w` (processing is done; the model now owns its arrays): transposes its matrices IN
 * PLACE into the engine's feature-major layout and returns all its arrays by feed name. `w`
 * itself stays readable in Lensboard's layout, detached from the model: each of its tensor
 * fields becomes a view that makes a copy on first read (matrices transposed back) and then
 * keeps it, so no second copy of the weights exists unless one is read, and writing through `w`
 * (e.g. processing it again for another model) never reaches this one. A matrix whose memory
 * other tensors share is copied first, so those keep their values.
 */
export function adoptWeights(cfg: HookedTransformerConfig, w: TransformerWeights): FeatureMajorWeights {
  checkWeightShapes(cfg, w);
  const arrays = new Map<string, Float32Array>([['W_E', w.W_E], ['W_pos', w.W_pos], ['W_U', w.W_U], ['b_U', w.b_U]]);
  const lnHasWeights = w.ln_final !== null;
  if (w.ln_final) arrays.set('ln_final.w', w.ln_final.w).set('ln_final.b', w.ln_final.b);
  w.blocks.forEach((block, l) => {
    for (const key of [...BLOCK_MATRICES, ...BLOCK_VECTORS]) arrays.set(`blocks.${l}.${key}`, block[key]);
    for (const ln of ['ln1', 'ln2'] as const) {
      const lnw = block[ln];
      if (lnw) arrays.set(`blocks.${l}.${ln}.w`, lnw.w).set(`blocks.${l}.${ln}.b`, lnw.b);
    }
  });
  const isMatrix = (name: string) => FEATURE_MAJOR.has(name.split('.').pop()!);
  // Memory regions of every tensor, to find matrices that share memory with another tensor.
  const regions = [...arrays].map(([name, a]) => ({ name, buffer: a.buffer, start: a.byteOffset, end: a.byteOffset + a.byteLength }));
  const shared = (name: string, a: Float32Array) =>
    regions.some((r) => r.name !== name && r.buffer === a.buffer && r.start < a.byteOffset + a.byteLength && a.byteOffset < r.end);
  let largest = 0;
  for (const [name, a] of arrays) if (isMatrix(name)) largest = Math.max(largest, a.length);
  const scratch = new Float32Array(Math.min(largest, SCRATCH_FLOATS));
  for (const [name, original] of arrays) {
    if (!isMatrix(name)) continue;
    const a = shared(name, original) ? original.slice() : original;
    const [rows, cols] = lensboardMatrixDims(cfg, name.split('.').pop()!);
    arrays.set(name, transposeInPlace(a, rows, cols, SCRATCH_FLOATS, scratch)); // [rows, cols] -> [cols, rows]
  }
  const fm: FeatureMajorWeights = { layout: 'feature-major', arrays, n_layers: cfg.n_layers, lnHasWeights };
  installViews(cfg, fm, w, true);
  return fm;
}
