/**
 * The model's weights: one store owning every array in one layout, read by TransformerLens name.
 * It adopts processed weights in Lensboard's layout (weights.ts) and transposes each matrix that
 * multiplies activations IN PLACE to [out, in] ("feature-major"), the layout onnxruntime multiplies
 * fastest when weights are fed (see engine/graph/linear.ts). Everything reads this one copy:
 *   matrix(name, layer)  a matrix as stored, no copy: W_Q/W_K/W_V [n_heads·d_head, d_model],
 *                        W_O [d_model, n_heads·d_head], W_in [d_mlp, d_model], W_out [d_model, d_mlp],
 *                        W_U [d_vocab, d_model] (row t = token t's unembedding direction), and the
 *                        tables W_E [d_vocab, d_model], W_pos [n_ctx, d_model] as TransformerLens has them;
 *   vector(name, layer)  b_Q/b_K/b_V [n_heads·d_head], b_O [d_model], b_in [d_mlp], b_out [d_model], b_U, no copy;
 *   layerNorm(ln, layer) a LayerNorm's w and b (null once folded), no copy;
 *   stacked(name)        a TransformerLens-shaped Tensor (W_Q [n_layers, n_heads, d_model, d_head], …), a copy;
 *   feeds()              the arrays by the engine's feed names (the graphs' weight inputs).
 */
import { createHash } from 'node:crypto';
import type { HookedTransformerConfig } from './config.ts';
import { SCRATCH_FLOATS, transposeInPlace, transposeInto } from './ops/index.ts';
import { Tensor } from './tensor.ts';
import { checkWeightShapes, type BlockWeights, type LayerNormWeights, type TransformerWeights } from './weights.ts';

/** The matrices stored feature-major ([out, in]): x W is computed as MatMul(x, Transpose(Wᵀ)). */
export const MATRIX_NAMES = ['W_Q', 'W_K', 'W_V', 'W_O', 'W_in', 'W_out', 'W_U'] as const;
export type MatrixName = (typeof MATRIX_NAMES)[number];
export const FEATURE_MAJOR: ReadonlySet<string> = new Set(MATRIX_NAMES);

const BLOCK_MATRICES = ['W_Q', 'W_K', 'W_V', 'W_O', 'W_in', 'W_out'] as const;
const BLOCK_VECTORS = ['b_Q', 'b_K', 'b_V', 'b_O', 'b_in', 'b_out'] as const;
export type BlockVectorName = (typeof BLOCK_VECTORS)[number];
export type TableName = 'W_E' | 'W_pos';
/** Every weight by its TransformerLens name (what stacked() and model.weight() take). */
export type WeightName = TableName | MatrixName | BlockVectorName | 'b_U';
const WEIGHT_NAMES: readonly WeightName[] = ['W_E', 'W_pos', 'W_Q', 'W_K', 'W_V', 'W_O', 'b_Q', 'b_K', 'b_V', 'b_O', 'W_in', 'b_in', 'W_out', 'b_out', 'W_U', 'b_U'];
const TOP_LEVEL = new Set<string>(['W_E', 'W_pos', 'W_U', 'b_U']);

/** The store's key (and the engine's feed name) of weight `name` of `layer` (null outside the blocks): `blocks.3.W_Q`, `blocks.3.ln1.w`, `W_U`. */
export function weightKey(name: string, layer: number | null): string {
  return layer === null ? name : `blocks.${layer}.${name}`;
}

/**
 * The shape of each weight by its last name part ('W_Q', 'b_in', 'w' of a LayerNorm, …) in
 * Lensboard's layout (weights.ts); with `featureMajor`, as the store keeps it (matrices [out, in]).
 */
