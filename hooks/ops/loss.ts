/**
 * Next-token cross-entropy with TransformerLens's mask rule (utils.lm_cross_entropy_loss): position
 * p predicts token p + 1 and is scored when both are real tokens.
 */
import { Tensor } from '../tensor.ts';

/** Whether position p of row b is scored: no mask, or mask[b][p] and mask[b][p + 1] are both 1 (the predicting and the predicted token are real). */
export function scoresNextToken(mask: readonly (readonly number[])[] | null | undefined, b: number, p: number): boolean {
  return !mask || (mask[b][p] === 1 && mask[b][p + 1] === 1);
}

/**
 * The loss from log p(token p + 1 | prefix) at each (b, p), p < pos - 1: per token, a Tensor
 * [batch, pos - 1] of -logprob where scored and 0 where not (TransformerLens multiplies by the
 * mask); otherwise Σ_scored -logprob / count(scored), an error when nothing is scored (opened
 * by `what` when given).
 */
export function nextTokenLoss(
  logprob: (b: number, p: number) => number,
  batch: number,
  pos: number,
  mask: readonly (readonly number[])[] | null | undefined,
  perToken: boolean,
  what?: string,
): number | Tensor {
  const out = new Float32Array(batch * (pos - 1)); // [batch, pos - 1]
  let sum = 0;
  let count = 0;
  for (let b = 0; b < batch; b++) {
    for (let p = 0; p < pos - 1; p++) {
      if (!scoresNextToken(mask, b, p)) continue;
      const l = -logprob(b, p);
      out[b * (pos - 1) + p] = l;
      sum += l;
      count++;
    }
  }
  if (perToken) return new Tensor(out, [batch, pos - 1]);
  if (count === 0) throw new Error(`${what ? `${what}: ` : ''}the attention mask leaves no (token, next token) pair to score`);
  return sum / count;
}
