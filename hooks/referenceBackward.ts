/**
 * Plain-TypeScript reference backward pass of GPT-2 (loops over arrays, float64 accumulation, no
 * onnxruntime): the gradient of a scalar metric of the logits with respect to the value at every
 * hook point, after referenceForward. It is the oracle the tests check the engine's backward graph
 * against (and is itself checked against finite differences), so, like the reference forward, it
 * keeps its own arithmetic and no production file imports it.
 *
 * Semantics (the engine's, see README "Gradients"): the gradient at hook point X is with respect to
 * the value that flowed downstream (after its hook); upstream flows that gradient, zeroed where the
 * hook changed X's value (and where `stopGradient` says), or a backward hook's replacement.
 */
import type { HookedTransformerConfig } from './config.ts';
import { blockHook, layerNormHooks, type HookName } from './hookPoints.ts';
import { geluDerivative, referenceForward, type ReferenceOptions, type ReferenceResult } from './reference.ts';
import { Tensor } from './tensor.ts';
import type { BlockWeights, LayerNormWeights, TransformerWeights } from './weights.ts';

/** A backward hook: gets the gradient at a hook point; a returned tensor (same shape) flows upstream instead. */
export type ReferenceBwdHookFn = (grad: Tensor, name: HookName) => Tensor | void;

export interface ReferenceBackwardOptions extends Omit<ReferenceOptions, 'cacheNames'> {
  /** The gradient of the metric with respect to the logits [batch, pos, d_vocab], from the logits. */
  seed: (logits: Tensor) => Tensor;
  bwdHooks?: Partial<Record<HookName, ReferenceBwdHookFn>>;
  /** Entries (a 0/1 mask over the hook's shape) where the gradient does not flow upstream, beside those a hook changed (an intervention's mask). */
  stopGradient?: Partial<Record<HookName, ArrayLike<number>>>;
}

export interface ReferenceBackwardResult extends ReferenceResult {
  /** The gradient at every hook point the backward pass reaches, in the order it reaches them. */
  grads: Map<HookName, Tensor>;
}

type F64 = Float64Array;

/** The state of one backward pass: the forward's cache and the hook point every gradient passes through. */
class Backward {
  readonly grads = new Map<HookName, Tensor>();
  readonly rows: number;

  constructor(
    readonly cfg: HookedTransformerConfig,
    readonly batch: number,
    readonly pos: number,
    readonly mask: number[][] | undefined,
    private readonly cache: Map<HookName, Tensor>,
    private readonly changed: Map<HookName, Uint8Array>,
    private readonly opts: ReferenceBackwardOptions,
  ) {
    this.rows = batch * pos;
  }

  /** The forward value at `name` (after its hook). */
  value(name: HookName): Float32Array {
    const t = this.cache.get(name);
    if (!t) throw new Error(`internal: the reference forward did not compute '${name}'`);
    return t.data;
  }

  /** Records `grad` as hook point `name`'s gradient; returns what flows upstream. */
  point(name: HookName, grad: F64): F64 {
    const shape = this.cache.get(name)!.shape;
    const t = new Tensor(Float32Array.from(grad), shape);
    this.grads.set(name, t);
    const hook = this.opts.bwdHooks?.[name];
    if (hook) {
      const out = hook(new Tensor(Float32Array.from(grad), shape), name);
      if (out !== undefined) {
        if (!(out instanceof Tensor) || out.shape.join(',') !== shape.join(',')) throw new Error(`backward hook '${name}' must return a Tensor of shape [${shape.join(', ')}] or nothing`);
        return Float64Array.from(out.data);
      }
    }
    const up = Float64Array.from(grad);
    for (const stop of [this.changed.get(name), this.opts.stopGradient?.[name]]) {
      if (stop) for (let i = 0; i < up.length; i++) if (stop[i]) up[i] = 0;
    }
    return up;
  }

  keyAllowed(b: number, q: number, k: number): boolean {
    return k <= q && !(this.mask !== undefined && this.mask[b][k] === 0);
  }
}

