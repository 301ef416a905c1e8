/** The addition task's data: the exact prompt/answer format, the character-level tokenizer files, held-out problems never drawn for training. */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { Rng } from '../../../hooks/random.ts';
import { Gpt2Tokenizer } from '../../../hooks/tokenizer.ts';
import { additionBatch, additionProblemsAt } from '../../../training/addition.ts';
import {
  ADDITION_EOT_ID, additionAnswer, additionPrompt, additionRow, additionTokenizerFiles, encodeAddition, heldOutAdditionProblems, MAX_ROW, problemKey,
  randomAdditionProblem,
} from '../../../training/data/addition.ts';

describe('addition format', () => {
  it('A+B= with both operands zero-padded to 5 digits, then the 6 digits of the sum, zero-padded, least significant first, then end-of-text', () => {
    expect(additionPrompt({ a: 123, b: 4567 })).toBe('00123+04567=');
    expect(additionPrompt({ a: 0, b: 99_999 })).toBe('00000+99999=');
    expect(additionAnswer({ a: 123, b: 4567 })).toBe('096400'); // 4690 → 004690 → reversed
    expect(additionAnswer({ a: 99_999, b: 99_999 })).toBe('899991'); // 199998
    expect(additionAnswer({ a: 0, b: 0 })).toBe('000000');
    expect(additionRow({ a: 12, b: 5 })).toEqual([12, 0, 0, 0, 1, 2, 10, 0, 0, 0, 0, 5, 11, 7, 1, 0, 0, 0, 0, 12]);
    expect(additionRow({ a: 99_999, b: 99_999 })).toHaveLength(MAX_ROW);
    expect(additionRow({ a: 0, b: 0 })).toHaveLength(MAX_ROW); // one layout for every problem
    expect(() => encodeAddition('1-2')).toThrow(/"-" is not in the vocabulary/);
  });

  it('operands are uniform integers in [0, 99999], written with 5 digits', () => {
    const rng = new Rng(3);
    let below10k = 0;
    for (let i = 0; i < 5000; i++) {
      const p = randomAdditionProblem(rng);
      for (const x of [p.a, p.b]) expect(Number.isInteger(x) && x >= 0 && x <= 99_999).toBe(true);
      expect(additionPrompt(p)).toMatch(/^\d{5}\+\d{5}=$/);
      expect(Number(additionPrompt(p).slice(0, 5))).toBe(p.a);
      if (p.a < 10_000) below10k++;
    }
    expect(below10k).toBeGreaterThan(400); // uniform: ~500 of 5,000 have a leading zero
    expect(below10k).toBeLessThan(600);
  });

  it('held-out problems are distinct and never drawn for training', () => {
    const held = heldOutAdditionProblems(2000, 11);
    expect(new Set(held.map(problemKey)).size).toBe(2000);
    // the held-out set holding exactly the problems a step would draw: none of them is drawn, the batch is still full
    const drawn = additionProblemsAt(1, 0, 64, new Set());
    const keys = new Set(drawn.map(problemKey));
    const filtered = additionProblemsAt(1, 0, 64, keys);
    expect(filtered).toHaveLength(64);
    expect(filtered.filter((p) => keys.has(problemKey(p)))).toEqual([]);
  });

  it('scores only the answer: the 6 digits and end-of-text, predicted from "=" on', () => {
    const b = additionBatch(2, 5, 8, new Set());
    for (let r = 0; r < b.batch; r++) {
      const inputs = Array.from(b.inputs.subarray(r * b.pos, (r + 1) * b.pos));
      const targets = Array.from(b.targets.subarray(r * b.pos, (r + 1) * b.pos));
      const eq = inputs.indexOf(11);
      expect(targets.map((t, p) => (t >= 0 ? p : -1)).filter((p) => p >= 0)).toEqual([eq, eq + 1, eq + 2, eq + 3, eq + 4, eq + 5, eq + 6]);
      expect(targets[eq + 6]).toBe(ADDITION_EOT_ID);
    }
  });
});

describe('the character-level tokenizer files', () => {
  it('load through the library tokenizer: one token per character, end-of-text is BOS, EOS and padding, unknown characters are errors', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'lensboard-addtok-'));
    try {
      for (const [f, text] of Object.entries(additionTokenizerFiles(20))) await writeFile(join(dir, f), text);
      const tok = await Gpt2Tokenizer.fromDir(dir);
      expect(tok.vocabSize).toBe(13);
      expect([tok.bosTokenId, tok.eosTokenId, tok.padTokenId]).toEqual([12, 12, 12]);
      expect(tok.modelMaxLength).toBe(20);
      expect(tok.encode('123+4567=')).toEqual(encodeAddition('123+4567='));
      expect(tok.toTokens(['9+1=', '10+10='])).toEqual({ tokens: [[12, 9, 10, 1, 11, 12, 12], [12, 1, 0, 10, 1, 0, 11]], attentionMask: [[1, 1, 1, 1, 1, 0, 0], [1, 1, 1, 1, 1, 1, 1]] });
      expect(tok.decode([1, 2, 10, 3, 11, 5, 1, 0, 0, 0, 0, 12])).toBe('12+3=510000<|endoftext|>');
      expect(tok.encode('<|endoftext|>7')).toEqual([12, 7]);
      expect(tok.toStrTokens('1+2=')).toEqual(['<|endoftext|>', '1', '+', '2', '=']);
      expect(() => tok.encode('1 + 2')).toThrow(/" " at index 1 of "1 \+ 2" is not in this tokenizer's vocabulary \(13 tokens: "0" "1"/);
      expect(() => tok.toSingleToken('12')).toThrow(/2 tokens/);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
