/** Text figures (tokens coloured by one value each) from hand-made API answers: attention rows and columns, loss, the logit lens's view of a target. */
import { describe, expect, it } from 'vitest';
import { attentionTextFigure, lensTextFigure, lossTextFigure, textScaleAt, type AttentionData, type LogitLensData } from '../../../hooks/figures/index.ts';

// one head over 3 tokens; row q is a causal distribution
const A: AttentionData = {
  tokens: [50256, 464, 3797], strTokens: ['<|endoftext|>', 'The', ' cat'], layers: [1], heads: [2],
  patterns: [[[[1, 0, 0], [0.7, 0.3, 0], [0.2, 0.5, 0.3]]]],
};

describe('attentionTextFigure', () => {
  it('from a token: its pattern row; later tokens have no value', () => {
    const f = attentionTextFigure(A, 1, 2, 1, 'from');
    expect(f.values).toEqual([0.7, 0.3, null]);
    expect(f.title).toBe('L1H2: attention from token 1: "The" to each earlier token');
    expect(f.marked).toBe(1);
    expect(f.max).toBe(0.7);
    expect(f.hover[0]).toBe('1: "The" → 0: "<|endoftext|>": 0.700');
    expect(f.hover[2]).toMatch(/after the chosen token/);
    expect(f.table.rows[1]).toEqual([1, 2, 'from', 1, 1, 'The', 0.3]);
  });
  it('to a token: its pattern column; earlier tokens have no value', () => {
    const f = attentionTextFigure(A, 1, 2, 1, 'to');
    expect(f.values).toEqual([null, 0.3, 0.5]);
    expect(f.title).toBe('L1H2: attention to token 1: "The" from each later token');
  });
  it('names a position outside the prompt', () => {
    expect(() => attentionTextFigure(A, 1, 2, 3, 'from')).toThrow(/position 3 is outside the prompt \(0\.\.2\)/);
  });
});

describe('lossTextFigure', () => {
  it('token i is coloured by the loss predicting it (lossPerToken[i - 1]); the first has none', () => {
    const f = lossTextFigure({
      tokens: [[50256, 464, 3797]], strTokens: [['<|endoftext|>', 'The', ' cat']], lossPerToken: [[2, 0.5]],
      top: [[[{ token: 464, str: 'The', prob: 0.4 }], [{ token: 5, str: ' dog', prob: 0.2 }], [{ token: 6, str: '.', prob: 0.9 }]]],
    });
    expect(f.values).toEqual([null, 2, 0.5]);
    expect(f.max).toBe(2);
    expect(f.hover[2]).toBe(`2: " cat": loss 0.500 nats (p ${Math.exp(-0.5).toFixed(3)}); the model's top guess was " dog" (p 0.200)`);
    expect(f.table.columns).toEqual(['pos', 'token', 'loss']);
  });
});

describe('lensTextFigure', () => {
  const R: LogitLensData = {
    tokens: [50256, 7554], strTokens: ['<|endoftext|>', ' Mary'], labels: ['0_pre', 'final_post'], positions: [0, 1],
    top: [[[{ token: 1, str: 'a', prob: 0.5 }], [{ token: 1, str: 'a', prob: 0.5 }]], [[{ token: 1, str: 'a', prob: 0.5 }], [{ token: 1, str: 'a', prob: 0.5 }]]],
    targets: [{ token: 4, str: ' John', prob: [[0.01, 0.1], [0.02, 0.8]], rank: [[99, 3], [9, 0]], logit: [[0, 1], [1, 2]] }],
  };
  it('probability or rank of the target at the chosen depth, per position', () => {
    expect(lensTextFigure(R, 0, 1, 'prob').values).toEqual([0.02, 0.8]);
    const rk = lensTextFigure(R, 0, 0, 'rank');
    expect(rk.values).toEqual([99, 3]);
    expect(rk.title).toBe('Logit lens at L0 resid_pre: rank (0 = top) of " John" as the token after each token');
    expect(() => lensTextFigure(R, 1, 0, 'prob')).toThrow(/target 1/);
    expect(() => lensTextFigure(R, 0, 2, 'prob')).toThrow(/row 2/);
  });
  it('colour scale: linear from 0 to the largest value; ranks on log10(1 + rank), rank 0 darkest', () => {
    expect(textScaleAt({ scale: 'linear', max: 0.8 }, 0.2)).toBeCloseTo(0.25, 12);
    expect(textScaleAt({ scale: 'linear', max: 0.8 }, null)).toBeNull();
    expect(textScaleAt({ scale: 'rank', max: 99 }, 0)).toBe(1);
    expect(textScaleAt({ scale: 'rank', max: 99 }, 99)).toBeCloseTo(0, 12);
    expect(textScaleAt({ scale: 'rank', max: 99 }, 9)).toBeCloseTo(0.5, 12);
  });
});
