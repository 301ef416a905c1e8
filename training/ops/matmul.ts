/**
 * Matrix products for the trainer: 2-D products (optionally with a transposed operand and a bias)
 * and batched 4-D products [b, h, m, k] @ [b, h, k, n], run on onnxruntime (one cached session per
 * op variant, dynamic shapes), with a plain float64-accumulating JS implementation for tests.
 */
import { f32, runSession, SessionCache, type OrtValue, type Session } from '../../hooks/engine/runtime.ts';
import { encodeModel, type OnnxNode } from '../../hooks/onnx/proto.ts';

export interface GemmOptions {
  /** A is stored [k, m] (use Aᵀ). */
  transA?: boolean;
  /** B is stored [n, k] (use Bᵀ). */
  transB?: boolean;
  /** Added to every row of the result: [n]. */
  bias?: Float32Array;
}

/** The products the trainer needs; every implementation returns a fresh row-major Float32Array. */
export interface Matmul {
  /** C [m, n] = op(A) @ op(B) (+ bias); op(A) is [m, k], op(B) is [k, n]. */
  gemm(a: Float32Array, b: Float32Array, m: number, k: number, n: number, opts?: GemmOptions): Promise<Float32Array>;
  /** C [batch, m, n] = op(A) @ op(B) per batch entry; A is [batch, m, k] ([batch, k, m] with transA), B is [batch, k, n] ([batch, n, k] with transB). */
  bmm(a: Float32Array, b: Float32Array, batch: number, m: number, k: number, n: number, opts?: { transA?: boolean; transB?: boolean }): Promise<Float32Array>;
  /** Number of calls made so far (for overhead measurements). */
  calls: number;
  dispose(): Promise<void>;
}

function checkLen(what: string, arr: Float32Array, n: number): void {
  if (arr.length !== n) throw new Error(`matmul: ${what} has ${arr.length} elements; the shapes given need ${n}`);
}

/** onnxruntime-backed products: Gemm for 2-D (transA/transB/bias attributes), MatMul (+ Transpose) for batched. */
export class OrtMatmul implements Matmul {
  calls = 0;
  private readonly sessions: SessionCache;

  /** Sessions on the CPU with the memory arena on; idle pool threads busy-wait only with `spinning` (the JS thread needs the cores between runs). */
  protected constructor(threads: number, spinning: boolean) {
    this.sessions = new SessionCache({ device: 'cpu', threads, spin: spinning, memArena: true });
  }

  /** `threads`: onnxruntime intra-op threads (0 = one per physical core); `spinning`: let idle pool threads busy-wait. */
  static async create(threads = 0, spinning = false): Promise<OrtMatmul> {
    return new OrtMatmul(threads, spinning);
  }

  /** The session for `key`, built (once) from the model bytes `build` returns. */
  protected cachedSession(key: string, build: () => Uint8Array): Promise<Session> {
    return this.sessions.get(key, build);
  }

  /** Runs `session` on `feeds` (every input fed) and counts the call. */
  protected async run(session: Session, feeds: Record<string, OrtValue>): Promise<Record<string, OrtValue>> {
    this.calls++;
    return runSession(session, feeds);
  }

  async gemm(a: Float32Array, b: Float32Array, m: number, k: number, n: number, opts: GemmOptions = {}): Promise<Float32Array> {
    const { transA = false, transB = false, bias } = opts;
    checkLen('A', a, m * k);
    checkLen('B', b, k * n);
    if (bias) checkLen('bias', bias, n);
    const key = `gemm:${+transA}${+transB}${bias ? 1 : 0}`;
    const s = await this.cachedSession(key, () => {
      const inputs = ['A', 'B', ...(bias ? ['C'] : [])];
      const node: OnnxNode = { op: 'Gemm', inputs, outputs: ['Y'], attrs: { transA: { i: +transA }, transB: { i: +transB } } };
      return encodeModel({
        nodes: [node],
        inputs: [
          { name: 'A', elemType: 'float32', dims: ['a0', 'a1'] },
          { name: 'B', elemType: 'float32', dims: ['b0', 'b1'] },
          ...(bias ? [{ name: 'C', elemType: 'float32' as const, dims: ['n'] }] : []),
        ],
        outputs: [{ name: 'Y', elemType: 'float32', dims: ['m', 'n'] }],
      });
    });
    const feeds: Record<string, OrtValue> = { A: f32(a, transA ? [k, m] : [m, k]), B: f32(b, transB ? [n, k] : [k, n]) };
    if (bias) feeds.C = f32(bias, [n]);
    return (await this.run(s, feeds)).Y.data as Float32Array;
  }

