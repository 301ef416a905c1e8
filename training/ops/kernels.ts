/**
 * The trainer's heavy kernels: causal multi-head attention (forward and backward, heads split from
 * and merged into [batch·pos, 3H] / [batch·pos, H]) and the tied unembedding + grouped softmax
 * cross-entropy (forward and backward). `OrtKernels` runs each as one onnxruntime graph;
 * `JsKernels` is the plain-loop implementation (float64 accumulation) that tests compare against.
 */
import { f32 as f32Value, int64, type OrtValue } from '../../hooks/engine/runtime.ts';
import { encodeModel, type OnnxNode, type ValueInfo } from '../../hooks/onnx/proto.ts';
import { JsMatmul, OrtMatmul, type Matmul } from './matmul.ts';

export interface AttentionShape {
  batch: number;
  pos: number;
  nHeads: number;
  dHead: number;
}

export interface UnembedLossInput {
  /** Final normalized residual [N, D]. */
  h: Float32Array;
  /** Class embeddings (tied unembedding) [V, D]. */
  wte: Float32Array;
  N: number;
  D: number;
  V: number;
  /** Added to the logit of class `offsetClass` (log n_unseen); ignored when offsetClass ≥ V (no unseen class). */
  offsetClass: number;
  offset: number;
  /** Target class per row, or -1 to ignore the row [N]. */
  targets: Int32Array;
}

export interface UnembedLossOutput {
  /** −log p(target class) per row, 0 for ignored rows [N]. */
  nll: Float64Array;
  /** Gradients of mean(nll over rows with a target). */
  dh?: Float32Array; // [N, D]
  dwte?: Float32Array; // [V, D]
}

export interface Kernels extends Matmul {
  /** qkv [N, 3H] (HF c_attn output) → z [N, H] and the attention pattern [batch, n_heads, pos, pos]. */
  attentionForward(qkv: Float32Array, s: AttentionShape): Promise<{ z: Float32Array; pattern: Float32Array }>;
  /** Gradient of z w.r.t. qkv: dz [N, H] → dqkv [N, 3H]. */
  attentionBackward(qkv: Float32Array, pattern: Float32Array, dz: Float32Array, s: AttentionShape): Promise<Float32Array>;
  unembedLoss(inp: UnembedLossInput, backward: boolean): Promise<UnembedLossOutput>;
}

function countTargets(targets: Int32Array): number {
  let c = 0;
  for (let i = 0; i < targets.length; i++) if (targets[i] >= 0) c++;
  if (c === 0) throw new Error('unembedLoss: no row has a target');
  return c;
}

/** Plain loops (products accumulate in float64). */
export class JsKernels extends JsMatmul implements Kernels {
  async attentionForward(qkv: Float32Array, s: AttentionShape): Promise<{ z: Float32Array; pattern: Float32Array }> {
    const { batch: B, pos: T, nHeads: nh, dHead: dh } = s;
    const H = nh * dh;
    const scale = 1 / Math.sqrt(dh);
    const pattern = new Float32Array(B * nh * T * T);
    const z = new Float32Array(B * T * H);
    const ex = new Float64Array(T);
    for (let b = 0; b < B; b++) {
      for (let hd = 0; hd < nh; hd++) {
        for (let q = 0; q < T; q++) {
          const qo = (b * T + q) * 3 * H + hd * dh;
          let max = -Infinity;
          for (let k = 0; k <= q; k++) {
            const ko = (b * T + k) * 3 * H + H + hd * dh;
            let dot = 0;
            for (let e = 0; e < dh; e++) dot += qkv[qo + e] * qkv[ko + e];
            ex[k] = dot * scale;
            if (ex[k] > max) max = ex[k];
          }
          let sum = 0;
          for (let k = 0; k <= q; k++) { ex[k] = Math.exp(ex[k] - max); sum += ex[k]; }
          const po = ((b * nh + hd) * T + q) * T;
          const zo = (b * T + q) * H + hd * dh;
          for (let k = 0; k <= q; k++) {
            const p = ex[k] / sum;
            pattern[po + k] = p;
            const vo = (b * T + k) * 3 * H + 2 * H + hd * dh;
            for (let e = 0; e < dh; e++) z[zo + e] += p * qkv[vo + e];
          }
        }
      }
    }
    return { z, pattern };
  }

