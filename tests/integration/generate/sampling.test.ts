/** sampleLogits (TransformerLens's sample_logits): greedy cases, temperature, top-k, top-p and frequency penalty against hand-computed distributions. */
import { describe, expect, it } from 'vitest';
import { sampleLogits, type SamplingOptions } from '../../../hooks/generate.ts';
import { Rng } from '../../../hooks/random.ts';

const N = 20000;
/** Empirical frequencies of N draws. */
function freqs(logits: number[], opts: Partial<SamplingOptions>, history: number[] = [], seed = 1): number[] {
  const rng = new Rng(seed);
  const counts = new Array<number>(logits.length).fill(0);
  const row = Float32Array.from(logits);
  const o: SamplingOptions = { doSample: true, temperature: 1, freqPenalty: 0, ...opts };
  for (let i = 0; i < N; i++) counts[sampleLogits(row, o, rng, history)]++;
  return counts.map((c) => c / N);
}
const softmax = (x: number[]) => {
  const m = Math.max(...x);
  const e = x.map((v) => Math.exp(v - m));
  const s = e.reduce((a, b) => a + b, 0);
  return e.map((v) => v / s);
};
// Probabilities 0.5, 0.3, 0.15, 0.05 (logits = their logs).
const P = [0.5, 0.3, 0.15, 0.05];
const LOGITS = P.map(Math.log);
// 4 standard errors of a frequency at N draws is at most 4·sqrt(0.25/N) ≈ 0.014.
const TOL = 0.015;

describe('sampleLogits', () => {
  it('greedy (doSample false, or temperature 0) takes the first largest logit', () => {
    const rng = new Rng(0);
    const row = Float32Array.from([1, 3, 3, 2]);
    expect(sampleLogits(row, { doSample: false, temperature: 1, freqPenalty: 0 }, rng)).toBe(1);
    expect(sampleLogits(row, { doSample: true, temperature: 0, freqPenalty: 0 }, rng)).toBe(1);
  });

  it('samples the softmax; temperature 2 samples softmax(logits / 2)', () => {
    freqs(LOGITS, {}).forEach((f, i) => expect(Math.abs(f - P[i])).toBeLessThan(TOL));
    const hot = softmax(LOGITS.map((l) => l / 2));
    freqs(LOGITS, { temperature: 2 }).forEach((f, i) => expect(Math.abs(f - hot[i])).toBeLessThan(TOL));
  });

  it('topK keeps the k largest (renormalised); topK beyond the vocabulary keeps all', () => {
    const f = freqs(LOGITS, { topK: 2 });
    expect(f[2] + f[3]).toBe(0);
    expect(Math.abs(f[0] - 0.5 / 0.8)).toBeLessThan(TOL);
    freqs(LOGITS, { topK: 99 }).forEach((x, i) => expect(Math.abs(x - P[i])).toBeLessThan(TOL));
  });

  it('topP keeps the smallest prefix whose mass reaches p (the token crossing p included)', () => {
    // Mass before each token: 0, 0.5, 0.8, 0.95. p = 0.7 keeps tokens 0 and 1 (1 crosses 0.7).
    const f = freqs(LOGITS, { topP: 0.7 });
    expect(f[2] + f[3]).toBe(0);
    expect(Math.abs(f[0] - 0.5 / 0.8)).toBeLessThan(TOL);
    // p = 0.4: only token 0.
    expect(freqs(LOGITS, { topP: 0.4 })[0]).toBe(1);
    // topK wins over topP when both are given (as TransformerLens).
    expect(freqs(LOGITS, { topK: 3, topP: 0.4 })[2]).toBeGreaterThan(0.1);
  });

  it('freqPenalty subtracts penalty × count from each logit', () => {
    // Token 0 seen twice, penalty 0.5: logit 0 drops by 1.
    const expected = softmax(LOGITS.map((l, i) => (i === 0 ? l - 1 : l)));
    freqs(LOGITS, { freqPenalty: 0.5 }, [0, 0]).forEach((f, i) => expect(Math.abs(f - expected[i])).toBeLessThan(TOL));
  });

  it('the same seed gives the same draws', () => {
    expect(freqs(LOGITS, {}, [], 7)).toEqual(freqs(LOGITS, {}, [], 7));
  });
});
