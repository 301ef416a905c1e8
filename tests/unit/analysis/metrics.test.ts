/** Logit difference and TL's normalised patching metric on hand-built logits. */
import { describe, expect, it } from 'vitest';
import { ioiMetric, logitDiff, logitDiffMetric, logitDiffs, lossMetric, normalisedMetric, tokenLogprobMetric, tokenProbMetric } from '../../../hooks/analysis/metrics.ts';
import type { DifferentiableMetric } from '../../../hooks/gradients.ts';
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

describe('metric gradients (valueAndGrad) = central finite differences of the metric', () => {
  const shape = [2, 4, 7];
  const random = new Tensor(Float32Array.from({ length: 2 * 4 * 7 }, (_, i) => Math.sin(i * 12.9898) * 3), shape);
  const tokens = [[1, 2, 3, 4], [5, 6, 0, 1]];
  const cases: [string, DifferentiableMetric][] = [
    ['logitDiffMetric', logitDiffMetric({ correct: [1, 2], incorrect: [3, 4], positions: [1, -1] })],
    ['tokenLogprobMetric', tokenLogprobMetric({ token: [5, 6], positions: [2, 0] })],
    ['tokenProbMetric', tokenProbMetric({ token: 3, positions: -2 })],
    ['lossMetric', lossMetric(tokens)],
    ['lossMetric with a mask', lossMetric(tokens, { attentionMask: [[1, 1, 1, 0], [1, 1, 1, 1]] })],
    ['normalisedMetric(tokenProbMetric)', normalisedMetric(tokenProbMetric({ token: 3 }), 0.7, 0.2)],
  ];
  for (const [label, m] of cases) {
    it(label, () => {
      const { value, gradient } = m.valueAndGrad(random);
      expect(value).toBeCloseTo(m(random), 6);
      expect(gradient.shape).toEqual(shape);
      const h = 1e-2;
      for (let i = 0; i < random.data.length; i++) {
        const at = (d: number) => {
          const l = random.clone();
          l.data[i] += d;
          return m(l);
        };
        expect(Math.abs((at(h) - at(-h)) / (2 * h) - gradient.data[i]), `${label}[${i}]`).toBeLessThanOrEqual(2e-4);
      }
    });
  }

  it('a positioned metric reads its positions: atPositionsValueAndGrad of the rows there = valueAndGrad of the full logits', () => {
    const m = tokenLogprobMetric({ token: [5, 6], positions: [2, 0] });
    const rows = Tensor.cat([random.slice(0, 0, 1).select(1, [2]), random.slice(0, 1, 2).select(1, [0])], 0); // [2, 1, 7]
    const at = m.atPositionsValueAndGrad(rows);
    const full = m.valueAndGrad(random);
    expect(at.value).toBeCloseTo(full.value, 6);
    expect(at.gradient.data[3]).toBeCloseTo(full.gradient.get(0, 2, 3), 6);
    expect(at.gradient.data[7 + 6]).toBeCloseTo(full.gradient.get(1, 0, 6), 6);
  });
});
