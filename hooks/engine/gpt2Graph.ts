/**
 * Builds GPT-2's forward pass as one ONNX graph whose values at every TransformerLens hook point
 * are named after the hook (`blocks.3.attn.hook_pattern`). Weights are graph inputs (fed from
 * the model's own Float32Arrays without copying, matrices feature-major: featureMajor.ts), so
 * any number of graph variants share one copy.
 */
import type { HookedTransformerConfig } from '../config.ts';
import type { HookName, OptionalHooks } from '../hookPoints.ts';
import { GraphBuilder } from '../onnx/builder.ts';
import { FEATURE_MAJOR } from './featureMajor.ts';

export interface GraphOptions {
  /** Hook points whose values must exist as such (cached, hooked from JS, or read by the caller). */
  observed: ReadonlySet<HookName>;
  /** Hook points with an in-graph intervention `Where(mask, value, raw)`. */
  interventions: ReadonlySet<HookName>;
  /** Hook points hooked from JavaScript (the graph is cut there; their replacement flows on). */
  cuts: ReadonlySet<HookName>;
  /** Whether an attention mask (padding) is fed. */
  hasAttentionMask: boolean;
  /** Which LayerNorms carry weights (false once folded: TransformerLens's LNPre). */
  lnHasWeights: boolean;
  /** Emit `logits` [batch, pos, d_vocab]. */
  logits: boolean;
  /** Emit `token_logprobs` [batch, pos]: log p(targets[b, p] | prefix), targets fed as input. */
  tokenLogprobs: boolean;
  /** TransformerLens's optional hook points (attn_in, q/k/v_input, mlp_in) that this model has. */
  optional?: OptionalHooks;
  /** Compute logits only at fed `logit_positions` [batch, k] (logits [batch, k, d_vocab]). */
  logitPositions?: boolean;
  /** The matrix weights are feature-major, [out, in] (featureMajor.ts; see linear()). */
  featureMajor?: boolean;
  /**
   * Emit the rows the unembedding reads (ln_final's output, at logit_positions when given;
   * BuiltGraph.headInput) instead of logits and token log-probs: the engine unembeds them in
   * chunks (unembedHead.ts).
   */
  headInput?: boolean;
}

export interface BuiltGraph {
  builder: GraphBuilder;
  /** Hook points in forward order (only those that exist in this graph variant). */
  hookOrder: HookName[];
  /** Names of the final outputs (`logits`, `token_logprobs`, or the head input). */
  finalOutputs: string[];
  /** The value the unembedding reads, [batch, pos | k, d_model], with `headInput`; else null. */
  headInput: string | null;
}

/** Graph input names of the weights. */
export const weightName = {
  block: (l: number, w: string) => `blocks.${l}.${w}`,
};

/** Feed names of an in-graph intervention at a hook point. */
export const interventionFeeds = (hook: HookName) => ({ mask: `${hook}::mask`, value: `${hook}::value` });

// ---- building blocks shared with the KV-cache decoding graph (decodeGraph.ts) ---------------------

/**
 * Shape of each weight feed by its last name part ('W_Q', 'b_in', 'w' of a LayerNorm, …);
 * with `featureMajor` the matrices in FEATURE_MAJOR are transposed ([out, in], featureMajor.ts).
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
  if (!d) throw new Error(`internal: no weight feed named '${name}'`);
  return featureMajor && FEATURE_MAJOR.has(key) ? [d[1], d[0]] : d;
}

/**
 * x [..., in] · W + bias -> [..., out]. `weight` is W [in, out], or with `featureMajor` Wᵀ
 * [out, in], multiplied as MatMul(x, Transpose(Wᵀ)), which onnxruntime fuses into one
 * FusedMatMul(transB). A fed weight (not prepacked) is packed by every run, and onnxruntime's
 * MLAS packs a transposed B from whole rows, much faster than the column panels of an [in, out]
 * one: fed, GPT-2 small runs within ~10-20% of prepacked weights at 64 tokens, ~5% at 1024.
 */
export function linear(b: GraphBuilder, x: string, weight: string, bias: string, featureMajor: boolean, out?: string): string {
  return b.add(b.matmul(x, featureMajor ? b.transpose(weight, [1, 0]) : weight), bias, out);
}

/** TransformerLens's positions under an attention mask: cumsum(mask) - 1, clamped at 0 ([batch, pos] int64). */
export function maskPositions(b: GraphBuilder, mask: string): string {
  const cum = b.op('CumSum', [mask, b.i64([1], true)]);
  return b.op('Max', [b.sub(cum, b.i64([1], true)), b.i64([0], true)]); // [batch, pos]
}

