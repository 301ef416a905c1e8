/**
 * The few big float32 products the whole-model analyses need (all head pairs, W_U W_E, the logit lens's
 * unembedding), run on onnxruntime's CPU kernels — about 15× faster than float64 JavaScript loops here,
 * which keeps all composition scores of a GPT-2-small-shaped model to seconds. A model owns one
 * KernelSessions (`model.kernels`): its sessions are built on first use, once per kernel and thread
 * count, and released by the model's dispose().
 */
import { GraphBuilder } from '../onnx/builder.ts';
import { encodeModel } from '../onnx/proto.ts';
import { f32, int64, runSession, SessionCache, type Session } from './runtime.ts';

const fmtShape = (shape: readonly number[]): string => `[${shape.join(', ')}]`;

export interface KernelOptions {
  /** onnxruntime intra-op threads (0 = onnxruntime's choice, one per physical core). */
  threads?: number;
}

/** A float32 array with a shape (what the kernels take and return). */
export interface F32 {
  data: Float32Array;
  shape: number[];
}

function matmulModel(): Uint8Array {
  return encodeModel({
    nodes: [{ op: 'MatMul', inputs: ['a', 'b'], outputs: ['y'] }],
    inputs: [{ name: 'a', elemType: 'float32', dims: null }, { name: 'b', elemType: 'float32', dims: null }],
    outputs: [{ name: 'y', elemType: 'float32', dims: null }],
    name: 'circuits_matmul',
  });
}

/**
 * Squared Frobenius norms of the blocks of LO @ RX: S[a, b] = ‖LO[a·h:(a+1)·h] @ RX[:, b·g:(b+1)·g]‖².
 * Inputs: LO [N·h, d], RX [d, M·g], shape4 = [N, h, M, g] → S [N, M].
 */
function blockNormsModel(): Uint8Array {
  const g = new GraphBuilder();
  const LO = g.input('LO', 'float32', ['Nh', 'd']);
  const RX = g.input('RX', 'float32', ['d', 'Mg']);
  const shape4 = g.input('shape4', 'int64', [4]);
  const c = g.op('Reshape', [g.matmul(LO, RX), shape4]); // [N, h, M, g]
  g.reduceSum(g.mul(c, c), [1, 3], false, 'S'); // [N, M]
  return encodeModel({
    nodes: g.nodes,
    inputs: [...g.inputs.values()],
    outputs: [{ name: 'S', elemType: 'float32', dims: ['N', 'M'] }],
    initializers: [...g.constants].map(([name, t]) => ({ name, ...t })),
    name: 'circuits_block_norms',
  });
}

/** The kernels' sessions, made on first use (one per kernel and thread count) and released by dispose(). */
export class KernelSessions {
  private readonly cache: SessionCache;

  /** `threads`: onnxruntime intra-op threads when a call does not give its own (0 = one per physical core). */
  constructor(private readonly threads = 0) {
    this.cache = new SessionCache({ device: 'cpu', threads });
  }

  private session(name: string, opts: KernelOptions, build: () => Uint8Array): Promise<Session> {
    const threads = opts.threads ?? this.threads;
    if (!Number.isInteger(threads) || threads < 0) {
      return Promise.reject(new Error(`circuits: threads must be a non-negative integer (0 = onnxruntime's choice), got ${threads}`));
    }
    return this.cache.get(`${name}:${threads}`, build, { threads });
  }

  /** a @ b with torch.matmul semantics (batch dims broadcast), float32 on onnxruntime. */
  async matmul(a: F32, b: F32, opts: KernelOptions = {}): Promise<F32> {
    if (a.shape.length < 2 || b.shape.length < 2 || a.shape[a.shape.length - 1] !== b.shape[b.shape.length - 2]) {
      throw new Error(`circuits matmul: shapes ${fmtShape(a.shape)} and ${fmtShape(b.shape)} do not match`);
    }
    const s = await this.session('matmul', opts, matmulModel);
    const out = (await runSession(s, { a: f32(a.data, a.shape), b: f32(b.data, b.shape) })).y;
    return { data: out.data as Float32Array, shape: [...out.dims] };
  }

