/**
 * Plain-TypeScript reference forward pass of GPT-2 with TransformerLens semantics (loops over
 * Float32Arrays, no onnxruntime). It is the oracle the tests check the engine, the toolkit and the
 * trainer against, so it keeps its own arithmetic (LayerNorm, gelu, softmax) and no production file
 * imports it; users reach it as `lensboard/reference`.
 */
import type { ActFn, HookedTransformerConfig } from './config.ts';
import { blockHook, hookShape, layerNormHooks, listHookPoints, type BlockHookSuffix, type HookName, type HookPointInfo } from './hookPoints.ts';
import { Tensor } from './tensor.ts';
import { checkWeightShapes, type BlockWeights, type LayerNormWeights, type TransformerWeights } from './weights.ts';

/** A forward hook: returns a replacement activation (same shape) or nothing (in-place edits still flow downstream). */
export type ReferenceHookFn = (act: Tensor, name: HookName) => Tensor | void;

export interface ReferenceOptions {
  hooks?: Partial<Record<HookName, ReferenceHookFn>>;
  /** [batch, pos] of 0/1, 1 = real token; defaults to all ones. */
  attentionMask?: number[][];
  /** Which hook points to cache; defaults to every computed hook point (hook_tokens is computed only when hooked or asked for here). */
  cacheNames?: (name: HookName) => boolean;
}

export interface ReferenceResult {
  logits: Tensor; // [batch, pos, d_vocab]
  /** Cached activations in forward order (Map insertion order). */
  cache: Map<HookName, Tensor>;
}

const SQRT_2_OVER_PI = Math.sqrt(2 / Math.PI);
const TWO_OVER_SQRT_PI = 2 / Math.sqrt(Math.PI);

/**
 * The error function, accurate to ~1e-15 in float64. Uses the everywhere-positive series
 * erf(x) = 2/√π · e^{-x²} · Σ_n (2x²)^n x / (1·3·…·(2n+1)) (no cancellation), and ±1 for |x| ≥ 6
 * where erfc(6) ≈ 2e-17 is below float64 resolution.
 */
export function erf(x: number): number {
  if (Number.isNaN(x)) return NaN;
  const a = Math.abs(x);
  if (a >= 6) return Math.sign(x);
  const x2 = a * a;
  let term = a;
  let sum = a;
  for (let n = 1; n < 200; n++) {
    term *= (2 * x2) / (2 * n + 1);
    sum += term;
    if (term < sum * 1e-17) break;
  }
  const r = TWO_OVER_SQRT_PI * Math.exp(-x2) * sum;
  return x < 0 ? -r : r;
}

/** TransformerLens's activation functions (gelu_new, exact-erf gelu, gelu_fast, relu) for one value, in float64. */
export function gelu(x: number, actFn: ActFn): number {
  switch (actFn) {
    case 'gelu_new':
      return 0.5 * x * (1 + Math.tanh(SQRT_2_OVER_PI * (x + 0.044715 * x * x * x)));
    case 'gelu':
      return 0.5 * x * (1 + erf(x / Math.SQRT2));
    case 'gelu_fast':
      return 0.5 * x * (1 + Math.tanh(x * 0.7978845608 * (1 + 0.044715 * x * x)));
    case 'relu':
      return x > 0 ? x : 0;
    default:
      throw new Error(`unknown act_fn '${String(actFn)}'; allowed: gelu_new, gelu, gelu_fast, relu`);
  }
}

/** d gelu / dx for TransformerLens's activation functions, in float64 (relu: 0 at x = 0). */
export function geluDerivative(x: number, actFn: ActFn): number {
  switch (actFn) {
    case 'gelu_new': {
      const t = Math.tanh(SQRT_2_OVER_PI * (x + 0.044715 * x * x * x));
      return 0.5 * (1 + t) + 0.5 * x * (1 - t * t) * SQRT_2_OVER_PI * (1 + 3 * 0.044715 * x * x);
    }
    case 'gelu':
      return 0.5 * (1 + erf(x / Math.SQRT2)) + (x * Math.exp(-0.5 * x * x)) / Math.sqrt(2 * Math.PI);
    case 'gelu_fast': {
      const t = Math.tanh(x * 0.7978845608 * (1 + 0.044715 * x * x));
      return 0.5 * (1 + t) + 0.5 * x * (1 - t * t) * 0.7978845608 * (1 + 3 * 0.044715 * x * x);
    }
    case 'relu':
      return x > 0 ? 1 : 0;
    default:
      throw new Error(`unknown act_fn '${String(actFn)}'; allowed: gelu_new, gelu, gelu_fast, relu`);
  }
}

