/** Head-detector patterns and scores (TL's head_detector) against hand-built matrices. */
import { describe, expect, it } from 'vitest';
import {
  computeHeadAttentionSimilarityScore,
  getDuplicateTokenHeadDetectionPattern,
  getInductionHeadDetectionPattern,
  getPreviousTokenHeadDetectionPattern,
} from '../../../hooks/analysis/headDetector.ts';
import { Tensor } from '../../../hooks/tensor.ts';

describe('detection patterns (hand-built)', () => {
  const toks = [7, 1, 2, 1, 2]; // BOS-like 7, then "1 2 1 2"
  it('previous token: ones on the sub-diagonal', () => {
    expect(getPreviousTokenHeadDetectionPattern([5, 5, 5]).toArray()).toEqual([[0, 0, 0], [1, 0, 0], [0, 1, 0]]);
  });
  it('duplicate token: earlier equal tokens, no diagonal', () => {
    expect(getDuplicateTokenHeadDetectionPattern(toks).toArray()).toEqual([
      [0, 0, 0, 0, 0],
      [0, 0, 0, 0, 0],
      [0, 0, 0, 0, 0],
      [0, 1, 0, 0, 0],
      [0, 0, 1, 0, 0],
    ]);
  });
  it('induction: the token after each earlier duplicate', () => {
    expect(getInductionHeadDetectionPattern(toks).toArray()).toEqual([
      [0, 0, 0, 0, 0],
      [0, 0, 0, 0, 0],
      [0, 0, 0, 0, 0],
      [0, 0, 1, 0, 0],
      [0, 0, 0, 1, 0],
    ]);
  });
});

describe('computeHeadAttentionSimilarityScore', () => {
  // A causal 3x3 pattern (rows sum to 1).
  const att = Tensor.from([[1, 0, 0], [0.25, 0.75, 0], [0.5, 0.2, 0.3]]);
  const prev = getPreviousTokenHeadDetectionPattern([0, 0, 0]);
  it("'mul': attention on the detection 1s over all attention", () => {
    // (0.25 + 0.2) / 3
    expect(computeHeadAttentionSimilarityScore(att, prev)).toBeCloseTo(0.45 / 3, 6);
    // excludeBos drops column 0: (0 + 0.2) / (0.75 + 0.2 + 0.3)
    expect(computeHeadAttentionSimilarityScore(att, prev, { excludeBos: true })).toBeCloseTo(0.2 / 1.25, 6);
    // excludeCurrentToken drops the diagonal: (0.25 + 0.2) / (0.25 + 0.5 + 0.2)
    expect(computeHeadAttentionSimilarityScore(att, prev, { excludeCurrentToken: true })).toBeCloseTo(0.45 / 0.95, 6);
    // a perfect previous-token head (row 0 can only attend to itself) with BOS excluded scores 1
    const perfect = Tensor.from([[1, 0, 0], [1, 0, 0], [0, 1, 0]]);
    expect(computeHeadAttentionSimilarityScore(perfect, prev, { excludeCurrentToken: true })).toBe(1);
  });
  it("'abs': 1 - round(Σ|diff| / size, 3)", () => {
    // |diff|: row0 1, row1 0.75+0.75, row2 0.5+0.8+0.3 → 4.1; / 3 = 1.3667 → 1.367
    expect(computeHeadAttentionSimilarityScore(att, prev, { errorMeasure: 'abs' })).toBeCloseTo(1 - 1.367, 9);
    // excludeBos: drop column 0 (1 + 0.75 + 0.5) → 1.85 / 3 = 0.617
    expect(computeHeadAttentionSimilarityScore(att, prev, { errorMeasure: 'abs', excludeBos: true })).toBeCloseTo(1 - 0.617, 9);
    expect(computeHeadAttentionSimilarityScore(prev, prev, { errorMeasure: 'abs' })).toBe(1);
  });
  it('rejects mismatched shapes and an upper-triangular difference under abs', () => {
    expect(() => computeHeadAttentionSimilarityScore(att, Tensor.zeros([2, 2]))).toThrow(/must be \[3, 3\]/);
    const upper = Tensor.from([[0, 1, 0], [0, 0, 0], [0, 0, 0]]);
    expect(() => computeHeadAttentionSimilarityScore(att, upper, { errorMeasure: 'abs' })).toThrow(/lower triangular/);
    expect(() => computeHeadAttentionSimilarityScore(att, prev, { errorMeasure: 'max' as never })).toThrow(/'mul' or 'abs'/);
  });
});
