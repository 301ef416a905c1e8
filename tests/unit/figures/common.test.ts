/** Shared figure helpers: token labels safe for Plotly, tick thinning and slanting, wrapped titles, the API's number encoding. */
import { describe, expect, it } from 'vitest';
import { finiteOrNull, headTicks, indexAxis, maxAbs, num, tokenLabel, wrapTitle } from '../../../hooks/figures/common.ts';
import { cellText } from '../../../hooks/figures/heads.ts';

describe('figure helpers', () => {
  it('escapes markup and shows newlines and tabs', () => {
    expect(tokenLabel('<|endoftext|>')).toBe('&lt;|endoftext|&gt;');
    expect(tokenLabel('a&b\nc\td')).toBe('a&amp;b↵c⇥d');
    expect(tokenLabel(null)).toBe('∅');
  });
  it('thins ticks to at most maxTicks and slants crowded x labels only', () => {
    const labels = Array.from({ length: 50 }, (_v, i) => `${i}: token${i}`);
    const x = indexAxis(labels, 'position', { maxTicks: 20 }) as any;
    expect(x.tickvals).toEqual(Array.from({ length: 17 }, (_v, i) => i * 3)); // step ceil(50 / 20) = 3
    expect(x.ticktext[1]).toBe('3: token3');
    expect(x.range).toEqual([-0.5, 49.5]);
    expect(x.tickangle).toBe(-90); // 17 ticks × 10 chars × 6.5 px > 600 px
    expect((indexAxis(labels.slice(0, 12), 'p') as any).tickangle).toBe(-45); // 12 ticks × 11 chars × 6.5 px > 600 px, ≤ 16 ticks
    expect((indexAxis(labels.slice(0, 8), 'p') as any).tickangle).toBe(0); // 8 × 9 × 6.5 < 600
    expect((indexAxis(['0', '1', '2'], 'p') as any).tickangle).toBe(0);
    const y = indexAxis(labels, 'layer', { reversed: true }) as any;
    expect(y.range).toEqual([49.5, -0.5]);
    expect(y.tickangle).toBe(0);
  });
  it('head axes: one tick per head up to 24 heads, else one per layer at the centre of its heads', () => {
    expect(headTicks([0, 1], [0, 1])).toEqual({ tickvals: [0, 1, 2, 3], ticktext: ['L0H0', 'L0H1', 'L1H0', 'L1H1'] });
    const big = headTicks([0, 1, 2], Array.from({ length: 12 }, (_v, h) => h));
    expect(big).toEqual({ tickvals: [5.5, 17.5, 29.5], ticktext: ['L0', 'L1', 'L2'] });
  });
  it('cell text fits a cell: two decimals, whole numbers from 100', () => {
    expect(cellText(-0.000111)).toBe('-0.00');
    expect(cellText(1.23456)).toBe('1.23');
    expect(cellText(-99.999)).toBe('-100');
    expect(cellText(12345.6)).toBe('12346');
    expect(cellText(null)).toBe('');
  });
  it('wraps long titles at spaces', () => {
    expect(wrapTitle('aaa bbb ccc', 7)).toBe('aaa bbb<br>ccc');
    expect(wrapTitle('short', 72)).toBe('short');
  });
  it('decodes the API\'s non-finite markers; gaps for non-finite values', () => {
    expect(num('-Infinity')).toBe(-Infinity);
    expect(num('Infinity')).toBe(Infinity);
    expect(num('NaN')).toBeNaN();
    expect(num(0.5)).toBe(0.5);
    expect(finiteOrNull('-Infinity')).toBeNull();
    expect(finiteOrNull(2)).toBe(2);
    expect(maxAbs([[1, null, -3], [2, Infinity as number]])).toBe(3);
  });
});
