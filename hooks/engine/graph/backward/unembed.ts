/**
 * Where the backward pass starts: the gradient of the metric with respect to the logits, and
 * through the unembedding (x W_U + b_U) the gradient of ln_final's output. The seed is the mean
 * next-token loss computed in the graph, or a gradient JavaScript feeds (a metric's, from the
 * logits): over every position, or as rows at chosen positions.
 */
import type { GraphBuilder } from '../../../onnx/builder.ts';
import { arange, axisLength } from '../embed.ts';
import { linearBackward } from '../linear.ts';
import type { GradContext } from './context.ts';

/**
 * - `loss`: Σ_(b,p) w[b, p] · -log p(targets[b, p]) with w fed as `loss_weights` [batch, pos] (TransformerLens's
 *   mean next-token loss: 1 / count where a position is scored, else 0), from the forward's `logits` and `targets`;
 * - `logits`: `grad_logits` [batch, pos, d_vocab] fed;
 * - `rows`: `grad_logits` [batch, k, d_vocab] fed for the positions `grad_positions` [batch, k] (int64).
 */
export type SeedKind = 'loss' | 'logits' | 'rows';

export const SEED_FEEDS = { gradLogits: 'grad_logits', gradPositions: 'grad_positions', lossWeights: 'loss_weights' } as const;

/** W_U's rows: [d_vocab, d_model] (the feature-major feed itself, else transposed). */
function unembedRows(g: GradContext): string {
  const W_U = g.weight('W_U', null);
  return g.featureMajor ? W_U : g.b.transpose(W_U, [1, 0]);
}

/** Rows [batch, k, d] at positions [batch, k] (int64) -> [batch, pos, d], zero elsewhere (rows at one position add up). */
function scatterRows(b: GraphBuilder, rows: string, positions: string, tokens: string): string {
  const posRange = b.unsqueeze(arange(b, axisLength(b, tokens, 1)), [0, 2]); // [1, pos, 1]
  const oneHot = b.op('Cast', [b.op('Equal', [posRange, b.unsqueeze(positions, [1])])], { to: { i: 1 } }); // [batch, pos, k]
  return b.matmul(oneHot, rows); // [batch, pos, d]
}

/**
 * The seed's gradient of ln_final's output [batch, pos, d_model]. `logits`: the forward's logits
 * [batch, pos, d_vocab] (read by the loss), `targets`: its next-token targets, `tokens`: the input.
 */
export function unembedBackward(g: GradContext, seed: SeedKind, names: { logits: string; targets: string; tokens: string }): string {
  const { b, cfg } = g;
  const W_U = g.weight('W_U', null);
  if (seed === 'loss') {
    // d loss / d logits = w · (softmax(logits) - onehot(target)); through W_U the one-hot part is w · W_U[:, target].
    const w = b.unsqueeze(b.input(SEED_FEEDS.lossWeights, 'float32', ['batch', 'pos']), [2]); // [batch, pos, 1]
    const probs = b.mul(b.op('Softmax', [names.logits], { axis: { i: -1 } }), w); // [batch, pos, d_vocab]
    const targetRows = b.mul(b.gather(unembedRows(g), names.targets), w); // [batch, pos, d_model]
    return b.sub(linearBackward(b, probs, W_U, g.featureMajor), targetRows);
  }
  if (seed === 'logits') {
    const grad = b.input(SEED_FEEDS.gradLogits, 'float32', ['batch', 'pos', cfg.d_vocab]);
    return linearBackward(b, grad, W_U, g.featureMajor); // [batch, pos, d_model]
  }
  const grad = b.input(SEED_FEEDS.gradLogits, 'float32', ['batch', 'k', cfg.d_vocab]);
  const positions = b.input(SEED_FEEDS.gradPositions, 'int64', ['batch', 'k']);
  return scatterRows(b, linearBackward(b, grad, W_U, g.featureMajor), positions, names.tokens); // [batch, pos, d_model]
}
