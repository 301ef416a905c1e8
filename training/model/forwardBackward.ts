/**
 * GPT-2 forward and backward pass for training (TransformerLens/HF semantics: pre-LN blocks, causal
 * multi-head attention, gelu_new MLP, final LN, unembedding tied to the class embeddings), with the
 * grouped-vocabulary softmax of vocab.ts. Matrix products, attention and the unembedding with its loss go
 * to `Kernels` (onnxruntime); LayerNorm and GELU come from the library's ops (hooks/ops), residual adds
 * are JS loops over Float32Arrays.
 */
import type { HookedTransformerConfig } from '../../hooks/config.ts';
import { geluNew, geluNewDerivative, layerNormBackward, layerNormRows } from '../../hooks/ops/index.ts';
import type { Kernels } from '../ops/kernels.ts';
import { getParam, unembedParamName, zerosLike, type ParamSet } from './params.ts';
import { unseenLogitOffset, type SeenVocab } from './vocab.ts';

/** A training batch in class space. */
export interface ClassBatch {
  batch: number;
  pos: number;
  /** Embedding rows (classes) of the input tokens: [batch, pos]. */
  inputs: Int32Array;
  /** Target class at each position, or -1 to ignore it: [batch, pos]. */
  targets: Int32Array;
}

export interface ForwardResult {
  /**
   * Mean cross-entropy over positions with a target (nats) of the full d_vocab-way softmax: an
   * unseen target token scores log p(class) − log n_unseen, which is exactly its full-vocab log-prob.
   */
  loss: number;
  /** Number of positions with a target. */
  count: number;
  /** Per-position loss (0 where ignored): [batch, pos]. */
  perPosition: Float64Array;
  grads?: ParamSet;
  /** ln_final output [batch·pos, d_model] (with `keepFinal`). */
  final?: Float32Array;
}

/** LayerNorm over rows of x [rows, D]: returns y = xn·w + b and keeps xn, rstd for the backward pass. */
function layerNorm(x: Float32Array, rows: number, D: number, w: Float32Array, b: Float32Array, eps: number) {
  const xn = new Float32Array(rows * D);
  const y = new Float32Array(rows * D);
  const rstd = new Float32Array(rows);
  layerNormRows(x, rows, D, eps, { w, b }, { y, normalized: xn, rstd });
  return { y, xn, rstd };
}

/** Column sums of g [rows, n], added into out [n]. */
function addColumnSums(g: Float32Array, rows: number, n: number, out: Float32Array): void {
  const acc = new Float64Array(n);
  for (let r = 0; r < rows; r++) {
    const o = r * n;
    for (let j = 0; j < n; j++) acc[j] += g[o + j];
  }
  for (let j = 0; j < n; j++) out[j] += acc[j];
}

function addInto(dst: Float32Array, src: Float32Array): void {
  for (let i = 0; i < dst.length; i++) dst[i] += src[i];
}

interface BlockCache {
  xIn: Float32Array;
  ln1: { y: Float32Array; xn: Float32Array; rstd: Float32Array };
  qkv: Float32Array; // [batch·pos, 3H]
  pattern: Float32Array; // [batch, n_heads, pos, pos]
  z: Float32Array; // [batch·pos, H]
  ln2: { y: Float32Array; xn: Float32Array; rstd: Float32Array };
  pre: Float32Array; // [batch·pos, d_mlp]
  post: Float32Array; // [batch·pos, d_mlp]
}

export interface ForwardBackwardOptions {
  backward?: boolean;
  /** Also return the final LayerNorm's output (the unembedding input) [batch·pos, d_model]. */
  keepFinal?: boolean;
  /** Accumulates milliseconds per phase (embed, blocks, unembed_loss, backward_unembed, backward_blocks, backward_embed). */
  timings?: Map<string, number>;
}

/**
 * Runs the model on `batch`; with `backward`, also returns the gradients of the mean loss with
 * respect to every parameter (same names and shapes as `params`).
 */