/**
 * out[r, :] = x[r, :] @ W + b for `rows` rows: x [rows, dIn], W [dIn, dOut] row-major, b [dOut] or null.
 * Accumulates in float64, stores float32.
 */
function linear(x: Float32Array, rows: number, dIn: number, W: Float32Array, dOut: number, b: Float32Array | null): Float32Array {
  const out = new Float32Array(rows * dOut);
  const acc = new Float64Array(dOut);
  for (let r = 0; r < rows; r++) {
    if (b) for (let j = 0; j < dOut; j++) acc[j] = b[j];
    else acc.fill(0);
    const xo = r * dIn;
    for (let k = 0; k < dIn; k++) {
      const xv = x[xo + k];
      if (xv === 0) continue;
      const wo = k * dOut;
      for (let j = 0; j < dOut; j++) acc[j] += xv * W[wo + j];
    }
    out.set(acc, r * dOut);
  }
  return out;
}

function sameShape(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((v, i) => v === b[i]);
}

function checkInputs(cfg: HookedTransformerConfig, tokens: number[][], mask: number[][] | undefined): { batch: number; pos: number } {
  if (!Array.isArray(tokens) || tokens.length === 0) throw new Error('referenceForward: tokens must be a non-empty number[][] [batch, pos]');
  const pos = tokens[0].length;
  if (pos === 0) throw new Error('referenceForward: prompts must have at least one token');
  if (pos > cfg.n_ctx) throw new Error(`referenceForward: ${pos} tokens exceed n_ctx = ${cfg.n_ctx}`);
  tokens.forEach((row, b) => {
    if (row.length !== pos) throw new Error(`referenceForward: prompt ${b} has ${row.length} tokens but prompt 0 has ${pos}; pad the batch to equal length`);
    row.forEach((t, p) => {
      if (!Number.isInteger(t) || t < 0 || t >= cfg.d_vocab) {
        throw new Error(`referenceForward: token ${t} at [${b}][${p}] is not an integer in [0, ${cfg.d_vocab})`);
      }
    });
  });
  if (mask !== undefined) {
    if (mask.length !== tokens.length) throw new Error(`referenceForward: attentionMask has ${mask.length} rows but tokens has ${tokens.length}`);
    mask.forEach((row, b) => {
      if (row.length !== pos) throw new Error(`referenceForward: attentionMask row ${b} has ${row.length} entries; expected ${pos}`);
      row.forEach((m, p) => {
        if (m !== 0 && m !== 1) throw new Error(`referenceForward: attentionMask[${b}][${p}] = ${m}; allowed: 0 or 1`);
      });
    });
  }
  return { batch: tokens.length, pos };
}

/** One run: its sizes, its attention mask, and the hook point every value passes through. */
interface Run {
  cfg: HookedTransformerConfig;
  batch: number;
  pos: number;
  /** batch · pos */
  rows: number;
  mask: number[][] | undefined;
  /** Runs the hook point `name` on `data` (its hook may replace it; it is cached); returns what flows downstream. */
  point(name: HookName, data: Float32Array): Float32Array;
}