export function weightDims(cfg: HookedTransformerConfig, name: string, featureMajor = false): number[] {
  const { d_model, d_vocab, n_ctx, d_mlp } = cfg;
  const H = cfg.n_heads * cfg.d_head;
  const dims: Record<string, number[]> = {
    W_E: [d_vocab, d_model], W_pos: [n_ctx, d_model], W_U: [d_model, d_vocab], b_U: [d_vocab],
    W_Q: [d_model, H], W_K: [d_model, H], W_V: [d_model, H], b_Q: [H], b_K: [H], b_V: [H],
    W_O: [H, d_model], b_O: [d_model], W_in: [d_model, d_mlp], b_in: [d_mlp], W_out: [d_mlp, d_model], b_out: [d_model],
    w: [d_model], b: [d_model],
  };
  const key = name.split('.').pop()!;
  const d = dims[key];
  if (!d) throw new Error(`internal: no weight named '${name}'`);
  return featureMajor && FEATURE_MAJOR.has(key) ? [d[1], d[0]] : d;
}

/** Weights already handed to a store: their arrays now belong to it. */
const adopted = new WeakSet<TransformerWeights>();

/** Every array of Lensboard-layout weights by store key. */
function arraysOf(w: TransformerWeights): Map<string, Float32Array> {
  const arrays = new Map<string, Float32Array>([['W_E', w.W_E], ['W_pos', w.W_pos], ['W_U', w.W_U], ['b_U', w.b_U]]);
  if (w.ln_final) arrays.set('ln_final.w', w.ln_final.w).set('ln_final.b', w.ln_final.b);
  w.blocks.forEach((block, l) => {
    for (const key of [...BLOCK_MATRICES, ...BLOCK_VECTORS]) arrays.set(weightKey(key, l), block[key]);
    for (const ln of ['ln1', 'ln2'] as const) {
      const lnw = block[ln];
      if (lnw) arrays.set(weightKey(`${ln}.w`, l), lnw.w).set(weightKey(`${ln}.b`, l), lnw.b);
    }
  });
  return arrays;
}

/** Empties weights whose arrays a store took over, so that nothing reads them in the old layout. */
function release(w: TransformerWeights): void {
  const empty = new Float32Array(0);
  w.W_E = w.W_pos = w.W_U = w.b_U = empty;
  w.blocks = [];
  w.ln_final = null;
}

export class WeightStore {
  private digestMemo: string | null = null;

  private constructor(
    readonly cfg: HookedTransformerConfig,
    private readonly arrays: ReadonlyMap<string, Float32Array>,
  ) {}

  /**
   * Takes over the arrays of `w` (processing is done): transposes its matrices IN PLACE to [out, in]
   * and keeps every array, so the model holds one copy of its weights. `w` is emptied (its fields
   * no longer reach the model's arrays) and cannot be handed over again; clone it first
   * (structuredClone) to keep your own. A matrix whose memory another tensor shares is copied first.
   */
  static adopt(cfg: HookedTransformerConfig, w: TransformerWeights): WeightStore {
    if (adopted.has(w)) {
      throw new Error('these weights were handed to a model already, which took their arrays over (fromWeights does not copy); pass structuredClone(weights) taken before, or model.rawWeights, to build another model');
    }
    checkWeightShapes(cfg, w);
    const arrays = arraysOf(w);
    const isMatrix = (key: string) => FEATURE_MAJOR.has(key.split('.').pop()!);
    // Memory regions of every tensor, to find matrices that share memory with another tensor.
    const regions = [...arrays].map(([key, a]) => ({ key, buffer: a.buffer, start: a.byteOffset, end: a.byteOffset + a.byteLength }));
    const shared = (key: string, a: Float32Array) =>
      regions.some((r) => r.key !== key && r.buffer === a.buffer && r.start < a.byteOffset + a.byteLength && a.byteOffset < r.end);
    let largest = 0;
    for (const [key, a] of arrays) if (isMatrix(key)) largest = Math.max(largest, a.length);
    const scratch = new Float32Array(Math.min(largest, SCRATCH_FLOATS));
    for (const [key, original] of arrays) {
      if (!isMatrix(key)) continue;
      const a = shared(key, original) ? original.slice() : original;
      const [rows, cols] = weightDims(cfg, key);
      arrays.set(key, transposeInPlace(a, rows, cols, SCRATCH_FLOATS, scratch)); // [rows, cols] -> [cols, rows]
    }
    adopted.add(w);
    release(w);
    return new WeightStore(cfg, arrays);
  }