  async attentionBackward(qkv: Float32Array, pattern: Float32Array, dz: Float32Array, s: AttentionShape): Promise<Float32Array> {
    const { batch: B, pos: T, nHeads: nh, dHead: dh } = s;
    const H = nh * dh;
    const scale = 1 / Math.sqrt(dh);
    const dqkv = new Float32Array(B * T * 3 * H);
    const dS = new Float64Array(T);
    for (let b = 0; b < B; b++) {
      for (let hd = 0; hd < nh; hd++) {
        for (let q = 0; q < T; q++) {
          const po = ((b * nh + hd) * T + q) * T;
          const zo = (b * T + q) * H + hd * dh;
          let dot = 0;
          for (let k = 0; k <= q; k++) {
            const vo = (b * T + k) * 3 * H + 2 * H + hd * dh;
            let dp = 0;
            for (let e = 0; e < dh; e++) {
              dp += dz[zo + e] * qkv[vo + e];
              dqkv[vo + e] += pattern[po + k] * dz[zo + e]; // dv
            }
            dS[k] = dp;
            dot += pattern[po + k] * dp;
          }
          const qo = (b * T + q) * 3 * H + hd * dh;
          for (let k = 0; k <= q; k++) {
            const g = pattern[po + k] * (dS[k] - dot) * scale;
            if (g === 0) continue;
            const ko = (b * T + k) * 3 * H + H + hd * dh;
            for (let e = 0; e < dh; e++) {
              dqkv[qo + e] += g * qkv[ko + e]; // dq
              dqkv[ko + e] += g * qkv[qo + e]; // dk
            }
          }
        }
      }
    }
    return dqkv;
  }

  async unembedLoss(inp: UnembedLossInput, backward: boolean): Promise<UnembedLossOutput> {
    const { h, wte, N, D, V, targets, offsetClass, offset } = inp;
    const logits = await this.gemm(h, wte, N, D, V, { transB: true }); // [N, V]
    const count = countTargets(targets);
    const nll = new Float64Array(N);
    const probs = new Float64Array(V);
    const dlogits = backward ? new Float32Array(N * V) : null;
    for (let r = 0; r < N; r++) {
      const t = targets[r];
      if (t < 0) continue;
      const o = r * V;
      if (offsetClass < V) logits[o + offsetClass] += offset;
      let max = -Infinity;
      for (let c = 0; c < V; c++) if (logits[o + c] > max) max = logits[o + c];
      let se = 0;
      for (let c = 0; c < V; c++) { probs[c] = Math.exp(logits[o + c] - max); se += probs[c]; }
      nll[r] = max + Math.log(se) - logits[o + t];
      if (dlogits) {
        for (let c = 0; c < V; c++) dlogits[o + c] = probs[c] / se / count;
        dlogits[o + t] -= 1 / count;
      }
    }
    if (!dlogits) return { nll };
    return { nll, dh: await this.gemm(dlogits, wte, N, V, D), dwte: await this.gemm(dlogits, h, V, N, D, { transA: true }) };
  }
}

const f32 = (name: string, dims: (number | string)[]): ValueInfo => ({ name, elemType: 'float32', dims });

/** onnxruntime graphs (one session per kernel variant and head shape), products as in OrtMatmul. */
export class OrtKernels extends OrtMatmul implements Kernels {
  private masks = new Map<number, Float32Array>();

  static override async create(threads = 0, spinning = false): Promise<OrtKernels> {
    return new OrtKernels(threads, spinning);
  }