/** W_pos rows at `positions` [batch, pos], zeroed where `mask` [batch, pos] is 0 (TransformerLens zeroes padding). */
export function maskedPosEmbed(b: GraphBuilder, W_pos: string, positions: string, mask: string, out?: string): string {
  const keep = b.unsqueeze(b.op('Cast', [mask], { to: { i: 1 } }), [2]); // [batch, pos, 1]
  return b.mul(b.gather(W_pos, positions), keep, out); // [batch, pos, d_model]
}

/** onnxruntime's fused LayerNorm over the last axis (unit scale and zero bias when `weights` is null: LNPre). */
export function fusedLayerNorm(b: GraphBuilder, cfg: HookedTransformerConfig, x: string, weights: { w: string; b: string } | null, out?: string): string {
  const wt = weights?.w ?? b.f32Fill(cfg.d_model, 1);
  const bs = weights?.b ?? b.f32Fill(cfg.d_model, 0);
  return b.op('LayerNormalization', [x, wt, bs], { axis: { i: -1 }, epsilon: { f: cfg.eps } }, out);
}

/** x W + bias split into heads: [batch, pos, d_model] -> [batch, pos, head, d_head] (weight as in linear()). */
export function headProjection(b: GraphBuilder, cfg: HookedTransformerConfig, x: string, weight: string, bias: string, featureMajor: boolean, out?: string): string {
  const flat = linear(b, x, weight, bias, featureMajor); // [batch, pos, H]
  return b.reshape(flat, [0, 0, cfg.n_heads, cfg.d_head], out);
}

/** q kᵀ / sqrt(d_head), -inf where not `allowed`: qh [batch, head, q, d_head], kT [batch, head, d_head, k] -> [batch, head, q, k]. */
export function maskedScores(b: GraphBuilder, cfg: HookedTransformerConfig, qh: string, kT: string, allowed: string, out?: string): string {
  const raw = b.div(b.matmul(qh, kT), b.f32(Math.sqrt(cfg.d_head)));
  return b.where(allowed, raw, b.f32(-Infinity), out);
}

/** Softmax over keys; with a mask, a query row with every key masked (left padding) becomes 0 as in TransformerLens. */
export function attentionPattern(b: GraphBuilder, scores: string, hasMask: boolean, out?: string): string {
  const soft = b.op('Softmax', [scores], { axis: { i: -1 } });
  if (hasMask) return b.where(b.op('IsNaN', [soft]), b.f32(0), soft, out);
  return b.op('Identity', [soft], undefined, out);
}

/** pattern [batch, head, q, k] · vh [batch, head, k, d_head] -> z [batch, q, head, d_head]. */
export function patternTimesValues(b: GraphBuilder, pattern: string, vh: string, out?: string): string {
  return b.transpose(b.matmul(pattern, vh), [0, 2, 1, 3], out);
}

/** z [batch, pos, head, d_head] -> attention output [batch, pos, d_model] (all heads through W_O, plus b_O; W_O as in linear()). */
export function attentionOutput(b: GraphBuilder, cfg: HookedTransformerConfig, z: string, W_O: string, b_O: string, featureMajor: boolean, out?: string): string {
  return linear(b, b.reshape(z, [0, 0, cfg.n_heads * cfg.d_head]), W_O, b_O, featureMajor, out);
}

/** The MLP's activation function (gelu_new/gelu_fast are the tanh approximation). */
export function activation(b: GraphBuilder, cfg: HookedTransformerConfig, pre: string, out?: string): string {
  switch (cfg.act_fn) {
    case 'relu': return b.op('Relu', [pre], undefined, out);
    case 'gelu': return b.op('Gelu', [pre], undefined, out);
    default: return b.op('Gelu', [pre], { approximate: { s: 'tanh' } }, out); // gelu_new, gelu_fast
  }
}

/** Final LayerNormed residual [batch, pos, d_model] -> logits [batch, pos, d_vocab] (W_U as in linear()). */
export function unembed(b: GraphBuilder, cfg: HookedTransformerConfig, xf: string, featureMajor: boolean, out?: string): string {
  const W_U = b.input('W_U', 'float32', weightDims(cfg, 'W_U', featureMajor));
  return linear(b, xf, W_U, b.input('b_U', 'float32', [cfg.d_vocab]), featureMajor, out);
}

