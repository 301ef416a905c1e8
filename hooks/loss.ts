/** Next-token cross-entropy loss, as TransformerLens's utils.lm_cross_entropy_loss computes it. */
import { logSumExp, nextTokenLoss } from './ops/index.ts';
import type { Tensor } from './tensor.ts';

/**
 * Loss for predicting the NEXT token: log_softmax over d_vocab, then the log-prob that position p
 * gives to tokens[:, p + 1], for p in 0 … pos - 2.
 *
 * Rule (TransformerLens's lm_cross_entropy_loss, with attention_mask):
 *   valid[b, p] = mask[b, p] && mask[b, p + 1]   (the predicting token and the predicted token are real)
 *   perToken  → Tensor [batch, pos - 1] of -logprob where valid, 0 where not (TL multiplies by the mask)
 *   otherwise → Σ_valid -logprob / count(valid)   (all positions count when there is no mask)
 * Log-softmax and the sums are computed in float64.
 */
export function lmCrossEntropyLoss(logits: Tensor, tokens: number[][], attentionMask?: number[][] | null, perToken?: false): number;
export function lmCrossEntropyLoss(logits: Tensor, tokens: number[][], attentionMask: number[][] | null | undefined, perToken: true): Tensor;
export function lmCrossEntropyLoss(logits: Tensor, tokens: number[][], attentionMask?: number[][] | null, perToken?: boolean): number | Tensor;
export function lmCrossEntropyLoss(
  logits: Tensor,
  tokens: number[][],
  attentionMask: number[][] | null = null,
  perToken = false,
): number | Tensor {
  if (logits.shape.length !== 3) throw new Error(`lmCrossEntropyLoss: logits must be [batch, pos, d_vocab]; got [${logits.shape.join(', ')}]`);
  const [batch, pos, dVocab] = logits.shape;
  if (pos < 2) throw new Error(`lmCrossEntropyLoss: need at least 2 positions to predict a next token; got ${pos}`);
  if (tokens.length !== batch || tokens.some((row) => row.length !== pos)) {
    throw new Error(`lmCrossEntropyLoss: tokens must be [${batch}, ${pos}] to match the logits`);
  }
  for (let b = 0; b < batch; b++) {
    for (let p = 1; p < pos; p++) {
      const t = tokens[b][p];
      if (!Number.isInteger(t) || t < 0 || t >= dVocab) throw new Error(`lmCrossEntropyLoss: token ${t} at [${b}][${p}] is not an integer in [0, ${dVocab})`);
    }
  }
  if (attentionMask) {
    if (attentionMask.length !== batch || attentionMask.some((row) => row.length !== pos)) {
      throw new Error(`lmCrossEntropyLoss: attentionMask must be [${batch}, ${pos}] to match the logits`);
    }
    attentionMask.forEach((row, b) => row.forEach((m, p) => {
      if (m !== 0 && m !== 1) throw new Error(`lmCrossEntropyLoss: attentionMask[${b}][${p}] = ${m}; allowed: 0 or 1`);
    }));
  }

  const data = logits.data;
  // log p(tokens[b][p + 1]) = logit - logsumexp over the vocabulary, in float64.
  const logprob = (b: number, p: number) => {
    const o = (b * pos + p) * dVocab;
    return data[o + tokens[b][p + 1]] - logSumExp(data, o, dVocab);
  };
  return nextTokenLoss(logprob, batch, pos, attentionMask, perToken, 'lmCrossEntropyLoss');
}