export async function forwardBackward(
  cfg: HookedTransformerConfig,
  vocab: SeenVocab,
  params: ParamSet,
  batch: ClassBatch,
  mm: Kernels,
  opts: ForwardBackwardOptions = {},
): Promise<ForwardResult> {
  const { d_model: D, n_heads: nh, d_head: dh, d_mlp: M, eps } = cfg;
  const H = nh * dh;
  const { batch: B, pos: T } = batch;
  const N = B * T;
  const V = vocab.nClasses;
  if (T > cfg.n_ctx) throw new Error(`forwardBackward: pos ${T} exceeds n_ctx ${cfg.n_ctx}`);
  if (batch.inputs.length !== N || batch.targets.length !== N) throw new Error(`forwardBackward: inputs and targets must have batch·pos = ${N} entries`);
  const P = (name: string) => getParam(params, name);
  const wte = P('wte.weight'); // [V, D]
  const wpe = P('wpe.weight'); // [n_ctx, D]

  let tMark = performance.now();
  const lap = (phase: string) => {
    if (!opts.timings) return;
    const now = performance.now();
    opts.timings.set(phase, (opts.timings.get(phase) ?? 0) + now - tMark);
    tMark = now;
  };
  // ---- embeddings: x [N, D] ----
  let x = new Float32Array(N * D);
  for (let b = 0; b < B; b++) {
    for (let t = 0; t < T; t++) {
      const r = b * T + t;
      const c = batch.inputs[r];
      if (!(c >= 0 && c < V)) throw new Error(`forwardBackward: input class ${c} at row ${r} is not in [0, ${V})`);
      const eo = c * D;
      const po = t * D;
      const o = r * D;
      for (let d = 0; d < D; d++) x[o + d] = wte[eo + d] + wpe[po + d];
    }
  }

  lap('embed');
  const shape = { batch: B, pos: T, nHeads: nh, dHead: dh };
  const caches: BlockCache[] = [];
  for (let l = 0; l < cfg.n_layers; l++) {
    const h = `h.${l}.`;
    const xIn = x;
    const ln1 = layerNorm(xIn, N, D, P(`${h}ln_1.weight`), P(`${h}ln_1.bias`), eps);
    const qkv = await mm.gemm(ln1.y, P(`${h}attn.c_attn.weight`), N, D, 3 * H, { bias: P(`${h}attn.c_attn.bias`) }); // [N, 3H]
    const { z, pattern } = await mm.attentionForward(qkv, shape); // z [N, H], pattern [B, nh, T, T]
    const attnOut = await mm.gemm(z, P(`${h}attn.c_proj.weight`), N, H, D, { bias: P(`${h}attn.c_proj.bias`) }); // [N, D]
    const xMid = new Float32Array(N * D);
    for (let i = 0; i < xMid.length; i++) xMid[i] = xIn[i] + attnOut[i];
    const ln2 = layerNorm(xMid, N, D, P(`${h}ln_2.weight`), P(`${h}ln_2.bias`), eps);
    const pre = await mm.gemm(ln2.y, P(`${h}mlp.c_fc.weight`), N, D, M, { bias: P(`${h}mlp.c_fc.bias`) }); // [N, M]
    const post = new Float32Array(N * M);
    for (let i = 0; i < pre.length; i++) post[i] = geluNew(pre[i]);
    const mlpOut = await mm.gemm(post, P(`${h}mlp.c_proj.weight`), N, M, D, { bias: P(`${h}mlp.c_proj.bias`) }); // [N, D]
    const xOut = new Float32Array(N * D);
    for (let i = 0; i < xOut.length; i++) xOut[i] = xMid[i] + mlpOut[i];
    caches.push({ xIn, ln1, qkv, pattern, z, ln2, pre, post });
    x = xOut;
  }

  lap('blocks');
  const lnf = layerNorm(x, N, D, P('ln_f.weight'), P('ln_f.bias'), eps);
  const offset = unseenLogitOffset(vocab);
  const uc = vocab.unseenClass;
  // only rows with a target go through the (costly) unembedding: gather them, scatter results back
  const rowsWithTarget: number[] = [];
  for (let r = 0; r < N; r++) if (batch.targets[r] >= 0) rowsWithTarget.push(r);
  if (rowsWithTarget.length === 0) throw new Error('forwardBackward: the batch has no position with a target');
  const Ns = rowsWithTarget.length;
  const compact = Ns < N;
  let hSel = lnf.y;
  let tSel = batch.targets;
  if (compact) {
    hSel = new Float32Array(Ns * D);
    tSel = new Int32Array(Ns);
    rowsWithTarget.forEach((r, i) => {
      hSel.set(lnf.y.subarray(r * D, (r + 1) * D), i * D);
      tSel[i] = batch.targets[r];
    });
  }
  const ul = await mm.unembedLoss({ h: hSel, wte: P(unembedParamName(params)), N: Ns, D, V, offsetClass: uc, offset, targets: tSel }, opts.backward ?? false);
  lap('unembed_loss');
  let perPosition = ul.nll;
  let dhFull = ul.dh;
  if (compact) {
    perPosition = new Float64Array(N);
    rowsWithTarget.forEach((r, i) => { perPosition[r] = ul.nll[i]; });
    if (ul.dh) {
      dhFull = new Float32Array(N * D);
      rowsWithTarget.forEach((r, i) => dhFull!.set(ul.dh!.subarray(i * D, (i + 1) * D), r * D));
    }
  }
  let count = 0;
  let lossSum = 0;
  for (let r = 0; r < N; r++) {
    const tgt = batch.targets[r];
    if (tgt < 0) continue;
    if (tgt >= V) throw new Error(`forwardBackward: target class ${tgt} at row ${r} is not in [0, ${V})`);
    // an unseen target is one specific token: its probability is the class's divided by n_unseen
    if (tgt === uc) perPosition[r] += offset;
    lossSum += perPosition[r];
    count++;
  }
  const loss = lossSum / count;
  const final = opts.keepFinal ? lnf.y : undefined;
  if (!opts.backward) return { loss, count, perPosition, final };

  // ---------------- backward ----------------
  const grads = zerosLike(params);
  const G = (name: string) => getParam(grads, name);
  addInto(G(unembedParamName(params)), ul.dwte!);
  const dhf = dhFull!;
  let dx = layerNormBackward(dhf, lnf.xn, lnf.rstd, N, D, P('ln_f.weight'), G('ln_f.weight'), G('ln_f.bias'));

  lap('backward_unembed');
  for (let l = cfg.n_layers - 1; l >= 0; l--) {
    const h = `h.${l}.`;
    const c = caches[l];
    // MLP: xOut = xMid + post @ W_out + b_out
    const dOut = dx; // [N, D]
    addInto(G(`${h}mlp.c_proj.weight`), await mm.gemm(c.post, dOut, M, N, D, { transA: true }));
    addColumnSums(dOut, N, D, G(`${h}mlp.c_proj.bias`));
    const dpost = await mm.gemm(dOut, P(`${h}mlp.c_proj.weight`), N, D, M, { transB: true }); // [N, M]
    for (let i = 0; i < dpost.length; i++) dpost[i] *= geluNewDerivative(c.pre[i]);
    const dpre = dpost;
    addInto(G(`${h}mlp.c_fc.weight`), await mm.gemm(c.ln2.y, dpre, D, N, M, { transA: true }));
    addColumnSums(dpre, N, M, G(`${h}mlp.c_fc.bias`));
    const dy2 = await mm.gemm(dpre, P(`${h}mlp.c_fc.weight`), N, M, D, { transB: true }); // [N, D]
    const dMidFromLn = layerNormBackward(dy2, c.ln2.xn, c.ln2.rstd, N, D, P(`${h}ln_2.weight`), G(`${h}ln_2.weight`), G(`${h}ln_2.bias`));
    const dMid = dOut;
    addInto(dMid, dMidFromLn); // dMid = dxOut + LN2 path (dOut's buffer reused)

    // attention: xMid = xIn + z @ W_O + b_O
    addInto(G(`${h}attn.c_proj.weight`), await mm.gemm(c.z, dMid, H, N, D, { transA: true }));
    addColumnSums(dMid, N, D, G(`${h}attn.c_proj.bias`));
    const dz = await mm.gemm(dMid, P(`${h}attn.c_proj.weight`), N, D, H, { transB: true }); // [N, H]
    const dqkv = await mm.attentionBackward(c.qkv, c.pattern, dz, shape); // [N, 3H]
    addInto(G(`${h}attn.c_attn.weight`), await mm.gemm(c.ln1.y, dqkv, D, N, 3 * H, { transA: true }));
    addColumnSums(dqkv, N, 3 * H, G(`${h}attn.c_attn.bias`));
    const dy1 = await mm.gemm(dqkv, P(`${h}attn.c_attn.weight`), N, 3 * H, D, { transB: true }); // [N, D]
    const dInFromLn = layerNormBackward(dy1, c.ln1.xn, c.ln1.rstd, N, D, P(`${h}ln_1.weight`), G(`${h}ln_1.weight`), G(`${h}ln_1.bias`));
    addInto(dMid, dInFromLn);
    dx = dMid; // gradient w.r.t. this block's input
  }

  lap('backward_blocks');
  // embeddings
  const dwte = G('wte.weight');
  const dwpe = G('wpe.weight');
  for (let b = 0; b < B; b++) {
    for (let t = 0; t < T; t++) {
      const r = b * T + t;
      const eo = batch.inputs[r] * D;
      const po = t * D;
      const o = r * D;
      for (let d = 0; d < D; d++) {
        const g = dx[o + d];
        dwte[eo + d] += g;
        dwpe[po + d] += g;
      }
    }
  }
  lap('backward_embed');
  return { loss, count, perPosition, grads, final };
}

/**
 * Full-vocabulary logits [batch, pos, d_vocab] of the trainer's model: ln_final output @ class
 * embeddingsᵀ, each token reading its class's logit (every unseen token gets u·h, without the
 * class's log n_unseen, which only the grouped softmax adds).
 */
export async function fullVocabLogits(cfg: HookedTransformerConfig, vocab: SeenVocab, params: ParamSet, batch: ClassBatch, mm: Kernels): Promise<Float32Array> {
  const all: ClassBatch = { ...batch, targets: new Int32Array(batch.inputs.length).fill(0) };
  const { final } = await forwardBackward(cfg, vocab, params, all, mm, { keepFinal: true });
  const N = batch.batch * batch.pos;
  const V = vocab.nClasses;
  const grouped = await mm.gemm(final!, getParam(params, unembedParamName(params)), N, cfg.d_model, V, { transB: true }); // [N, n_classes]
  const out = new Float32Array(N * cfg.d_vocab);
  for (let r = 0; r < N; r++) for (let t = 0; t < cfg.d_vocab; t++) out[r * cfg.d_vocab + t] = grouped[r * V + vocab.classOf[t]];
  return out;
}