/** The hook points a run can hook (TransformerLens's, hook_tokens included), checking that every hook given names one. */
function checkHooks(cfg: HookedTransformerConfig, hooks: Partial<Record<HookName, ReferenceHookFn>>): Map<HookName, HookPointInfo> {
  const infos = new Map<HookName, HookPointInfo>();
  for (const info of listHookPoints(cfg, { useHookTokens: true })) infos.set(info.name, info);
  for (const name of Object.keys(hooks) as HookName[]) {
    if (hooks[name] === undefined) continue;
    const info = infos.get(name);
    if (!info) {
      const optional = listHookPoints(cfg, { useAttnIn: true, useSplitQkvInput: true, useHookMlpIn: true }).some((h) => h.name === name);
      throw new Error(
        optional
          ? `referenceForward: hook point '${name}' is one of TransformerLens's optional hook points, which the reference does not compute`
          : `referenceForward: unknown hook point '${name}' for a ${cfg.n_layers}-layer model`,
      );
    }
    if (typeof hooks[name] !== 'function') throw new Error(`referenceForward: hook for '${name}' is not a function`);
  }
  return infos;
}

/** Run.point: the hook (if any) may return a same-shaped replacement; the value is cached when `cacheNames` says so. */
function hookPoint(
  cfg: HookedTransformerConfig, infos: Map<HookName, HookPointInfo>, batch: number, pos: number, opts: ReferenceOptions, cache: Map<HookName, Tensor>,
): Run['point'] {
  const hooks = opts.hooks ?? {};
  return (name, data) => {
    const info = infos.get(name);
    if (!info) throw new Error(`internal: no hook point '${name}'`);
    const shape = hookShape(info, cfg, batch, pos);
    let t = new Tensor(data, shape);
    const fn = hooks[name];
    if (fn) {
      const out = fn(t, name);
      if (out !== undefined) {
        if (!(out instanceof Tensor)) throw new Error(`hook '${name}' returned ${typeof out}; return a Tensor of shape [${shape.join(', ')}] or nothing`);
        if (!sameShape(out.shape, shape)) {
          throw new Error(`hook '${name}' returned shape [${out.shape.join(', ')}] but the activation has shape [${shape.join(', ')}]`);
        }
        t = out;
      }
    }
    if (opts.cacheNames === undefined || opts.cacheNames(name)) cache.set(name, t);
    return t.data;
  };
}

/** hook_tokens (computed only when hooked or cached): the tokens a hook may replace, checked. */
function hookedTokens(run: Run, tokens: number[][], opts: ReferenceOptions): number[][] {
  if (opts.hooks?.hook_tokens === undefined && !(opts.cacheNames !== undefined && opts.cacheNames('hook_tokens'))) return tokens;
  const { pos } = run;
  const { d_vocab } = run.cfg;
  const td = run.point('hook_tokens', Float32Array.from(tokens.flat())); // [batch, pos]
  return tokens.map((row, b) =>
    row.map((_, p) => {
      const t = td[b * pos + p];
      if (!Number.isInteger(t) || t < 0 || t >= d_vocab) throw new Error(`hook 'hook_tokens' produced token ${t} at [${b}][${p}]; allowed: integers in [0, ${d_vocab})`);
      return t;
    }),
  );
}

/** hook_embed + hook_pos_embed: the residual stream entering block 0, [batch, pos, d_model]. */
function embeddings(run: Run, weights: TransformerWeights, toks: number[][]): Float32Array {
  const { batch, pos, rows, mask } = run;
  const { d_model } = run.cfg;
  const embed = new Float32Array(rows * d_model); // [batch, pos, d_model]
  const posEmbed = new Float32Array(rows * d_model); // [batch, pos, d_model]
  for (let b = 0; b < batch; b++) {
    let cum = 0;
    for (let p = 0; p < pos; p++) {
      const o = (b * pos + p) * d_model;
      embed.set(weights.W_E.subarray(toks[b][p] * d_model, (toks[b][p] + 1) * d_model), o);
      if (mask === undefined) {
        posEmbed.set(weights.W_pos.subarray(p * d_model, (p + 1) * d_model), o);
      } else {
        cum += mask[b][p];
        if (mask[b][p] === 1) {
          const position = Math.max(cum - 1, 0);
          posEmbed.set(weights.W_pos.subarray(position * d_model, (position + 1) * d_model), o);
        } // padding tokens: positional embedding stays 0
      }
    }
  }
  const embedOut = run.point('hook_embed', embed);
  const posOut = run.point('hook_pos_embed', posEmbed);
  const resid = new Float32Array(rows * d_model); // [batch, pos, d_model]
  for (let i = 0; i < resid.length; i++) resid[i] = embedOut[i] + posOut[i];
  return resid;
}

