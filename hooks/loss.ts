/** Next-token cross-entropy loss, as TransformerLens's utils.lm_cross_entropy_loss computes it. */
import { Tensor } from './tensor.ts';

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
  const out = new Float32Array(batch * (pos - 1)); // [batch, pos - 1]
  let sum = 0;
  let count = 0;
  for (let b = 0; b < batch; b++) {
    for (let p = 0; p < pos - 1; p++) {
      const valid = !attentionMask || (attentionMask[b][p] === 1 && attentionMask[b][p + 1] === 1);
      if (!valid) continue;
      const o = (b * pos + p) * dVocab;
      let max = -Infinity;
      for (let v = 0; v < dVocab; v++) if (data[o + v] > max) max = data[o + v];
      let se = 0;
      for (let v = 0; v < dVocab; v++) se += Math.exp(data[o + v] - max);
      const logprob = data[o + tokens[b][p + 1]] - max - Math.log(se);
      out[b * (pos - 1) + p] = -logprob;
      sum += -logprob;
      count++;
    }
  }
  if (perToken) return new Tensor(out, [batch, pos - 1]);
  if (count === 0) throw new Error('lmCrossEntropyLoss: the attention mask leaves no (token, next token) pair to score');
  return sum / count;
}