  /** Whether the LayerNorms carry weights (false once folded). */
  get lnHasWeights(): boolean {
    return this.arrays.has('ln_final.w');
  }

  /** Bytes of all the arrays. */
  get byteLength(): number {
    let n = 0;
    for (const a of this.arrays.values()) n += a.byteLength;
    return n;
  }

  /**
   * A SHA-256 of the config and every array (by key, in key order): the model's identity, e.g. to key what is computed
   * from a model and cached on disk. Computed once (about a second per 500 MB).
   */
  digest(): string {
    if (this.digestMemo === null) {
      const h = createHash('sha256').update(JSON.stringify(this.cfg, Object.keys(this.cfg).sort()));
      for (const key of [...this.arrays.keys()].sort()) {
        const a = this.arrays.get(key)!;
        h.update(key).update(new Uint8Array(a.buffer, a.byteOffset, a.byteLength));
      }
      this.digestMemo = h.digest('hex');
    }
    return this.digestMemo;
  }

  /** Every array by the engine's feed name (weightKey), as the graphs declare their weight inputs. */
  feeds(): ReadonlyMap<string, Float32Array> {
    return this.arrays;
  }

  private get(name: string, layer: number | undefined, what: string): Float32Array {
    const top = TOP_LEVEL.has(name);
    if (top && layer !== undefined) throw new Error(`${what}: ${name} has no layer`);
    if (!top && (layer === undefined || !Number.isInteger(layer) || layer < 0 || layer >= this.cfg.n_layers)) {
      throw new Error(`${what}: ${name} needs a layer, an integer in 0…${this.cfg.n_layers - 1}; got ${String(layer)}`);
    }
    const a = this.arrays.get(weightKey(name, top ? null : layer!));
    if (!a) throw new Error(`${what}: no weight '${name}'`);
    return a;
  }

  /** A matrix as stored (see the top of this file), without a copy: do not mutate it. */
  matrix(name: MatrixName | TableName, layer?: number, what = 'weights.matrix'): Float32Array {
    if (!FEATURE_MAJOR.has(name) && name !== 'W_E' && name !== 'W_pos') {
      throw new Error(`${what}: '${String(name)}' is not one of ${[...MATRIX_NAMES, 'W_E', 'W_pos'].join(', ')}`);
    }
    return this.get(name, layer, what);
  }

  /** A bias, without a copy: do not mutate it. */
  vector(name: BlockVectorName | 'b_U', layer?: number): Float32Array {
    if (name !== 'b_U' && !(BLOCK_VECTORS as readonly string[]).includes(name)) throw new Error(`weights.vector: '${String(name)}' is not one of ${[...BLOCK_VECTORS, 'b_U'].join(', ')}`);
    return this.get(name, layer, 'weights.vector');
  }

  /** A LayerNorm's weight and bias [d_model] (ln1/ln2 of `layer`, or ln_final), or null once folded; no copy. */
  layerNorm(ln: 'ln1' | 'ln2' | 'ln_final', layer?: number): LayerNormWeights | null {
    if (!this.lnHasWeights) return null;
    const at = ln === 'ln_final' ? null : layer!;
    return { w: this.arrays.get(weightKey(`${ln}.w`, at))!, b: this.arrays.get(weightKey(`${ln}.b`, at))! };
  }