  private causalMask(T: number): Float32Array {
    let m = this.masks.get(T);
    if (!m) {
      m = new Float32Array(T * T);
      for (let q = 0; q < T; q++) for (let k = q + 1; k < T; k++) m[q * T + k] = -Infinity;
      this.masks.set(T, m);
    }
    return m;
  }

  /** Nodes splitting qkv [B, T, 3H] into q, k, v [B, nh, T, dh]. */
  private static splitHeads(nh: number, dh: number, nodes: OnnxNode[], i64: (v: number[]) => string): [string, string, string] {
    nodes.push({ op: 'Reshape', inputs: ['qkv', i64([0, 0, 3, nh, dh])], outputs: ['qkv5'] });
    nodes.push({ op: 'Transpose', inputs: ['qkv5'], outputs: ['qkvT'], attrs: { perm: { ints: [2, 0, 3, 1, 4] } } }); // [3, B, nh, T, dh]
    nodes.push({ op: 'Split', inputs: ['qkvT'], outputs: ['q1', 'k1', 'v1'], attrs: { axis: { i: 0 }, num_outputs: { i: 3 } } });
    for (const n of ['q', 'k', 'v']) nodes.push({ op: 'Squeeze', inputs: [`${n}1`, i64([0])], outputs: [n] });
    return ['q', 'k', 'v'];
  }

  private static build(nodes: OnnxNode[], consts: Map<string, BigInt64Array | Float32Array>, inputs: ValueInfo[], outputs: ValueInfo[]): Uint8Array {
    return encodeModel({
      nodes,
      inputs,
      outputs,
      initializers: [...consts].map(([name, data]) => ({ name, elemType: data instanceof BigInt64Array ? 'int64' as const : 'float32' as const, dims: data instanceof BigInt64Array ? [data.length] : [], data })),
    });
  }

  private static constants() {
    const consts = new Map<string, BigInt64Array | Float32Array>();
    const i64 = (v: number[]) => {
      const name = `c_i64_${v.join('_').replace(/-/g, 'm')}`;
      consts.set(name, BigInt64Array.from(v.map(BigInt)));
      return name;
    };
    const scalar = (v: number, name: string) => {
      consts.set(name, Float32Array.of(v));
      return name;
    };
    return { consts, i64, scalar };
  }

  async attentionForward(qkv: Float32Array, s: AttentionShape): Promise<{ z: Float32Array; pattern: Float32Array }> {
    const { batch: B, pos: T, nHeads: nh, dHead: dh } = s;
    const H = nh * dh;
    const sess = await this.cachedSession(`attn_fwd:${nh}:${dh}`, () => {
      const nodes: OnnxNode[] = [];
      const { consts, i64, scalar } = OrtKernels.constants();
      const [q, k, v] = OrtKernels.splitHeads(nh, dh, nodes, i64);
      nodes.push({ op: 'Transpose', inputs: [k], outputs: ['kT'], attrs: { perm: { ints: [0, 1, 3, 2] } } });
      nodes.push({ op: 'MatMul', inputs: [q, 'kT'], outputs: ['s0'] });
      nodes.push({ op: 'Mul', inputs: ['s0', scalar(1 / Math.sqrt(dh), 'scale')], outputs: ['s1'] });
      nodes.push({ op: 'Add', inputs: ['s1', 'mask'], outputs: ['s2'] });
      nodes.push({ op: 'Softmax', inputs: ['s2'], outputs: ['pattern'], attrs: { axis: { i: -1 } } });
      nodes.push({ op: 'MatMul', inputs: ['pattern', v], outputs: ['zh'] });
      nodes.push({ op: 'Transpose', inputs: ['zh'], outputs: ['zt'], attrs: { perm: { ints: [0, 2, 1, 3] } } });
      nodes.push({ op: 'Reshape', inputs: ['zt', i64([0, 0, -1])], outputs: ['z'] });
      return OrtKernels.build(nodes, consts, [f32('qkv', ['B', 'T', 3 * H]), f32('mask', ['T', 'T'])], [f32('z', ['B', 'T', H]), f32('pattern', ['B', nh, 'T', 'T'])]);
    });
    const out = await this.run(sess, { qkv: f32Value(qkv, [B, T, 3 * H]), mask: f32Value(this.causalMask(T), [T, T]) });
    return { z: out.z.data as Float32Array, pattern: out.pattern.data as Float32Array };
  }

