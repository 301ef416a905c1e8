/**
 * The shipped addition model (models/addition) through the public API, as a user would use it:
 * HookedTransformer.fromPretrained('models/addition'), toTokens, generate (greedy). Asserts the format (operands
 * zero-padded to 5 digits, as minGPT's adder pads them), the size, and what the model achieves on the 10,000 held-out
 * problems: the target is ≥ 99 % exact match; the shipped model gets all 10,000 (see models/addition/README.md).
 */
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HookedTransformer } from '../../../hooks/HookedTransformer.ts';
import { additionAnswer, heldOutAdditionProblems } from '../../../training/data/addition.ts';
import { greedyAdditionAnswers, HELD_OUT_COUNT, HELD_OUT_SEED } from '../../../training/addition.ts';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const DIR = join(ROOT, 'models', 'addition');

let model: HookedTransformer;
beforeAll(async () => {
  model = await HookedTransformer.fromPretrained(DIR);
}, 60_000);
afterAll(async () => model?.dispose());

describe('addition model', () => {
  it('fits in 5 MB and has a character-level vocabulary whose end-of-text token is BOS, prepended by toTokens', () => {
    const bytes = readdirSync(DIR).reduce((a, f) => a + statSync(join(DIR, f)).size, 0);
    expect(bytes).toBeLessThanOrEqual(5_000_000);
    expect(model.cfg.d_vocab).toBe(13);
    expect(model.toTokens('00123+04567=')).toEqual([[12, 0, 0, 1, 2, 3, 10, 0, 4, 5, 6, 7, 11]]);
    expect(model.toStrTokens('00009+00001=')).toEqual(['<|endoftext|>', '0', '0', '0', '0', '9', '+', '0', '0', '0', '0', '1', '=']);
    expect(model.cfg.bos_token_id).toBe(12);
    expect(model.tokenizer!.eosTokenId).toBe(12);
    expect(() => model.toTokens('1 + 2=')).toThrow(/" " at index 1 of "1 \+ 2=" is not in this tokenizer's vocabulary/);
  });

  it('answers in the exact format: 6 digits of the sum, least significant first, then end-of-text (the card\'s 01234+56789= → 320850)', async () => {
    expect(additionAnswer({ a: 1234, b: 56_789 })).toBe('320850'); // 58023 → 058023 → reversed
    const [answer, small] = await greedyAdditionAnswers(model, [{ a: 1234, b: 56_789 }, { a: 5, b: 5 }]);
    expect(answer).toBe('320850<|endoftext|>');
    expect(small).toBe('010000<|endoftext|>'); // 00005+00005=
  });

  it('exact match on the 10,000 held-out problems (greedy generate): ≥ 99.9 % of all (the issue asks 99 %), also with a leading zero in an operand; every answer has the format', async () => {
    const problems = heldOutAdditionProblems(HELD_OUT_COUNT, HELD_OUT_SEED);
    const t0 = performance.now();
    const answers = await greedyAdditionAnswers(model, problems);
    const right = answers.map((a, i) => a === `${additionAnswer(problems[i])}<|endoftext|>`);
    const five = problems.map((p) => p.a >= 10_000 && p.b >= 10_000); // the others have a padded operand: a leading 0
    const count = (f: (i: number) => boolean) => right.filter((_r, i) => f(i)).length;
    const correct = count((i) => right[i]);
    const correctFive = count((i) => right[i] && five[i]);
    const nFive = five.filter(Boolean).length;
    console.log(`addition: ${correct} / ${problems.length} exact; both operands ≥ 10,000: ${correctFive} / ${nFive}; a leading zero: ${correct - correctFive} / ${problems.length - nFive} (${((performance.now() - t0) / 1000).toFixed(1)} s)`);
    expect(answers.every((a) => /^[0-9]{6}<\|endoftext\|>$/.test(a))).toBe(true);
    expect(correct / problems.length).toBeGreaterThanOrEqual(0.999); // measured 10,000 / 10,000
    expect((correct - correctFive) / (problems.length - nFive)).toBeGreaterThanOrEqual(0.995); // measured 1,855 / 1,855 (the unpadded model: 54)
  }, 120_000);
});