  /**
   * A weight by TransformerLens name and shape, layer-stacked (`W_Q [n_layers, n_heads, d_model, d_head]`, …),
   * or with `layer` that layer's alone (`W_Q` [n_heads, d_model, d_head]): a new Tensor.
   */
  stacked(name: WeightName, layer?: number): Tensor {
    const { d_model, n_heads, d_head, d_mlp, d_vocab, n_ctx, n_layers } = this.cfg;
    if (layer !== undefined && TOP_LEVEL.has(name)) throw new Error(`weights.stacked: ${name} has no layer`);
    if (layer !== undefined && (!Number.isInteger(layer) || layer < 0 || layer >= n_layers)) {
      throw new Error(`weights.stacked: layer must be an integer in 0…${n_layers - 1}; got ${layer}`);
    }
    const copy = (n: WeightName) => this.get(n, undefined, 'weights.stacked').slice();
    const perLayer = (shape: number[], fill: (l: number, out: Float32Array) => void): Tensor => {
      const size = shape.reduce((a, b) => a * b, 1);
      if (layer !== undefined) {
        const out = new Float32Array(size);
        fill(layer, out);
        return new Tensor(out, shape);
      }
      const out = new Float32Array(n_layers * size);
      for (let l = 0; l < n_layers; l++) fill(l, out.subarray(l * size, (l + 1) * size));
      return new Tensor(out, [n_layers, ...shape]);
    };
    /** Stored [out, in] blocks of `rows` × `cols` (`groups` of them) back to [in, out] each. */
    const transposeBack = (n: MatrixName, groups: number, rows: number, cols: number) => (l: number, out: Float32Array) => {
      const a = this.get(n, l, 'weights.stacked');
      for (let g = 0; g < groups; g++) transposeInto(a.subarray(g * rows * cols, (g + 1) * rows * cols), rows, cols, out.subarray(g * rows * cols, (g + 1) * rows * cols));
    };
    const vector = (n: BlockVectorName) => (l: number, out: Float32Array) => out.set(this.get(n, l, 'weights.stacked'));
    switch (name) {
      case 'W_E': return new Tensor(copy('W_E'), [d_vocab, d_model]);
      case 'W_pos': return new Tensor(copy('W_pos'), [n_ctx, d_model]);
      case 'W_U': return new Tensor(transposeInto(this.get('W_U', undefined, 'weights.stacked'), d_vocab, d_model, new Float32Array(d_vocab * d_model)), [d_model, d_vocab]);
      case 'b_U': return new Tensor(copy('b_U'), [d_vocab]);
      // Stored [n_heads, d_head, d_model] -> [n_heads, d_model, d_head]: a transpose per head.
      case 'W_Q': case 'W_K': case 'W_V': return perLayer([n_heads, d_model, d_head], transposeBack(name, n_heads, d_head, d_model));
      case 'W_O': return perLayer([n_heads, d_head, d_model], transposeBack('W_O', 1, d_model, n_heads * d_head));
      case 'W_in': return perLayer([d_model, d_mlp], transposeBack('W_in', 1, d_mlp, d_model));
      case 'W_out': return perLayer([d_mlp, d_model], transposeBack('W_out', 1, d_model, d_mlp));
      case 'b_Q': case 'b_K': case 'b_V': return perLayer([n_heads, d_head], vector(name));
      case 'b_O': case 'b_out': return perLayer([d_model], vector(name));
      case 'b_in': return perLayer([d_mlp], vector('b_in'));
      default:
        throw new Error(`unknown weight '${String(name)}'; known: ${WEIGHT_NAMES.join(', ')}`);
    }
  }

  /** The weights in Lensboard's layout (weights.ts): a new copy of every array (e.g. to build another model). */
  toTransformerWeights(): TransformerWeights {
    const copy = (key: string) => {
      const a = this.arrays.get(key)!;
      const name = key.split('.').pop()!;
      if (!FEATURE_MAJOR.has(name)) return a.slice();
      const [rows, cols] = weightDims(this.cfg, name);
      return transposeInto(a, cols, rows, new Float32Array(a.length)); // [out, in] -> [in, out]
    };
    const ln = (prefix: string): LayerNormWeights | null => (this.lnHasWeights ? { w: copy(`${prefix}.w`), b: copy(`${prefix}.b`) } : null);
    const blocks = Array.from({ length: this.cfg.n_layers }, (_, l): BlockWeights => {
      const block = { ln1: ln(weightKey('ln1', l)), ln2: ln(weightKey('ln2', l)) } as Partial<BlockWeights>;
      for (const key of [...BLOCK_MATRICES, ...BLOCK_VECTORS]) block[key] = copy(weightKey(key, l));
      return block as BlockWeights;
    });
    return { W_E: copy('W_E'), W_pos: copy('W_pos'), blocks, ln_final: ln('ln_final'), W_U: copy('W_U'), b_U: copy('b_U') };
  }
}
