/** The dashboard's request keys and stale markers (plain functions of ui/src/lib; the runes-based state classes are covered end to end). */
import { describe, expect, it } from 'vitest';
import { bodyKey, changedFields } from '../../../ui/src/lib/state/keys.ts';
import { staleMessage } from '../../../ui/src/lib/stale.ts';

describe('request keys', () => {
  it('the same fields in another order are the same request; any value change is another', () => {
    expect(bodyKey({ prompt: 'a', metric: { kind: 'loss' }, mode: 'zero' })).toBe(bodyKey({ mode: 'zero', metric: { kind: 'loss' }, prompt: 'a' }));
    expect(bodyKey({ targets: [1, 2] })).not.toBe(bodyKey({ targets: [2, 1] }));
    expect(bodyKey({ prompt: 'a' })).not.toBe(bodyKey({ prompt: 'a', topK: 5 }));
  });
  it('names the top-level fields that differ', () => {
    const ran = { prompt: 'p', metric: { kind: 'logit_diff', correct: 1, incorrect: 2 }, mode: 'zero', chunkSize: 1 };
    expect(changedFields(ran, { ...ran, metric: { kind: 'loss' }, mode: 'mean' })).toEqual(['metric', 'mode']);
    expect(changedFields(ran, { ...ran, metric: { incorrect: 2, correct: 1, kind: 'logit_diff' } })).toEqual([]);
    expect(changedFields({ a: 1 }, { b: 1 })).toEqual(['b', 'a']);
  });
});

describe('stale markers', () => {
  const names = { metric: 'metric', mode: 'ablation mode' };
  it('say what changed and what the figure shows meanwhile', () => {
    expect(staleMessage(null, names)).toBeNull();
    expect(staleMessage({ state: 'changed', fields: ['metric', 'mode'] }, names, 'press Sweep'))
      .toBe('Stale: metric, ablation mode changed since this ran; it shows its own run — press Sweep to update it.');
    expect(staleMessage({ state: 'updating', fields: ['prompt'] }, names)).toBe('Updating (prompt changed): this is the previous run until the new one lands.');
    expect(staleMessage({ state: 'cancelled', fields: ['mode'] }, names))
      .toBe('Stale: the new run was cancelled; this is the previous run, labelled with its own settings (ablation mode changed since).');
  });
});
