/**
 * Builds GPT-2's forward pass as one ONNX graph whose values at every TransformerLens hook point
 * are named after the hook (`blocks.3.attn.hook_pattern`), from the pieces in graph/ (embed,
 * block = attention + MLP, unembed), and with `backward` its backward pass after it
 * (gpt2Backward.ts). Weights are graph inputs (fed from the model's own Float32Arrays without
 * copying, matrices feature-major), so any number of graph variants share one copy.
 */
import type { HookedTransformerConfig } from '../config.ts';
import { layerNormHooks, type HookName, type OptionalHooks } from '../hookPoints.ts';
import type { GraphBuilder } from '../onnx/builder.ts';
import { appendBackward, type BackwardOptions } from './gpt2Backward.ts';
import { block } from './graph/block.ts';
import { HookedContext } from './graph/context.ts';
import type { SaeSplice } from './graph/sae.ts';
import { allowedKeys, axisLength, embeddings, maskPositions } from './graph/embed.ts';
import { layerNorm } from './graph/layerNorm.ts';
import { gatherRows, tokenLogprobs, unembed } from './graph/unembed.ts';

export { interventionFeeds } from './graph/context.ts';

export interface GraphOptions {
  /** Hook points whose values must exist as such (cached, hooked from JS, or read by the caller). */
  observed: ReadonlySet<HookName>;
  /** Hook points with an in-graph intervention `Where(mask, value, raw)`. */
  interventions: ReadonlySet<HookName>;
  /** Hook points where a fed vector is added (steering), after any replacement. */
  additions?: ReadonlySet<HookName>;
  /** Sparse autoencoders spliced at hook points (graph/sae.ts). */
  saes?: readonly SaeSplice[];
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
  /** The matrix weights are feature-major, [out, in] (see graph/linear.ts). */
  featureMajor?: boolean;
  /**
   * Emit the rows the unembedding reads (ln_final's output, at logit_positions when given;
   * BuiltGraph.headInput) instead of logits and token log-probs: the engine unembeds them in
   * chunks (unembedHead.ts).
   */
  headInput?: boolean;
  /**
   * Append the backward pass of a scalar metric of the logits (gpt2Backward.ts): the logits are
   * then computed in the graph (as `logits`: over every position, or with a 'rows' seed and
   * `logitPositions` at those rows only), whether or not they are emitted.
   */
  backward?: BackwardOptions;
}

export interface BuiltGraph {
  builder: GraphBuilder;
  /** Hook points in forward order (only those that exist in this graph variant). */
  hookOrder: HookName[];
  /** Names of the final outputs (`logits`, `token_logprobs`, or the head input). */
  finalOutputs: string[];
  /** The value the unembedding reads, [batch, pos | k, d_model], with `headInput`; else null. */
  headInput: string | null;
  /** With `backward`: the hook points whose gradient (`X_grad`) the graph emits, in the order the backward pass reaches them. */
  gradOrder: HookName[];
}

export function buildGpt2Graph(cfg: HookedTransformerConfig, opts: GraphOptions): BuiltGraph {
  const ctx = new HookedContext(cfg, {
    observed: opts.observed,
    interventions: opts.interventions,
    cuts: opts.cuts,
    featureMajor: opts.featureMajor ?? false,
    lnHasWeights: opts.lnHasWeights,
    hasAttentionMask: opts.hasAttentionMask,
    optional: opts.optional ?? {},
    gradients: opts.backward ? new Set([...opts.backward.observed, ...opts.backward.cuts]) : new Set(),
    additions: opts.additions,
    saes: opts.saes,
  });
  const b = ctx.b;
  const tokens = b.input('tokens', 'int64', ['batch', 'pos']);
  const mask = opts.hasAttentionMask ? b.input('attention_mask', 'int64', ['batch', 'pos']) : null;
  // TransformerLens: positions = cumsum(mask) - 1, clamped at 0, so left padding starts each prompt at 0.
  let resid = embeddings(ctx, tokens, mask ? { positions: maskPositions(b, mask), mask } : { tokens }); // [batch, pos, d_model]
  const allowed = allowedKeys(b, axisLength(b, tokens, 1), mask); // [(batch, 1,) query_pos, key_pos]
  for (let l = 0; l < cfg.n_layers; l++) resid = block(ctx, l, resid, allowed); // [batch, pos, d_model]
  let xf = layerNorm(ctx, resid, { ln: 'ln_final', layer: null }, layerNormHooks(null, 'ln_final')); // [batch, pos, d_model]

  const finalOutputs: string[] = [];
  if (opts.backward && (opts.headInput || (opts.logitPositions && opts.backward.seed !== 'rows'))) {
    throw new Error('internal: a backward pass needs the logits in the graph (at every position, unless its seed is rows at logit_positions)');
  }
  if (opts.logitPositions && (opts.headInput || opts.logits || opts.tokenLogprobs || opts.backward)) {
    xf = gatherRows(b, cfg.d_model, xf, b.input('logit_positions', 'int64', ['batch', 'k'])); // [batch, k, d_model]
  }
  if (opts.headInput) {
    finalOutputs.push(xf);
    return { builder: b, hookOrder: ctx.hookOrder(), finalOutputs, headInput: xf, gradOrder: [] };
  }
  if (opts.logits || opts.tokenLogprobs || opts.backward) {
    const logits = unembed(ctx, xf, 'logits'); // [batch, pos | k, d_vocab]
    if (opts.logits) finalOutputs.push(logits);
    if (opts.tokenLogprobs) finalOutputs.push(tokenLogprobs(b, logits, b.input('targets', 'int64', ['batch', 'pos']), 'token_logprobs'));
  }
  if (!opts.backward) return { builder: b, hookOrder: ctx.hookOrder(), finalOutputs, headInput: null, gradOrder: [] };
  const targets = b.input('targets', 'int64', ['batch', 'pos']);
  const gradOrder = appendBackward(ctx, opts.backward, { logits: 'logits', targets, tokens, allowed });
  return { builder: b, hookOrder: ctx.hookOrder(), finalOutputs, headInput: null, gradOrder };
}