/** TL LayerNorm / LayerNormPre over the last axis of x [batch, pos, d_model], through its hook_scale and hook_normalized. */
function layerNorm(run: Run, hooks: { scale: HookName; normalized: HookName }, x: Float32Array, ln: LayerNormWeights | null): Float32Array {
  const { rows } = run;
  const { d_model, eps } = run.cfg;
  const centred = new Float64Array(rows * d_model);
  const scale = new Float32Array(rows); // [batch, pos, 1]
  for (let r = 0; r < rows; r++) {
    const o = r * d_model;
    let mean = 0;
    for (let d = 0; d < d_model; d++) mean += x[o + d];
    mean /= d_model;
    let sq = 0;
    for (let d = 0; d < d_model; d++) {
      const c = x[o + d] - mean;
      centred[o + d] = c;
      sq += c * c;
    }
    scale[r] = Math.sqrt(sq / d_model + eps);
  }
  const s = run.point(hooks.scale, scale);
  const normalized = new Float32Array(rows * d_model); // [batch, pos, d_model]
  for (let r = 0; r < rows; r++) {
    const o = r * d_model;
    const sr = s[r];
    for (let d = 0; d < d_model; d++) {
      const n = centred[o + d] / sr;
      normalized[o + d] = ln ? n * ln.w[d] + ln.b[d] : n;
    }
  }
  return run.point(hooks.normalized, normalized);
}

/** attn_scores [batch, head, query_pos, key_pos] = q·k / √d_head, -Infinity for later or padded keys; q, k [batch, pos, head, d_head]. */
function attentionScores(run: Run, q: Float32Array, k: Float32Array): Float32Array {
  const { batch, pos, mask } = run;
  const { n_heads, d_head } = run.cfg;
  const H = n_heads * d_head;
  const invSqrtDHead = 1 / Math.sqrt(d_head);
  const keyMasked = (b: number, kp: number) => mask !== undefined && mask[b][kp] === 0;
  const scores = new Float32Array(batch * n_heads * pos * pos);
  for (let b = 0; b < batch; b++) {
    for (let h = 0; h < n_heads; h++) {
      for (let qp = 0; qp < pos; qp++) {
        const qo = (b * pos + qp) * H + h * d_head;
        const so = ((b * n_heads + h) * pos + qp) * pos;
        for (let kp = 0; kp < pos; kp++) {
          if (kp > qp || keyMasked(b, kp)) {
            scores[so + kp] = -Infinity;
            continue;
          }
          const ko = (b * pos + kp) * H + h * d_head;
          let dot = 0;
          for (let e = 0; e < d_head; e++) dot += q[qo + e] * k[ko + e];
          scores[so + kp] = dot * invSqrtDHead;
        }
      }
    }
  }
  return scores;
}

/** pattern: softmax over key_pos; a row with no finite score (all -Infinity) is all zeros (TL maps NaN to 0). */
function attentionPattern(run: Run, scores: Float32Array): Float32Array {
  const { batch, pos } = run;
  const pattern = new Float32Array(scores.length);
  const ex = new Float64Array(pos);
  for (let row = 0; row < batch * run.cfg.n_heads * pos; row++) {
    const o = row * pos;
    let max = -Infinity;
    for (let kp = 0; kp < pos; kp++) if (scores[o + kp] > max) max = scores[o + kp];
    if (max === -Infinity) continue; // zeros
    let sum = 0;
    for (let kp = 0; kp < pos; kp++) {
      ex[kp] = Math.exp(scores[o + kp] - max);
      sum += ex[kp];
    }
    for (let kp = 0; kp < pos; kp++) {
      const pv = ex[kp] / sum;
      pattern[o + kp] = Number.isNaN(pv) ? 0 : pv;
    }
  }
  return pattern;
}