  async attentionBackward(qkv: Float32Array, pattern: Float32Array, dz: Float32Array, s: AttentionShape): Promise<Float32Array> {
    const { batch: B, pos: T, nHeads: nh, dHead: dh } = s;
    const H = nh * dh;
    const sess = await this.cachedSession(`attn_bwd:${nh}:${dh}`, () => {
      const nodes: OnnxNode[] = [];
      const { consts, i64, scalar } = OrtKernels.constants();
      const [q, k, v] = OrtKernels.splitHeads(nh, dh, nodes, i64);
      const T4 = { perm: { ints: [0, 1, 3, 2] } };
      nodes.push({ op: 'Reshape', inputs: ['dz', i64([0, 0, nh, dh])], outputs: ['dz4'] });
      nodes.push({ op: 'Transpose', inputs: ['dz4'], outputs: ['dzh'], attrs: { perm: { ints: [0, 2, 1, 3] } } }); // [B, nh, T, dh]
      nodes.push({ op: 'Transpose', inputs: [v], outputs: ['vT'], attrs: T4 });
      nodes.push({ op: 'MatMul', inputs: ['dzh', 'vT'], outputs: ['dP'] });
      nodes.push({ op: 'Transpose', inputs: ['pattern'], outputs: ['PT'], attrs: T4 });
      nodes.push({ op: 'MatMul', inputs: ['PT', 'dzh'], outputs: ['dv'] });
      nodes.push({ op: 'Mul', inputs: ['pattern', 'dP'], outputs: ['PdP'] });
      nodes.push({ op: 'ReduceSum', inputs: ['PdP', i64([-1])], outputs: ['dot'], attrs: { keepdims: { i: 1 } } });
      nodes.push({ op: 'Sub', inputs: ['dP', 'dot'], outputs: ['dPc'] });
      nodes.push({ op: 'Mul', inputs: ['pattern', 'dPc'], outputs: ['dS0'] });
      nodes.push({ op: 'Mul', inputs: ['dS0', scalar(1 / Math.sqrt(dh), 'scale')], outputs: ['dS'] });
      nodes.push({ op: 'MatMul', inputs: ['dS', k], outputs: ['dq'] });
      nodes.push({ op: 'Transpose', inputs: ['dS'], outputs: ['dST'], attrs: T4 });
      nodes.push({ op: 'MatMul', inputs: ['dST', q], outputs: ['dk'] });
      for (const n of ['dq', 'dk', 'dv']) nodes.push({ op: 'Unsqueeze', inputs: [n, i64([0])], outputs: [`${n}5`] });
      nodes.push({ op: 'Concat', inputs: ['dq5', 'dk5', 'dv5'], outputs: ['d5'], attrs: { axis: { i: 0 } } }); // [3, B, nh, T, dh]
      nodes.push({ op: 'Transpose', inputs: ['d5'], outputs: ['d5t'], attrs: { perm: { ints: [1, 3, 0, 2, 4] } } }); // [B, T, 3, nh, dh]
      nodes.push({ op: 'Reshape', inputs: ['d5t', i64([0, 0, -1])], outputs: ['dqkv'] });
      return OrtKernels.build(nodes, consts, [f32('qkv', ['B', 'T', 3 * H]), f32('pattern', ['B', nh, 'T', 'T']), f32('dz', ['B', 'T', H])], [f32('dqkv', ['B', 'T', 3 * H])]);
    });
    const out = await this.run(sess, { qkv: f32Value(qkv, [B, T, 3 * H]), pattern: f32Value(pattern, [B, nh, T, T]), dz: f32Value(dz, [B, T, H]) });
    return out.dqkv.data as Float32Array;
  }