  async bmm(a: Float32Array, b: Float32Array, batch: number, m: number, k: number, n: number, opts: { transA?: boolean; transB?: boolean } = {}): Promise<Float32Array> {
    const { transA = false, transB = false } = opts;
    checkLen('A', a, batch * m * k);
    checkLen('B', b, batch * k * n);
    const key = `bmm:${+transA}${+transB}`;
    const s = await this.cachedSession(key, () => {
      const nodes: OnnxNode[] = [];
      let x = 'A';
      let y = 'B';
      if (transA) { nodes.push({ op: 'Transpose', inputs: ['A'], outputs: ['At'], attrs: { perm: { ints: [0, 2, 1] } } }); x = 'At'; }
      if (transB) { nodes.push({ op: 'Transpose', inputs: ['B'], outputs: ['Bt'], attrs: { perm: { ints: [0, 2, 1] } } }); y = 'Bt'; }
      nodes.push({ op: 'MatMul', inputs: [x, y], outputs: ['Y'] });
      return encodeModel({
        nodes,
        inputs: [
          { name: 'A', elemType: 'float32', dims: ['b', 'a1', 'a2'] },
          { name: 'B', elemType: 'float32', dims: ['b', 'b1', 'b2'] },
        ],
        outputs: [{ name: 'Y', elemType: 'float32', dims: ['b', 'm', 'n'] }],
      });
    });
    const out = await this.run(s, { A: f32(a, transA ? [batch, k, m] : [batch, m, k]), B: f32(b, transB ? [batch, n, k] : [batch, k, n]) });
    return out.Y.data as Float32Array;
  }

  dispose(): Promise<void> {
    return this.sessions.dispose();
  }
}

/** Plain loops accumulating in float64: the independent implementation tests compare against. */
export class JsMatmul implements Matmul {
  calls = 0;

  async gemm(a: Float32Array, b: Float32Array, m: number, k: number, n: number, opts: GemmOptions = {}): Promise<Float32Array> {
    checkLen('A', a, m * k);
    checkLen('B', b, k * n);
    this.calls++;
    return gemmJs(a, b, m, k, n, opts.transA ?? false, opts.transB ?? false, opts.bias);
  }

  async bmm(a: Float32Array, b: Float32Array, batch: number, m: number, k: number, n: number, opts: { transA?: boolean; transB?: boolean } = {}): Promise<Float32Array> {
    checkLen('A', a, batch * m * k);
    checkLen('B', b, batch * k * n);
    this.calls++;
    const out = new Float32Array(batch * m * n);
    for (let i = 0; i < batch; i++) {
      const c = gemmJs(a.subarray(i * m * k, (i + 1) * m * k), b.subarray(i * k * n, (i + 1) * k * n), m, k, n, opts.transA ?? false, opts.transB ?? false);
      out.set(c, i * m * n);
    }
    return out;
  }

  async dispose(): Promise<void> {}
}

function gemmJs(a: Float32Array, b: Float32Array, m: number, k: number, n: number, transA: boolean, transB: boolean, bias?: Float32Array): Float32Array {
  const out = new Float32Array(m * n);
  const acc = new Float64Array(n);
  for (let i = 0; i < m; i++) {
    if (bias) for (let j = 0; j < n; j++) acc[j] = bias[j];
    else acc.fill(0);
    for (let p = 0; p < k; p++) {
      const av = transA ? a[p * m + i] : a[i * k + p];
      if (av === 0) continue;
      if (transB) for (let j = 0; j < n; j++) acc[j] += av * b[j * k + p];
      else {
        const o = p * n;
        for (let j = 0; j < n; j++) acc[j] += av * b[o + j];
      }
    }
    out.set(acc, i * n);
  }
  return out;
}
