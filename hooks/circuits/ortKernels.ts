/**
 * The few big float32 products the whole-model circuit analyses need (all head pairs, W_U W_E), run on
 * onnxruntime's CPU matmul — about 15× faster than float64 JavaScript loops here, which keeps
 * all composition scores of a GPT-2-small-shaped model to seconds. Sessions are built once per thread count.
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
 * Σ_ij (P_a C_ab Q_b)_ij (C_ab)_ij = tr(P_a C_ab Q_b C_abᵀ) for every (a, b), where C_ab is block (a, b)
 * of LO @ RX. Inputs: P [N, h, h], Q [M, g, g], LO [N·h, d], RX [d, M·g], shape4 = [N, h, M, g] → S [N, M].
 */
function pairTraceModel(): Uint8Array {
  const g = new GraphBuilder();
  const P = g.input('P', 'float32', ['N', 'h', 'h']);
  const Q = g.input('Q', 'float32', ['M', 'g', 'g']);
  const LO = g.input('LO', 'float32', ['Nh', 'd']);
  const RX = g.input('RX', 'float32', ['d', 'Mg']);
  const shape4 = g.input('shape4', 'int64', [4]);
  const c2 = g.matmul(LO, RX); // [N·h, M·g]
  const c4 = g.op('Reshape', [c2, shape4]); // [N, h, M, g]
  const c = g.transpose(c4, [0, 2, 1, 3]); // [N, M, h, g]
  const t = g.matmul(g.unsqueeze(P, [1]), c); // [N, M, h, g]
  const u = g.matmul(t, Q); // [N, M, h, g]
  g.reduceSum(g.mul(u, c), [2, 3], false, 'S'); // [N, M]
  return encodeModel({
    nodes: g.nodes,
    inputs: [...g.inputs.values()],
    outputs: [{ name: 'S', elemType: 'float32', dims: ['N', 'M'] }],
    initializers: [...g.constants].map(([name, t]) => ({ name, ...t })),
    name: 'circuits_pair_trace',
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

/** tr(P_a C_ab Q_b C_abᵀ) for all a < N, b < M with C_ab = LO[a·h:(a+1)·h] @ RX[:, b·g:(b+1)·g]; returns [N·M] row-major. */
export async function ortPairTraces(
  P: Float32Array, Q: Float32Array, LO: Float32Array, RX: Float32Array,
  dims: { N: number; M: number; h: number; g: number; d: number },
  opts: KernelOptions = {},
): Promise<Float32Array> {
  const { N, M, h, g, d } = dims;
  const expect: [string, Float32Array, number][] = [['P', P, N * h * h], ['Q', Q, M * g * g], ['LO', LO, N * h * d], ['RX', RX, d * M * g]];
  for (const [n, x, len] of expect) {
    if (x.length !== len) throw new Error(`circuits pair traces: ${n} has ${x.length} elements, expected ${len}`);
  }
  const s = await session('pairTrace', opts.threads ?? 0, pairTraceModel);
  const out = await runSession(s, {
    P: new ort.Tensor('float32', P, [N, h, h]),
    Q: new ort.Tensor('float32', Q, [M, g, g]),
    LO: new ort.Tensor('float32', LO, [N * h, d]),
    RX: new ort.Tensor('float32', RX, [d, M * g]),
    shape4: new ort.Tensor('int64', BigInt64Array.from([N, h, M, g].map(BigInt)), [4]),
  });
  const res = out.S.data as Float32Array;
  if (res.length !== prod([N, M])) throw new Error('internal: pair trace output has the wrong size');
  return res;
}