/** z[b, q, h, :] = Σ_k pattern[b, h, q, k] · v[b, k, h, :]   [batch, pos, head, d_head] */
function patternTimesValues(run: Run, pattern: Float32Array, v: Float32Array): Float32Array {
  const { batch, pos, rows } = run;
  const { n_heads, d_head } = run.cfg;
  const H = n_heads * d_head;
  const z = new Float32Array(rows * H);
  const zacc = new Float64Array(d_head);
  for (let b = 0; b < batch; b++) {
    for (let h = 0; h < n_heads; h++) {
      for (let qp = 0; qp < pos; qp++) {
        zacc.fill(0);
        const po = ((b * n_heads + h) * pos + qp) * pos;
        for (let kp = 0; kp < pos; kp++) {
          const a = pattern[po + kp];
          if (a === 0) continue;
          const vo = (b * pos + kp) * H + h * d_head;
          for (let e = 0; e < d_head; e++) zacc[e] += a * v[vo + e];
        }
        z.set(zacc, (b * pos + qp) * H + h * d_head);
      }
    }
  }
  return z;
}

/** result[b, p, h, :] = z[b, p, h, :] @ W_O[h]   [batch, pos, head, d_model] */
function headResults(run: Run, z: Float32Array, W_O: Float32Array): Float32Array {
  const { rows } = run;
  const { n_heads, d_head, d_model } = run.cfg;
  const H = n_heads * d_head;
  const result = new Float32Array(rows * n_heads * d_model);
  const racc = new Float64Array(d_model);
  for (let r = 0; r < rows; r++) {
    for (let h = 0; h < n_heads; h++) {
      racc.fill(0);
      for (let e = 0; e < d_head; e++) {
        const zv = z[r * H + h * d_head + e];
        const wo = (h * d_head + e) * d_model;
        for (let d = 0; d < d_model; d++) racc[d] += zv * W_O[wo + d];
      }
      result.set(racc, (r * n_heads + h) * d_model);
    }
  }
  return result;
}

/** Attention of block `l` on its LayerNormed input x1 [batch, pos, d_model]: -> hook_attn_out [batch, pos, d_model]. */
function attention(run: Run, l: number, w: BlockWeights, x1: Float32Array): Float32Array {
  const { rows } = run;
  const { d_model, n_heads, d_head } = run.cfg;
  const H = n_heads * d_head;
  const at = (suffix: BlockHookSuffix) => blockHook(l, suffix);
  // q, k, v: [batch, pos, head, d_head] (memory order of [rows, H])
  const q = run.point(at('attn.hook_q'), linear(x1, rows, d_model, w.W_Q, H, w.b_Q));
  const k = run.point(at('attn.hook_k'), linear(x1, rows, d_model, w.W_K, H, w.b_K));
  const v = run.point(at('attn.hook_v'), linear(x1, rows, d_model, w.W_V, H, w.b_V));
  const scores = run.point(at('attn.hook_attn_scores'), attentionScores(run, q, k)); // [batch, head, query_pos, key_pos]
  const pattern = run.point(at('attn.hook_pattern'), attentionPattern(run, scores));
  const z = run.point(at('attn.hook_z'), patternTimesValues(run, pattern, v)); // [batch, pos, head, d_head]
  const result = run.point(at('attn.hook_result'), headResults(run, z, w.W_O)); // [batch, pos, head, d_model]
  // attn_out = Σ_h result + b_O   [batch, pos, d_model]
  const attnOut = new Float32Array(rows * d_model);
  for (let r = 0; r < rows; r++) {
    for (let d = 0; d < d_model; d++) {
      let s = 0;
      for (let h = 0; h < n_heads; h++) s += result[(r * n_heads + h) * d_model + d];
      attnOut[r * d_model + d] = s + w.b_O[d];
    }
  }
  return run.point(at('hook_attn_out'), attnOut);
}

