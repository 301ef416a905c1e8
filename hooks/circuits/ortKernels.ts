/**
 * The few big float32 products the whole-model analyses need (all head pairs, W_U W_E, the logit lens's
 * unembedding), run on onnxruntime's CPU kernels — about 15× faster than float64 JavaScript loops here,
 * which keeps all composition scores of a GPT-2-small-shaped model to seconds. Sessions are built once
 * per thread count.
 */
import { GraphBuilder } from '../onnx/builder.ts';
import { encodeModel } from '../onnx/proto.ts';
import { createSession, ort, runSession } from '../engine/runtime.ts';
import { fmtShape, prod } from './linalg.ts';

export interface KernelOptions {
  /** onnxruntime intra-op threads (0 = onnxruntime's choice, one per physical core). */
  threads?: number;
}

/** A float32 array with a shape (what the kernels take and return). */
export interface F32 {
  data: Float32Array;
  shape: number[];
}

const sessions = new Map<string, Promise<ort.InferenceSession>>();

function session(name: string, threads: number, build: () => Uint8Array): Promise<ort.InferenceSession> {
  if (!Number.isInteger(threads) || threads < 0) {
    return Promise.reject(new Error(`circuits: threads must be a non-negative integer (0 = onnxruntime's choice), got ${threads}`));
  }
  const key = `${name}:${threads}`;
  let s = sessions.get(key);
  if (!s) {
    s = createSession(build(), { device: 'cpu', threads });
    sessions.set(key, s);
    s.catch(() => sessions.delete(key));
  }
  return s;
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

const tensor = (x: F32) => new ort.Tensor('float32', x.data, x.shape);

/** a @ b with torch.matmul semantics (batch dims broadcast), float32 on onnxruntime. */
export async function ortMatmul(a: F32, b: F32, opts: KernelOptions = {}): Promise<F32> {
  if (a.shape.length < 2 || b.shape.length < 2 || a.shape[a.shape.length - 1] !== b.shape[b.shape.length - 2]) {
    throw new Error(`circuits matmul: shapes ${fmtShape(a.shape)} and ${fmtShape(b.shape)} do not match`);
  }
  const s = await session('matmul', opts.threads ?? 0, matmulModel);
  const out = (await runSession(s, { a: tensor(a), b: tensor(b) })).y;
  return { data: out.data as Float32Array, shape: [...out.dims] };
}

/** ‖LO_a RX_b‖_F² for all a < N, b < M (LO_a = rows a·h..(a+1)·h of LO, RX_b = columns b·g..(b+1)·g of RX); [N·M] row-major. */
export async function ortBlockNormsSq(
  LO: Float32Array, RX: Float32Array,
  dims: { N: number; M: number; h: number; g: number; d: number },
  opts: KernelOptions = {},
): Promise<Float32Array> {
  const { N, M, h, g, d } = dims;
  if (LO.length !== N * h * d) throw new Error(`circuits block norms: LO has ${LO.length} elements, expected ${N * h * d}`);
  if (RX.length !== d * M * g) throw new Error(`circuits block norms: RX has ${RX.length} elements, expected ${d * M * g}`);
  const s = await session('blockNorms', opts.threads ?? 0, blockNormsModel);
  const out = await runSession(s, {
    LO: new ort.Tensor('float32', LO, [N * h, d]),
    RX: new ort.Tensor('float32', RX, [d, M * g]),
    shape4: new ort.Tensor('int64', BigInt64Array.from([N, h, M, g].map(BigInt)), [4]),
  });
  const res = out.S.data as Float32Array;
  if (res.length !== prod([N, M])) throw new Error('internal: block norms output has the wrong size');
  return res;
}

/**
 * The unembedding of `rows` [R, d_model] with its log-sum-exp and top k: logits = rows · W_U + b_U, with W_U
 * given transposed, W_Ut [d_vocab, d_model], as the model stores it (no copy). Returns logits [R, d_vocab],
 * lse [R] (log Σ exp over the vocabulary) and the top k logits and their ids [R, k], largest first, ties to
 * the lower id (onnxruntime's TopK, as Tensor.topk).
 */
export async function ortUnembedTopK(
  rows: F32, W_Ut: Float32Array, b_U: Float32Array, k: number, opts: KernelOptions = {},
): Promise<{ logits: Float32Array; lse: Float32Array; topLogits: Float32Array; topIds: BigInt64Array }> {
  const [R, d] = rows.shape;
  const V = b_U.length;
  if (rows.shape.length !== 2 || W_Ut.length !== V * d) {
    throw new Error(`unembedding: rows ${fmtShape(rows.shape)}, W_Uᵀ of ${W_Ut.length} values and b_U [${V}] do not match`);
  }
  if (!Number.isInteger(k) || k < 1 || k > V) throw new Error(`unembedding: k must be an integer in 1…${V}; got ${k}`);
  const s = await session('unembedTopK', opts.threads ?? 0, unembedTopKModel);
  const out = await runSession(s, {
    x: new ort.Tensor('float32', rows.data, [R, d]),
    Wt: new ort.Tensor('float32', W_Ut, [V, d]),
    b: new ort.Tensor('float32', b_U, [V]),
    k: new ort.Tensor('int64', BigInt64Array.of(BigInt(k)), [1]),
  });
  return {
    logits: out.logits.data as Float32Array,
    lse: out.lse.data as Float32Array,
    topLogits: out.topLogits.data as Float32Array,
    topIds: out.topIds.data as BigInt64Array,
  };
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