  /** ‖LO_a RX_b‖_F² for all a < N, b < M (LO_a = rows a·h..(a+1)·h of LO, RX_b = columns b·g..(b+1)·g of RX); [N·M] row-major. */
  async blockNormsSq(
    LO: Float32Array, RX: Float32Array,
    dims: { N: number; M: number; h: number; g: number; d: number },
    opts: KernelOptions = {},
  ): Promise<Float32Array> {
    const { N, M, h, g, d } = dims;
    if (LO.length !== N * h * d) throw new Error(`circuits block norms: LO has ${LO.length} elements, expected ${N * h * d}`);
    if (RX.length !== d * M * g) throw new Error(`circuits block norms: RX has ${RX.length} elements, expected ${d * M * g}`);
    const s = await this.session('blockNorms', opts, blockNormsModel);
    const out = await runSession(s, { LO: f32(LO, [N * h, d]), RX: f32(RX, [d, M * g]), shape4: int64([N, h, M, g], [4]) });
    const res = out.S.data as Float32Array;
    if (res.length !== N * M) throw new Error('internal: block norms output has the wrong size');
    return res;
  }

  /**
   * The unembedding of `rows` [R, d_model] with its log-sum-exp and top k: logits = rows · W_U + b_U, with W_U
   * given transposed, W_Ut [d_vocab, d_model], as the model stores it (no copy). Returns logits [R, d_vocab],
   * lse [R] (log Σ exp over the vocabulary) and the top k logits and their ids [R, k], largest first, ties to
   * the lower id (onnxruntime's TopK, as Tensor.topk).
   */
  async unembedTopK(
    rows: F32, W_Ut: Float32Array, b_U: Float32Array, k: number, opts: KernelOptions = {},
  ): Promise<{ logits: Float32Array; lse: Float32Array; topLogits: Float32Array; topIds: BigInt64Array }> {
    const [R, d] = rows.shape;
    const V = b_U.length;
    if (rows.shape.length !== 2 || W_Ut.length !== V * d) {
      throw new Error(`unembedding: rows ${fmtShape(rows.shape)}, W_Uᵀ of ${W_Ut.length} values and b_U [${V}] do not match`);
    }
    if (!Number.isInteger(k) || k < 1 || k > V) throw new Error(`unembedding: k must be an integer in 1…${V}; got ${k}`);
    const s = await this.session('unembedTopK', opts, unembedTopKModel);
    const out = await runSession(s, { x: f32(rows.data, [R, d]), Wt: f32(W_Ut, [V, d]), b: f32(b_U, [V]), k: int64([k], [1]) });
    return {
      logits: out.logits.data as Float32Array,
      lse: out.lse.data as Float32Array,
      topLogits: out.topLogits.data as Float32Array,
      topIds: out.topIds.data as BigInt64Array,
    };
  }

  /** Releases the sessions (a later call builds them again). */
  dispose(): Promise<void> {
    return this.cache.dispose();
  }
}

/** x [R, d], Wt [V, d], b [V], k [1] → logits [R, V], lse [R], topLogits / topIds [R, k]. */
function unembedTopKModel(): Uint8Array {
  const g = new GraphBuilder();
  const x = g.input('x', 'float32', ['R', 'd']);
  const Wt = g.input('Wt', 'float32', ['V', 'd']);
  const b = g.input('b', 'float32', ['V']);
  const k = g.input('k', 'int64', [1]);
  const logits = g.add(g.matmul(x, g.transpose(Wt, [1, 0])), b, 'logits'); // [R, V]
  g.op('ReduceLogSumExp', [logits, g.i64([-1])], { keepdims: { i: 0 } }, 'lse'); // [R]
  g.opMulti('TopK', [logits, k], ['topLogits', 'topIds'], { axis: { i: -1 }, largest: { i: 1 }, sorted: { i: 1 } });
  return encodeModel({
    nodes: g.nodes,
    inputs: [...g.inputs.values()],
    outputs: [
      { name: 'logits', elemType: 'float32', dims: ['R', 'V'] },
      { name: 'lse', elemType: 'float32', dims: ['R'] },
      { name: 'topLogits', elemType: 'float32', dims: ['R', 'k'] },
      { name: 'topIds', elemType: 'int64', dims: ['R', 'k'] },
    ],
    initializers: [...g.constants].map(([name, t]) => ({ name, ...t })),
    name: 'unembed_topk',
  });
}