/** dy [rows, dOut] -> dy Wᵀ [rows, dIn] for W [dIn, dOut] row-major (Lensboard's [in, out] layout). */
function linearBackward(dy: F64, rows: number, W: Float32Array, dIn: number, dOut: number): F64 {
  const dx = new Float64Array(rows * dIn);
  for (let r = 0; r < rows; r++) {
    for (let i = 0; i < dIn; i++) {
      let s = 0;
      for (let j = 0; j < dOut; j++) s += dy[r * dOut + j] * W[i * dOut + j];
      dx[r * dIn + i] = s;
    }
  }
  return dx;
}

/** LayerNorm backward through hook_normalized and hook_scale: dy [rows, d_model] -> d of the LayerNorm's input x. */
function layerNormBackward(bw: Backward, hooks: { scale: HookName; normalized: HookName }, x: Float32Array, ln: LayerNormWeights | null, dy: F64): F64 {
  const { rows } = bw;
  const { d_model: D, eps } = bw.cfg;
  const dyUp = bw.point(hooks.normalized, dy);
  const used = bw.value(hooks.scale); // [rows], the scale the forward divided by
  const centred = new Float64Array(rows * D);
  const computed = new Float64Array(rows);
  const dScale = new Float64Array(rows);
  for (let r = 0; r < rows; r++) {
    let mean = 0;
    for (let d = 0; d < D; d++) mean += x[r * D + d];
    mean /= D;
    let sq = 0;
    for (let d = 0; d < D; d++) {
      const c = x[r * D + d] - mean;
      centred[r * D + d] = c;
      sq += c * c;
    }
    computed[r] = Math.sqrt(sq / D + eps);
    let s = 0;
    for (let d = 0; d < D; d++) s += dyUp[r * D + d] * (ln ? ln.w[d] : 1) * centred[r * D + d];
    dScale[r] = -s / (used[r] * used[r]);
  }
  const dScaleUp = bw.point(hooks.scale, dScale);
  const dx = new Float64Array(rows * D);
  for (let r = 0; r < rows; r++) {
    const dc = new Float64Array(D);
    let mean = 0;
    for (let d = 0; d < D; d++) {
      const dxn = dyUp[r * D + d] * (ln ? ln.w[d] : 1);
      dc[d] = dxn / used[r] + (dScaleUp[r] * centred[r * D + d]) / (D * computed[r]);
      mean += dc[d];
    }
    mean /= D;
    for (let d = 0; d < D; d++) dx[r * D + d] = dc[d] - mean;
  }
  return dx;
}

/** The MLP backward: hook_mlp_out's gradient -> the gradient of ln2's output. */
function mlpBackward(bw: Backward, l: number, w: BlockWeights, dOut: F64): F64 {
  const { rows } = bw;
  const { d_model, d_mlp, act_fn } = bw.cfg;
  const dOutUp = bw.point(blockHook(l, 'hook_mlp_out'), dOut);
  const dPostUp = bw.point(blockHook(l, 'mlp.hook_post'), linearBackward(dOutUp, rows, w.W_out, d_mlp, d_model));
  const pre = bw.value(blockHook(l, 'mlp.hook_pre'));
  const dPre = new Float64Array(pre.length);
  for (let i = 0; i < pre.length; i++) dPre[i] = dPostUp[i] * geluDerivative(pre[i], act_fn);
  const dPreUp = bw.point(blockHook(l, 'mlp.hook_pre'), dPre);
  return linearBackward(dPreUp, rows, w.W_in, d_model, d_mlp);
}