/** The MLP of block `l` on its LayerNormed input x2 [batch, pos, d_model]: -> hook_mlp_out [batch, pos, d_model]. */
function mlp(run: Run, l: number, w: BlockWeights, x2: Float32Array): Float32Array {
  const { rows } = run;
  const { d_model, d_mlp, act_fn } = run.cfg;
  const pre = run.point(blockHook(l, 'mlp.hook_pre'), linear(x2, rows, d_model, w.W_in, d_mlp, w.b_in)); // [batch, pos, d_mlp]
  const post = new Float32Array(pre.length); // [batch, pos, d_mlp]
  for (let i = 0; i < pre.length; i++) post[i] = gelu(pre[i], act_fn);
  const postOut = run.point(blockHook(l, 'mlp.hook_post'), post);
  return run.point(blockHook(l, 'hook_mlp_out'), linear(postOut, rows, d_mlp, w.W_out, d_model, w.b_out));
}

/** x + y elementwise, into a new array. */
function add(x: Float32Array, y: Float32Array): Float32Array {
  const out = new Float32Array(x.length);
  for (let i = 0; i < out.length; i++) out[i] = x[i] + y[i];
  return out;
}

/** Block `l`: resid [batch, pos, d_model] -> hook_resid_post, in a buffer of its own (the next resid_pre does not alias it). */
function block(run: Run, l: number, w: BlockWeights, resid: Float32Array): Float32Array {
  const residPre = run.point(blockHook(l, 'hook_resid_pre'), resid);
  const attnOut = attention(run, l, w, layerNorm(run, layerNormHooks(l, 'ln1'), residPre, w.ln1));
  const mid = run.point(blockHook(l, 'hook_resid_mid'), add(residPre, attnOut));
  const mlpOut = mlp(run, l, w, layerNorm(run, layerNormHooks(l, 'ln2'), mid, w.ln2));
  const postResid = run.point(blockHook(l, 'hook_resid_post'), add(mid, mlpOut));
  return Float32Array.from(postResid);
}

/**
 * Runs GPT-2 with TransformerLens's maths and hook points (blocks.L.attn.hook_result included,
 * the other optional TL hook points except hook_tokens are not computed).
 *
 * Each hook point: the value is computed, the hook (if any) may return a same-shaped replacement,
 * and the resulting value is cached and flows downstream. Each hook point gets its own buffer
 * (blocks.L.hook_resid_post and blocks.L+1.hook_resid_pre do not alias).
 *
 * With an attention mask, positions are cumsum(mask) - 1 clamped at 0 and the positional
 * embedding of padding tokens is zero (as TransformerLens's PosEmbed does); padded keys get
 * -Infinity attention scores and fully masked pattern rows are zero.
 */
export function referenceForward(
  cfg: HookedTransformerConfig,
  weights: TransformerWeights,
  tokens: number[][],
  opts: ReferenceOptions = {},
): ReferenceResult {
  const { batch, pos } = checkInputs(cfg, tokens, opts.attentionMask);
  checkWeightShapes(cfg, weights);
  if (cfg.normalization_type === 'LNPre') {
    const withWeights = [weights.ln_final, ...weights.blocks.flatMap((b) => [b.ln1, b.ln2])].some((ln) => ln !== null);
    if (withWeights) throw new Error("referenceForward: cfg.normalization_type is 'LNPre' but the weights still have LayerNorm weights; fold them (processWeights) or use 'LN'");
  }
  const infos = checkHooks(cfg, opts.hooks ?? {});
  const cache = new Map<HookName, Tensor>();
  const run: Run = { cfg, batch, pos, rows: batch * pos, mask: opts.attentionMask, point: hookPoint(cfg, infos, batch, pos, opts, cache) };
  let resid = embeddings(run, weights, hookedTokens(run, tokens, opts)); // [batch, pos, d_model]
  for (let l = 0; l < cfg.n_layers; l++) resid = block(run, l, weights.blocks[l], resid);
  const xf = layerNorm(run, layerNormHooks(null, 'ln_final'), resid, weights.ln_final);
  const logits = linear(xf, run.rows, cfg.d_model, weights.W_U, cfg.d_vocab, weights.b_U); // [batch, pos, d_vocab]
  return { logits: new Tensor(logits, [batch, pos, cfg.d_vocab]), cache };
}

export { referenceBackward, type ReferenceBackwardOptions, type ReferenceBackwardResult, type ReferenceBwdHookFn } from './referenceBackward.ts';