export function buildGpt2Graph(cfg: HookedTransformerConfig, opts: GraphOptions): BuiltGraph {
  const b = new GraphBuilder();
  const { d_model, n_heads, d_head, d_vocab, n_ctx } = cfg;
  const hookOrder: HookName[] = [];
  const fm = opts.featureMajor ?? false;
  const needs = (name: HookName) => opts.observed.has(name) || opts.interventions.has(name);

  /**
   * Emits a hook point: `compute(out)` writes the raw value into `out`; with an intervention the
   * raw value is then replaced where the fed mask is true. Returns the hook's value name.
   */
  const hook = (name: HookName, rank: number, compute: (out: string) => void): string => {
    hookOrder.push(name);
    if (!opts.interventions.has(name)) {
      compute(name);
      return name;
    }
    const raw = `${name}::raw`;
    compute(raw);
    const feeds = interventionFeeds(name);
    const dims = Array.from({ length: rank }, (_, i) => `${name}::d${i}`);
    b.input(feeds.mask, 'bool', dims);
    b.input(feeds.value, 'float32', dims);
    b.where(feeds.mask, feeds.value, raw, name);
    return name;
  };

  const w = (name: string, dims: number[]) => b.input(name, 'float32', dims);
  const tokens = b.input('tokens', 'int64', ['batch', 'pos']);
  const shape = b.op('Shape', [tokens]); // [2] = (batch, pos)
  const posLen = b.op('Slice', [shape, b.i64([1]), b.i64([2])]); // [1] = (pos)

  // ---- embeddings -------------------------------------------------------------------------
  const embed = hook('hook_embed', 3, (out) => b.gather(w('W_E', [d_vocab, d_model]), tokens, 0, out)); // [batch, pos, d_model]
  let mask: string | null = null;
  const posEmbed = hook('hook_pos_embed', 3, (out) => {
    const W_pos = w('W_pos', [n_ctx, d_model]);
    if (opts.hasAttentionMask) {
      // TransformerLens: positions = cumsum(mask) - 1, clamped at 0, so left padding starts each prompt at 0.
      mask = b.input('attention_mask', 'int64', ['batch', 'pos']);
      maskedPosEmbed(b, W_pos, maskPositions(b, mask), mask, out); // padding gets no positional embedding
    } else {
      const range = b.op('Range', [b.i64([0], true), b.squeeze(posLen, [0]), b.i64([1], true)]); // [pos]
      const rows = b.gather(W_pos, range); // [pos, d_model]
      const target = b.op('Concat', [shape, b.i64([d_model])], { axis: { i: 0 } });
      b.op('Expand', [rows, target], undefined, out); // [batch, pos, d_model]
    }
  });
  let resid = b.add(embed, posEmbed);

  // ---- attention masks shared by all layers ---------------------------------------------------
  const range = b.op('Range', [b.i64([0], true), b.squeeze(posLen, [0]), b.i64([1], true)]); // [pos]
  const causal = b.op('LessOrEqual', [b.unsqueeze(range, [0]), b.unsqueeze(range, [1])]); // [query_pos, key_pos]: k <= q
  let allowed = causal;
  if (opts.hasAttentionMask && mask) {
    const keyOk = b.unsqueeze(b.op('Cast', [mask], { to: { i: 9 } }), [1, 2]); // [batch, 1, 1, key_pos]
    allowed = b.op('And', [causal, keyOk]); // [batch, 1, query_pos, key_pos]
  }

  /** LayerNorm over the last axis of `x` (rank 3, or rank 4 with a head axis); hook names from `prefix`, or none. */
  const layerNorm = (prefix: string | null, x: string, weights: { w: string; b: string } | null, rank = 3): string => {
    if (prefix === null) return fusedLayerNorm(b, cfg, x, weights);
    const scaleName = `${prefix}.hook_scale` as HookName;
    const normName = `${prefix}.hook_normalized` as HookName;
    if (!opts.cuts.has(scaleName) && !opts.interventions.has(scaleName)) {
      // onnxruntime's fused LayerNorm; its InvStdDev output gives hook_scale = sqrt(var + eps) when asked for.
      const invStd = b.tmp('inv_std');
      const normalized = hook(normName, rank, (out) => {
        const wt = weights?.w ?? b.f32Fill(d_model, 1);
        const bs = weights?.b ?? b.f32Fill(d_model, 0);
        b.opMulti('LayerNormalization', [x, wt, bs], [out, '', opts.observed.has(scaleName) ? invStd : ''], {
          axis: { i: -1 },
          epsilon: { f: cfg.eps },
        });
      });
      if (opts.observed.has(scaleName)) {
        hookOrder.splice(hookOrder.indexOf(normName), 0, scaleName);
        b.op('Reciprocal', [invStd], undefined, scaleName); // [batch, pos, 1]
      }
      return normalized;
    }
    // The scale is hooked or intervened on: compute the LayerNorm by hand so the new scale flows on.
    const centred = b.sub(x, b.reduceMean(x, [-1], true));
    const scale = hook(scaleName, rank, (out) => {
      const variance = b.reduceMean(b.mul(centred, centred), [-1], true);
      b.op('Sqrt', [b.add(variance, b.f32(cfg.eps))], undefined, out); // [batch, pos, 1]
    });
    return hook(normName, rank, (out) => {
      const normalized = b.div(centred, scale);
      if (weights) b.add(b.mul(normalized, weights.w), weights.b, out);
      else b.op('Identity', [normalized], undefined, out);
    });
  };
  const lnWeights = (prefix: string) =>
    opts.lnHasWeights ? { w: w(`${prefix}.w`, [d_model]), b: w(`${prefix}.b`, [d_model]) } : null;

  for (let l = 0; l < cfg.n_layers; l++) {
    const p = `blocks.${l}`;
    const W = (name: string) => w(weightName.block(l, name), weightDims(cfg, name, fm));
    const residPre = hook(`${p}.hook_resid_pre` as HookName, 3, (out) => b.op('Identity', [resid], undefined, out));
    const optional = opts.optional ?? {};
    const perHead = optional.useAttnIn || optional.useSplitQkvInput;
    const repeatHeads = (x: string, out: string) => // [batch, pos, d_model] -> [batch, pos, head, d_model]
      b.op('Expand', [b.unsqueeze(x, [2]), b.i64([1, 1, n_heads, 1])], undefined, out);
    const ln1 = lnWeights(`${p}.ln1`);
    // The LayerNormed inputs of q, k and v: [batch, pos, d_model], or per head [batch, pos, head, d_model].
    let inputs: { Q: string; K: string; V: string };
    const attnIn = optional.useAttnIn
      ? hook(`${p}.hook_attn_in` as HookName, 4, (out) => repeatHeads(residPre, out))
      : null;
    if (optional.useSplitQkvInput) {
      const qIn = hook(`${p}.hook_q_input` as HookName, 4, (out) => repeatHeads(residPre, out));
      const kIn = hook(`${p}.hook_k_input` as HookName, 4, (out) => repeatHeads(residPre, out));
      const vIn = hook(`${p}.hook_v_input` as HookName, 4, (out) => repeatHeads(residPre, out));
      // TransformerLens applies ln1 to each input; its cache keeps the last call's (the value input's).
      inputs = { Q: layerNorm(null, qIn, ln1), K: layerNorm(null, kIn, ln1), V: layerNorm(`${p}.ln1`, vIn, ln1, 4) };
    } else {
      const x1 = layerNorm(`${p}.ln1`, attnIn ?? residPre, ln1, perHead ? 4 : 3);
      inputs = { Q: x1, K: x1, V: x1 };
    }

    // q, k, v: [batch, pos, head, d_head]
    const project = (which: 'Q' | 'K' | 'V') =>
      hook(`${p}.attn.hook_${which.toLowerCase()}` as HookName, 4, (out) => {
        const weight = W(`W_${which}`);
        const bias = W(`b_${which}`);
        if (!perHead) {
          headProjection(b, cfg, inputs[which], weight, bias, fm, out);
          return;
        }
        const perHeadW = fm
          ? b.transpose(b.reshape(weight, [n_heads, d_head, d_model]), [0, 2, 1]) // [H, d_model] -> [head, d_model, d_head]
          : b.transpose(b.reshape(weight, [d_model, n_heads, d_head]), [1, 0, 2]); // [d_model, H] -> [head, d_model, d_head]
        const x5 = b.unsqueeze(inputs[which], [3]); // [batch, pos, head, 1, d_model]
        const projected = b.squeeze(b.matmul(x5, perHeadW), [3]); // [batch, pos, head, d_head]
        b.add(projected, b.reshape(bias, [n_heads, d_head]), out);
      });
    const q = project('Q');
    const k = project('K');
    const v = project('V');

    const scores = hook(`${p}.attn.hook_attn_scores` as HookName, 4, (out) => {
      const qh = b.transpose(q, [0, 2, 1, 3]); // [batch, head, query_pos, d_head]
      const kT = b.transpose(k, [0, 2, 3, 1]); // [batch, head, d_head, key_pos]
      maskedScores(b, cfg, qh, kT, allowed, out); // [batch, head, query_pos, key_pos]
    });
    const pattern = hook(`${p}.attn.hook_pattern` as HookName, 4, (out) => {
      attentionPattern(b, scores, opts.hasAttentionMask, out);
    });
    const z = hook(`${p}.attn.hook_z` as HookName, 4, (out) => {
      const vh = b.transpose(v, [0, 2, 1, 3]); // [batch, head, key_pos, d_head]
      patternTimesValues(b, pattern, vh, out); // [batch, pos, head, d_head]
    });
    const W_O = W('W_O'); // [H, d_model], or [d_model, H] feature-major
    const b_O = W('b_O');
    const resultName = `${p}.attn.hook_result` as HookName;
    const attnOut = needs(resultName)
      ? (() => {
          const result = hook(resultName, 4, (out) => {
            const perHead = fm
              ? b.transpose(b.reshape(W_O, [d_model, n_heads, d_head]), [1, 2, 0]) // [head, d_head, d_model]
              : b.reshape(W_O, [n_heads, d_head, d_model]); // [head, d_head, d_model]
            const z5 = b.unsqueeze(z, [3]); // [batch, pos, head, 1, d_head]
            b.squeeze(b.matmul(z5, perHead), [3], out); // [batch, pos, head, d_model]
          });
          return hook(`${p}.hook_attn_out` as HookName, 3, (out) => b.add(b.reduceSum(result, [2], false), b_O, out));
        })()
      : (() => {
          return hook(`${p}.hook_attn_out` as HookName, 3, (out) => attentionOutput(b, cfg, z, W_O, b_O, fm, out));
        })();
    const residMid = hook(`${p}.hook_resid_mid` as HookName, 3, (out) => b.add(residPre, attnOut, out));
    const mlpIn = optional.useHookMlpIn
      ? hook(`${p}.hook_mlp_in` as HookName, 3, (out) => b.op('Identity', [residMid], undefined, out))
      : residMid;
    const x2 = layerNorm(`${p}.ln2`, mlpIn, lnWeights(`${p}.ln2`));
    const pre = hook(`${p}.mlp.hook_pre` as HookName, 3, (out) =>
      linear(b, x2, W('W_in'), W('b_in'), fm, out),
    );
    const post = hook(`${p}.mlp.hook_post` as HookName, 3, (out) => activation(b, cfg, pre, out));
    const mlpOut = hook(`${p}.hook_mlp_out` as HookName, 3, (out) =>
      linear(b, post, W('W_out'), W('b_out'), fm, out),
    );
    resid = hook(`${p}.hook_resid_post` as HookName, 3, (out) => b.add(residMid, mlpOut, out));
  }

  /** Only the rows at logit_positions [batch, k]: [batch, pos, d_model] -> [batch, k, d_model]. */
  const gatherRows = (x: string): string => {
    const at = b.input('logit_positions', 'int64', ['batch', 'k']);
    const index = b.op('Expand', [b.unsqueeze(at, [2]), b.op('Concat', [b.op('Shape', [at]), b.i64([d_model])], { axis: { i: 0 } })]);
    return b.op('GatherElements', [x, index], { axis: { i: 1 } });
  };
  const finalOutputs: string[] = [];
  let headInput: string | null = null;
  let xf = layerNorm('ln_final', resid, lnWeights('ln_final'));
  if (opts.headInput) {
    if (opts.logitPositions) xf = gatherRows(xf);
    headInput = xf;
    finalOutputs.push(xf);
  } else if (opts.logits || opts.tokenLogprobs) {
    if (opts.logitPositions) xf = gatherRows(xf);
    const logits = unembed(b, cfg, xf, fm, 'logits'); // [batch, pos | k, d_vocab]
    if (opts.logits) finalOutputs.push(logits);
    if (opts.tokenLogprobs) {
      const targets = b.input('targets', 'int64', ['batch', 'pos']);
      const lse = b.op('ReduceLogSumExp', [logits, b.i64([-1])], { keepdims: { i: 0 } }); // [batch, pos]
      const picked = b.squeeze(b.op('GatherElements', [logits, b.unsqueeze(targets, [2])], { axis: { i: 2 } }), [2]);
      finalOutputs.push(b.sub(picked, lse, 'token_logprobs'));
    }
  }
  return { builder: b, hookOrder, finalOutputs, headInput };
}