/** Attention backward: hook_attn_out's gradient -> the gradient of ln1's output. */
function attentionBackward(bw: Backward, l: number, w: BlockWeights, dOut: F64): F64 {
  const { batch, pos, rows } = bw;
  const { n_heads: nh, d_head: dh, d_model: D } = bw.cfg;
  const H = nh * dh;
  const at = blockHook.bind(null, l) as (s: Parameters<typeof blockHook>[1]) => HookName;
  const dOutUp = bw.point(at('hook_attn_out'), dOut);
  // attn_out = Σ_h result[h] + b_O: every head's result gets the whole gradient.
  const dResult = new Float64Array(rows * nh * D);
  for (let r = 0; r < rows; r++) for (let h = 0; h < nh; h++) for (let d = 0; d < D; d++) dResult[(r * nh + h) * D + d] = dOutUp[r * D + d];
  const dResultUp = bw.point(at('attn.hook_result'), dResult);
  // result[r, h] = z[r, h] W_O[h]
  const dz = new Float64Array(rows * H);
  for (let r = 0; r < rows; r++) {
    for (let h = 0; h < nh; h++) {
      for (let e = 0; e < dh; e++) {
        let s = 0;
        for (let d = 0; d < D; d++) s += dResultUp[(r * nh + h) * D + d] * w.W_O[(h * dh + e) * D + d];
        dz[r * H + h * dh + e] = s;
      }
    }
  }
  const dzUp = bw.point(at('attn.hook_z'), dz);
  const pattern = bw.value(at('attn.hook_pattern'));
  const v = bw.value(at('attn.hook_v'));
  const q = bw.value(at('attn.hook_q'));
  const k = bw.value(at('attn.hook_k'));
  const scores = bw.value(at('attn.hook_attn_scores'));
  const pIdx = (b: number, h: number, qp: number, kp: number) => ((b * nh + h) * pos + qp) * pos + kp;
  const hIdx = (b: number, p: number, h: number, e: number) => (b * pos + p) * H + h * dh + e;
  // z[b, q, h] = Σ_k pattern[b, h, q, k] v[b, k, h]
  const dPattern = new Float64Array(pattern.length);
  const dv = new Float64Array(rows * H);
  for (let b = 0; b < batch; b++) {
    for (let h = 0; h < nh; h++) {
      for (let qp = 0; qp < pos; qp++) {
        for (let kp = 0; kp < pos; kp++) {
          let s = 0;
          for (let e = 0; e < dh; e++) {
            s += dzUp[hIdx(b, qp, h, e)] * v[hIdx(b, kp, h, e)];
            dv[hIdx(b, kp, h, e)] += pattern[pIdx(b, h, qp, kp)] * dzUp[hIdx(b, qp, h, e)];
          }
          dPattern[pIdx(b, h, qp, kp)] = s;
        }
      }
    }
  }
  const dvUp = bw.point(at('attn.hook_v'), dv);
  const dPatternUp = bw.point(at('attn.hook_pattern'), dPattern);
  // pattern = softmax(scores) (recomputed from the scores as the forward's softmax saw them; all -inf rows are 0)
  const dScores = new Float64Array(pattern.length);
  const p = new Float64Array(pos);
  for (let b = 0; b < batch; b++) {
    for (let h = 0; h < nh; h++) {
      for (let qp = 0; qp < pos; qp++) {
        let max = -Infinity;
        for (let kp = 0; kp < pos; kp++) max = Math.max(max, scores[pIdx(b, h, qp, kp)]);
        if (max === -Infinity) continue;
        let sum = 0;
        for (let kp = 0; kp < pos; kp++) sum += p[kp] = Math.exp(scores[pIdx(b, h, qp, kp)] - max);
        let dot = 0;
        for (let kp = 0; kp < pos; kp++) dot += (p[kp] /= sum) * dPatternUp[pIdx(b, h, qp, kp)];
        for (let kp = 0; kp < pos; kp++) dScores[pIdx(b, h, qp, kp)] = p[kp] * (dPatternUp[pIdx(b, h, qp, kp)] - dot);
      }
    }
  }
  const dScoresUp = bw.point(at('attn.hook_attn_scores'), dScores);
  // scores = q·k / √d_head where the key may be read
  const dq = new Float64Array(rows * H);
  const dk = new Float64Array(rows * H);
  const inv = 1 / Math.sqrt(dh);
  for (let b = 0; b < batch; b++) {
    for (let h = 0; h < nh; h++) {
      for (let qp = 0; qp < pos; qp++) {
        for (let kp = 0; kp < pos; kp++) {
          if (!bw.keyAllowed(b, qp, kp)) continue;
          const g = dScoresUp[pIdx(b, h, qp, kp)] * inv;
          for (let e = 0; e < dh; e++) {
            dq[hIdx(b, qp, h, e)] += g * k[hIdx(b, kp, h, e)];
            dk[hIdx(b, kp, h, e)] += g * q[hIdx(b, qp, h, e)];
          }
        }
      }
    }
  }
  const dqUp = bw.point(at('attn.hook_q'), dq);
  const dkUp = bw.point(at('attn.hook_k'), dk);
  const dx = linearBackward(dqUp, rows, w.W_Q, D, H);
  const dxK = linearBackward(dkUp, rows, w.W_K, D, H);
  const dxV = linearBackward(dvUp, rows, w.W_V, D, H);
  for (let i = 0; i < dx.length; i++) dx[i] += dxK[i] + dxV[i];
  return dx;
}