  async unembedLoss(inp: UnembedLossInput, backward: boolean): Promise<UnembedLossOutput> {
    const { h, wte, N, D, V, targets, offsetClass, offset } = inp;
    if (h.length !== N * D || wte.length !== V * D || targets.length !== N) throw new Error('unembedLoss: array sizes do not match N, D, V');
    const count = countTargets(targets);
    const sess = await this.cachedSession(`unembed_loss:${+backward}`, () => {
      const nodes: OnnxNode[] = [];
      const { consts } = OrtKernels.constants();
      nodes.push({ op: 'Gemm', inputs: ['h', 'wte', 'off'], outputs: ['logits'], attrs: { transB: { i: 1 } } }); // [N, V]
      nodes.push({ op: 'LogSoftmax', inputs: ['logits'], outputs: ['logp'], attrs: { axis: { i: -1 } } });
      nodes.push({ op: 'GatherElements', inputs: ['logp', 'tgt'], outputs: ['lp'], attrs: { axis: { i: 1 } } }); // [N, 1]
      nodes.push({ op: 'Neg', inputs: ['lp'], outputs: ['nll'] });
      const outputs = [f32('nll', ['N', 1])];
      if (backward) {
        nodes.push({ op: 'Exp', inputs: ['logp'], outputs: ['probs'] });
        nodes.push({ op: 'ScatterElements', inputs: ['probs', 'tgt', 'minus1'], outputs: ['g0'], attrs: { axis: { i: 1 }, reduction: { s: 'add' } } });
        nodes.push({ op: 'Mul', inputs: ['g0', 'w'], outputs: ['dlogits'] }); // [N, V]
        nodes.push({ op: 'MatMul', inputs: ['dlogits', 'wte'], outputs: ['dh'] });
        nodes.push({ op: 'Gemm', inputs: ['dlogits', 'h'], outputs: ['dwte'], attrs: { transA: { i: 1 } } });
        outputs.push(f32('dh', ['N', 'D']), f32('dwte', ['V', 'D']));
      }
      const inputs: ValueInfo[] = [f32('h', ['N', 'D']), f32('wte', ['V', 'D']), f32('off', ['V']), { name: 'tgt', elemType: 'int64', dims: ['N', 1] }];
      if (backward) inputs.push(f32('minus1', ['N', 1]), f32('w', ['N', 1]));
      return OrtKernels.build(nodes, consts, inputs, outputs);
    });
    const off = new Float32Array(V);
    if (offsetClass < V) off[offsetClass] = offset;
    const tgt = new BigInt64Array(N);
    const w = new Float32Array(N);
    for (let r = 0; r < N; r++) {
      if (targets[r] >= 0) {
        if (targets[r] >= V) throw new Error(`unembedLoss: target class ${targets[r]} at row ${r} is not in [0, ${V})`);
        tgt[r] = BigInt(targets[r]);
        w[r] = 1 / count;
      }
    }
    const feeds: Record<string, OrtValue> = { h: f32Value(h, [N, D]), wte: f32Value(wte, [V, D]), off: f32Value(off, [V]), tgt: int64(tgt, [N, 1]) };
    if (backward) {
      feeds.minus1 = f32Value(new Float32Array(N).fill(-1), [N, 1]);
      feeds.w = f32Value(w, [N, 1]);
    }
    const out = await this.run(sess, feeds);
    const raw = out.nll.data as Float32Array;
    const nll = new Float64Array(N);
    for (let r = 0; r < N; r++) if (targets[r] >= 0) nll[r] = raw[r];
    if (!backward) return { nll };
    return { nll, dh: out.dh.data as Float32Array, dwte: out.dwte.data as Float32Array };
  }
}
