/** TL-style slices (index, list, Python range) against hand-written Python results. */
import { describe, expect, it } from 'vitest';
import { applySlice, sliceIndices } from '../../hooks/slice.ts';
import { Tensor } from '../../hooks/tensor.ts';

describe('sliceIndices (Python semantics, hand-checked)', () => {
  it('null keeps everything; an int picks one; lists resolve negatives', () => {
    expect(sliceIndices(null, 4)).toEqual([0, 1, 2, 3]);
    expect(sliceIndices(-1, 5)).toEqual([4]);
    expect(sliceIndices([0, -2], 5)).toEqual([0, 3]);
  });
  it('ranges: list(range(5))[1:4], [::2], [-2:], [::-1], [3:1:-1]', () => {
    expect(sliceIndices({ start: 1, stop: 4 }, 5)).toEqual([1, 2, 3]);
    expect(sliceIndices({ step: 2 }, 5)).toEqual([0, 2, 4]);
    expect(sliceIndices({ start: -2 }, 5)).toEqual([3, 4]);
    expect(sliceIndices({ step: -1 }, 5)).toEqual([4, 3, 2, 1, 0]);
    expect(sliceIndices({ start: 3, stop: 1, step: -1 }, 5)).toEqual([3, 2]);
    expect(sliceIndices({ start: 0, stop: 99 }, 3)).toEqual([0, 1, 2]);
  });
  it('rejects out-of-range indices and a zero step with a clear error', () => {
    expect(() => sliceIndices(5, 5, 'posSlice')).toThrow(/posSlice: index 5 is out of range/);
    expect(() => sliceIndices({ step: 0 }, 5)).toThrow(/step must be a non-zero integer/);
  });
});

describe('applySlice', () => {
  const t = Tensor.from([[[1, 2], [3, 4], [5, 6]]]); // [1, 3, 2]
  it('an int removes the dim, a list or range keeps it', () => {
    expect(applySlice(t, -1, -2).toArray()).toEqual([[5, 6]]);
    expect(applySlice(t, [2, 0], -2).toArray()).toEqual([[[5, 6], [1, 2]]]);
    expect(applySlice(t, { start: 1 }, 1).toArray()).toEqual([[[3, 4], [5, 6]]]);
    expect(applySlice(t, undefined, 1)).toBe(t);
  });
});