/** Block `l` backward: hook_resid_post's gradient -> what flows upstream of its hook_resid_pre. */
function blockBackward(bw: Backward, l: number, w: BlockWeights, dPost: F64): F64 {
  const dPostUp = bw.point(blockHook(l, 'hook_resid_post'), dPost);
  const dMidLn = layerNormBackward(bw, layerNormHooks(l, 'ln2'), bw.value(blockHook(l, 'hook_resid_mid')), w.ln2, mlpBackward(bw, l, w, dPostUp));
  const dMid = new Float64Array(dPostUp.length);
  for (let i = 0; i < dMid.length; i++) dMid[i] = dPostUp[i] + dMidLn[i];
  const dMidUp = bw.point(blockHook(l, 'hook_resid_mid'), dMid);
  const dPreLn = layerNormBackward(bw, layerNormHooks(l, 'ln1'), bw.value(blockHook(l, 'hook_resid_pre')), w.ln1, attentionBackward(bw, l, w, dMidUp));
  const dPre = new Float64Array(dMidUp.length);
  for (let i = 0; i < dPre.length; i++) dPre[i] = dMidUp[i] + dPreLn[i];
  return bw.point(blockHook(l, 'hook_resid_pre'), dPre);
}

/** Bool mask of the entries where `before` and `after` differ (NaN equals NaN). */
function changedEntries(before: Float32Array, after: Float32Array): Uint8Array {
  const m = new Uint8Array(before.length);
  for (let i = 0; i < m.length; i++) if (before[i] !== after[i] && !(before[i] !== before[i] && after[i] !== after[i])) m[i] = 1;
  return m;
}

/**
 * Runs referenceForward (with `opts.hooks`) and then the backward pass of the metric whose gradient
 * with respect to the logits `opts.seed` gives (rows at padded positions zeroed). Returns the forward's
 * logits and cache (every hook point) and the gradient at every hook point (hook_tokens has none).
 */
export function referenceBackward(cfg: HookedTransformerConfig, weights: TransformerWeights, tokens: number[][], opts: ReferenceBackwardOptions): ReferenceBackwardResult {
  const changed = new Map<HookName, Uint8Array>();
  const hooks: ReferenceOptions['hooks'] = {};
  for (const [name, fn] of Object.entries(opts.hooks ?? {}) as [HookName, NonNullable<ReferenceOptions['hooks']>[HookName]][]) {
    if (!fn) continue;
    hooks[name] = (act, n) => {
      const before = Float32Array.from(act.data);
      const out = fn(act, n);
      changed.set(n, changedEntries(before, (out ?? act).data));
      return out;
    };
  }
  const fwd = referenceForward(cfg, weights, tokens, { hooks, attentionMask: opts.attentionMask });
  const batch = tokens.length;
  const pos = tokens[0].length;
  const { d_model: D, d_vocab: V } = cfg;
  const seed = opts.seed(fwd.logits);
  if (seed.shape.join(',') !== fwd.logits.shape.join(',')) throw new Error(`referenceBackward: the seed must be [${fwd.logits.shape.join(', ')}]`);
  const dLogits = Float64Array.from(seed.data);
  opts.attentionMask?.forEach((row, b) => row.forEach((m, p) => { if (m === 0) dLogits.fill(0, (b * pos + p) * V, (b * pos + p + 1) * V); }));
  const bw = new Backward(cfg, batch, pos, opts.attentionMask, fwd.cache, changed, opts);
  const dFinal = linearBackward(dLogits, bw.rows, weights.W_U, D, V);
  let d = layerNormBackward(bw, layerNormHooks(null, 'ln_final'), bw.value(blockHook(cfg.n_layers - 1, 'hook_resid_post')), weights.ln_final, dFinal);
  for (let l = cfg.n_layers - 1; l >= 0; l--) d = blockBackward(bw, l, weights.blocks[l], d);
  bw.point('hook_embed', d);
  bw.point('hook_pos_embed', d);
  return { ...fwd, grads: bw.grads };
}
