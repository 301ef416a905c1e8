/** Logit difference and TL's normalised patching metric on hand-built logits. */
import { describe, expect, it } from 'vitest';
import { ioiMetric, logitDiff, logitDiffs, normalisedMetric } from '../../../hooks/analysis/metrics.ts';
import { Tensor } from '../../../hooks/tensor.ts';

// [batch 2, pos 2, d_vocab 3]
const logits = Tensor.from([
  [[0, 1, 2], [3, 4, 5]],
  [[6, 7, 8], [9, 10, 12]],
]);

describe('logitDiff', () => {
  it('reads logits[b, pos_b, correct_b] - logits[b, pos_b, incorrect_b]', () => {
    expect(logitDiffs(logits, { correct: [2, 0], incorrect: [0, 2] })).toEqual([5 - 3, 9 - 12]);
    expect(logitDiffs(logits, { correct: 1, incorrect: 0, positions: [0, 1] })).toEqual([1, 1]);
    expect(logitDiff(logits, { correct: [2, 0], incorrect: [0, 2] })).toBe((2 - 3) / 2);
  });
  it('rejects bad tokens, positions and lengths', () => {
    expect(() => logitDiffs(logits, { correct: 3, incorrect: 0 })).toThrow(/token 3 is not an integer in \[0, 3\)/);
    expect(() => logitDiffs(logits, { correct: [1], incorrect: 0 })).toThrow(/got 1 values for a batch of 2/);
    expect(() => logitDiffs(logits, { correct: 1, incorrect: 0, positions: 2 })).toThrow(/position 2 of prompt 0 is out of range/);
  });
});

describe('normalised metrics', () => {
  it('maps clean to 1 and corrupted to 0, linearly', () => {
    const m = normalisedMetric((l) => l.get(0, 0, 0), 4, 2);
    expect(m(Tensor.full([1, 1, 1], 4))).toBe(1);
    expect(m(Tensor.full([1, 1, 1], 2))).toBe(0);
    expect(m(Tensor.full([1, 1, 1], 3))).toBe(0.5);
    expect(() => normalisedMetric(() => 0, 1, 1)).toThrow(/must differ/);
  });
  it('ioiMetric normalises the mean logit difference', () => {
    // mean logit diff = (2 + -3) / 2 = -0.5; (-0.5 - -1.5) / (1.5 - -1.5) = 1/3
    const m = ioiMetric({ correct: [2, 0], incorrect: [0, 2], clean: 1.5, corrupted: -1.5 });
    expect(m(logits)).toBeCloseTo(1 / 3, 12);
  });
});
