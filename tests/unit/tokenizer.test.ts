/** GPT-2 tokenizer: ids match an independent BPE (js-tiktoken's gpt2) and known GPT-2 ids; TransformerLens helper semantics. */
import { beforeAll, describe, expect, it } from 'vitest';
import { Tiktoken } from 'js-tiktoken/lite';
import gpt2Ranks from 'js-tiktoken/ranks/gpt2';
import { Gpt2Tokenizer } from '../../hooks/tokenizer.ts';
import { Rng } from '../../hooks/random.ts';

let tok: Gpt2Tokenizer;
let ref: Tiktoken;
/** Reference ids: js-tiktoken's gpt2 encoding, with "<|endoftext|>" in the text treated as the special token (as HF does). */
const refEncode = (s: string): number[] => ref.encode(s, 'all');

beforeAll(async () => {
  tok = await Gpt2Tokenizer.default();
  ref = new Tiktoken(gpt2Ranks);
});

// None of these contain U+0085 or U+FEFF, the two code points where js-tiktoken's JavaScript `\s` differs from
// GPT-2's (tested separately below against hand-split pieces).
const CORPUS: string[] = [
  // Shakespeare
  'First Citizen:\nBefore we proceed any further, hear me speak.',
  'All:\nSpeak, speak.',
  "You are all resolved rather to die than to famish?",
  'To be, or not to be, that is the question:',
  "Whether 'tis nobler in the mind to suffer\nThe slings and arrows of outrageous fortune,",
  'Now is the winter of our discontent\nMade glorious summer by this sun of York;',
  "O Romeo, Romeo! wherefore art thou Romeo?",
  "What's in a name? That which we call a rose\nBy any other name would smell as sweet.",
  'Friends, Romans, countrymen, lend me your ears;',
  'The quality of mercy is not strain\'d,\nIt droppeth as the gentle rain from heaven',
  "Is this a dagger which I see before me,\nThe handle toward my hand? Come, let me clutch thee.",
  "All the world's a stage,\nAnd all the men and women merely players;",
  'If music be the food of love, play on;',
  "Shall I compare thee to a summer's day?\nThou art more lovely and more temperate:",
  'Double, double toil and trouble;\nFire burn, and cauldron bubble.',
  "Out, damned spot! out, I say!--One: two: why,\nthen, 'tis time to do't.--Hell is murky!",
  'KING RICHARD III:\nA horse! a horse! my kingdom for a horse!',
  "We few, we happy few, we band of brothers;",
  "Tomorrow, and tomorrow, and tomorrow,\nCreeps in this petty pace from day to day,",
  'Lord, what fools these mortals be!',
  "The course of true love never did run smooth.",
  "Cowards die many times before their deaths;\nThe valiant never taste of death but once.",
  "MENENIUS:\nEither you must\nConfess yourselves wondrous malicious,\nOr be accused of folly.",
  "Hath not a Jew eyes? hath not a Jew hands, organs,\ndimensions, senses, affections, passions?",
  // contractions and apostrophes
  "it's they're we've I'm you'll he'd can't won't",
  "IT'S THEY'RE WE'VE I'M YOU'LL HE'D",
  "'s 't 're 've 'm 'll 'd ''s rock'n'roll o'clock",
  'It\u2019s a curly apostrophe \u2014 and "quotes" \u201cquoted\u201d',
  // numbers
  '3.14159 2718281828 1,000,000 -42 +7 1e-9 0x1F 2024-06-01 12:30:45',
  'In 1776, 56 men signed; 13 colonies; $1,234.56 or 99.9%',
  '١٢٣ ४५६ ½ ² Ⅻ',
  // whitespace, newlines, leading spaces
  '   leading spaces',
  ' one leading space',
  'trailing spaces   ',
  'a  b   c    d\t\te\t \tf',
  'line1\nline2\n\nline4\n\n\n\nline8',
  '\r\nwindows\r\nnewlines\r\n',
  '\n\n  \n\t\n',
  ' ',
  '    ',
  '\u00a0non-breaking\u00a0space and\u2009thin\u3000ideographic',
  '',
  // code
  'def f(x):\n    return x ** 2 + 1  # square\n',
  'const xs = [1, 2, 3].map((x) => x * 2);\nconsole.log(`${xs}`);',
  '#include <stdio.h>\nint main(void) { printf("hi\\n"); return 0; }',
  '<div class="a">&amp; &lt;b&gt;</div>',
  '{"key": [true, null, 1.5e10], "k2": {"nested": "v"}}',
  'SELECT * FROM users WHERE id = 7 AND name LIKE \'%bob%\';',
  'https://example.com/path?q=1&r=two#frag user@example.org',
  '====\n----\n____\n****\n~~~~\n////\n\\\\\\\\',
  // unicode: accents, CJK, emoji, other scripts
  'Café naïve façade résumé Ångström Zürich São Paulo',
  'e\u0301 (decomposed) vs é (composed)',
  '日本語のテキストです。中文文本。한국어 텍스트.',
  'Привет, мир! Γειά σου Κόσμε! שלום עולם مرحبا بالعالم',
  'नमस्ते दुनिया  สวัสดีชาวโลก',
  'Emoji: 😀😃😄 👍🏽 👨‍👩‍👧‍👦 🇫🇷 ❤️ 🤖',
  '𝔘𝔫𝔦𝔠𝔬𝔡𝔢 math 𝒜ℬ𝒞 and astral 𐍈',
  'control\u0001chars\u001f\u007f and \u200bzero\u200dwidth',
  // the special token as literal text
  '<|endoftext|>',
  'Hello<|endoftext|>World',
  'one <|endoftext|> two<|endoftext|><|endoftext|> three',
  '<|endoftext|',
  '<|startoftext|>',
  // long runs
  'x'.repeat(300),
  ' '.repeat(50) + 'y',
  'ab'.repeat(200),
  '1234567890'.repeat(20),
];

describe('encode matches GPT-2 (js-tiktoken gpt2 as the independent reference)', () => {
  it('the loaded vocabulary is GPT-2\'s', () => {
    expect(tok.vocabSize).toBe(50257);
    expect(tok.bosTokenId).toBe(50256);
    expect(tok.eosTokenId).toBe(50256);
    expect(tok.padTokenId).toBe(50256);
    expect(tok.modelMaxLength).toBe(1024);
  });

  it.each(CORPUS.map((s, i) => [i, s] as const))('corpus[%i] encodes identically', (_i, s) => {
    expect(tok.encode(s)).toEqual(refEncode(s));
  });

  it('the whole corpus as one text encodes identically', () => {
    const all = CORPUS.join('\n');
    const ids = tok.encode(all);
    expect(ids.length).toBeGreaterThan(1000);
    expect(ids).toEqual(refEncode(all));
  });

  it('random strings over a mixed character pool encode identically (seeded, 300 strings)', () => {
    const pool = [
      ...'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789',
      ...' ', ' ', ' ', '\n', '\t', "'", "'s", "'t", "'re", "'ll", '.', ',', '!', '?', '-', '(', ')', '"', '#', '_',
      'é', 'ü', 'ß', 'ñ', '中', '文', 'ア', '한', 'Ж', 'λ', '😀', '👍🏽', '\u00a0', '\u2003', '½', '٣',
    ];
    const rng = new Rng(1234);
    for (let n = 0; n < 300; n++) {
      let s = '';
      const len = rng.int(1, 40);
      for (let k = 0; k < len; k++) s += pool[rng.int(0, pool.length)];
      expect(tok.encode(s), JSON.stringify(s)).toEqual(refEncode(s));
    }
  });
});

describe('known GPT-2 ids (hand-checked)', () => {
  it('Hello world, names, the special token', () => {
    expect(tok.encode('Hello world')).toEqual([15496, 995]);
    expect(tok.encode(' Mary')).toEqual([5335]);
    expect(tok.encode(' John')).toEqual([1757]);
    expect(tok.encode('<|endoftext|>')).toEqual([50256]);
    expect(tok.encode(' the')).toEqual([262]);
    expect(tok.encode('\n\n')).toEqual([628]);
    expect(tok.encode('The')).toEqual([464]);
    expect(tok.encode('!')).toEqual([0]);
  });
});

/** Plain-loop byte-level BPE over js-tiktoken's gpt2 ranks: encodes ONE pre-token, no regex splitting. */
function plainBpe(piece: string): number[] {
  if (rankOf === null) {
    rankOf = new Map();
    for (const line of gpt2Ranks.bpe_ranks.split('\n')) {
      if (line === '') continue;
      const [, offset, ...b64] = line.split(' ');
      b64.forEach((b, i) => rankOf!.set(Buffer.from(b, 'base64').toString('latin1'), Number(offset) + i));
    }
  }
  const ranks = rankOf;
  let parts = Array.from(new TextEncoder().encode(piece), (b) => String.fromCharCode(b));
  for (;;) {
    let best = -1;
    let bestRank = Infinity;
    for (let i = 0; i + 1 < parts.length; i++) {
      const r = ranks.get(parts[i] + parts[i + 1]);
      if (r !== undefined && r < bestRank) [best, bestRank] = [i, r];
    }
    if (best < 0) break;
    parts = [...parts.slice(0, best), parts[best] + parts[best + 1], ...parts.slice(best + 2)];
  }
  return parts.map((p) => ranks.get(p)!);
}
let rankOf: Map<string, number> | null = null;

describe('whitespace class is GPT-2\'s (Oniguruma / Python regex `\\s`), not JavaScript\'s', () => {
  it('the plain BPE agrees with the reference on ordinary pre-tokens', () => {
    for (const p of ['Hello', ' world', ' Mary', "'s", '   ', '\n\n', ' 2024', ' café', ' 日本語', ' 😀']) {
      expect(plainBpe(p)).toEqual(refEncode(p));
    }
  });

  // Expected ids: split by hand with GPT-2's regex where U+0085 IS whitespace and U+FEFF is NOT
  // (Oniguruma / Python `regex` / Rust tiktoken), then plain BPE on each piece. `jsDiffers`: js-tiktoken,
  // which splits with JavaScript's `\s`, gives other ids for the whole text (only when a merge crosses
  // a split that differs).
  const cases: { text: string; pieces: string[]; jsDiffers: boolean }[] = [
    // U+0085 is whitespace: a run before a letter, split off by \s+ (JS: punctuation piece, same split)
    { text: 'a\u0085b', pieces: ['a', '\u0085', 'b'], jsDiffers: false },
    // not glued to the "!" (JS: "\x85!" is one piece; no merge crosses the boundary, so the ids agree)
    { text: 'a\u0085!', pieces: ['a', '\u0085', '!'], jsDiffers: false },
    // trailing " \x85" is a whitespace run (JS: " ?[^\s..]+" piece, same text)
    { text: 'a \u0085', pieces: ['a', ' \u0085'], jsDiffers: false },
    // " \x85!": \s+(?!\S) backs off to " ", then "\x85", then "!"  (JS: " \x85!" one piece -> " Â" merge)
    { text: 'x \u0085!', pieces: ['x', ' ', '\u0085', '!'], jsDiffers: true },
    { text: 'end  \u0085\u0085', pieces: ['end', '  \u0085\u0085'], jsDiffers: false },
    // U+FEFF is not whitespace: " ?[^\s\p{L}\p{N}]+" takes " \uFEFF!" whole -> " ï" merge (JS: " " | "\uFEFF" | "!")
    { text: 'x \ufeff!', pieces: ['x', ' \ufeff!'], jsDiffers: true },
    { text: '\ufeff!', pieces: ['\ufeff!'], jsDiffers: false },
    { text: '\ufeffHi', pieces: ['\ufeff', 'Hi'], jsDiffers: false },
  ];
  it.each(cases)('$text', ({ text, pieces, jsDiffers }) => {
    expect(pieces.join('')).toBe(text);
    const expected = pieces.flatMap(plainBpe);
    expect(tok.encode(text)).toEqual(expected);
    if (jsDiffers) expect(refEncode(text)).not.toEqual(expected);
    else expect(refEncode(text)).toEqual(expected);
    expect(tok.decode(tok.encode(text))).toBe(text);
  });
});

describe('decode', () => {
  it('round-trips every corpus string exactly', () => {
    for (const s of CORPUS) expect(tok.decode(tok.encode(s))).toBe(s);
  });

  it('keeps spaces before punctuation (no clean-up) and special tokens', () => {
    expect(tok.decode([15496, 995, 50256])).toBe('Hello world<|endoftext|>');
    const s = "Hello , world . it 's n't";
    expect(tok.decode(tok.encode(s))).toBe(s);
  });

  it('decodes the reference\'s ids to the same text the reference does', () => {
    for (const s of CORPUS.slice(0, 30)) {
      const ids = refEncode(s);
      expect(tok.decode(ids)).toBe(ref.decode(ids));
    }
  });

  it('rejects ids outside the vocabulary', () => {
    expect(() => tok.decode([50257])).toThrow(/index 0 is number 50257.*\[0, 50257\)/);
    expect(() => tok.decode([1, -1])).toThrow(/index 1/);
    expect(() => tok.decode([1.5])).toThrow(/integers/);
  });
});

describe('toTokens', () => {
  it('prepends BOS by default and not when asked', () => {
    expect(tok.toTokens('Hello world')).toEqual({ tokens: [[50256, 15496, 995]], attentionMask: [[1, 1, 1]] });
    expect(tok.toTokens('Hello world', { prependBos: false })).toEqual({ tokens: [[15496, 995]], attentionMask: [[1, 1]] });
  });

  it('pads on the right with <|endoftext|>, mask 0 at pads', () => {
    const a = tok.encode('When Mary and John went to the store');
    const b = tok.encode(' John');
    const { tokens, attentionMask } = tok.toTokens(['When Mary and John went to the store', ' John']);
    const pos = a.length + 1;
    expect(tokens).toEqual([
      [50256, ...a],
      [50256, ...b, ...new Array(pos - 1 - b.length).fill(50256)],
    ]);
    expect(attentionMask).toEqual([
      new Array(pos).fill(1),
      [1, 1, ...new Array(pos - 2).fill(0)],
    ]);
  });

  it('pads on the left when asked', () => {
    const { tokens, attentionMask } = tok.toTokens(['a b c d', 'x'], { paddingSide: 'left' });
    expect(tokens).toEqual([
      [50256, 64, 275, 269, 288],
      [50256, 50256, 50256, 50256, 87],
    ]);
    expect(attentionMask).toEqual([
      [1, 1, 1, 1, 1],
      [0, 0, 0, 1, 1],
    ]);
    const noBos = tok.toTokens(['a b c d', 'x'], { paddingSide: 'left', prependBos: false });
    expect(noBos.tokens).toEqual([
      [64, 275, 269, 288],
      [50256, 50256, 50256, 87],
    ]);
    expect(noBos.attentionMask).toEqual([
      [1, 1, 1, 1],
      [0, 0, 0, 1],
    ]);
  });

  it('truncates to maxLength (default n_ctx = 1024), keeping BOS and the first tokens', () => {
    const long = ' a'.repeat(2000); // 2000 tokens of " a" (257)
    expect(tok.encode(long)).toEqual(new Array(2000).fill(257));
    const t = tok.toTokens(long);
    expect(t.tokens[0].length).toBe(1024);
    expect(t.tokens[0][0]).toBe(50256);
    expect(t.tokens[0][1023]).toBe(257);
    expect(tok.toTokens(long, { maxLength: 5 }).tokens).toEqual([[50256, 257, 257, 257, 257]]);
    expect(tok.toTokens(long, { truncate: false }).tokens[0].length).toBe(2001);
    expect(() => tok.toTokens(long, { truncate: false, maxLength: 5 })).toThrow(/maxLength only applies/);
    expect(() => tok.toTokens('x', { maxLength: 0 })).toThrow(/positive integer/);
  });

  it('rejects bad input', () => {
    expect(() => tok.toTokens([])).toThrow(/non-empty array/);
    expect(() => tok.toTokens(['ok', 3 as unknown as string])).toThrow(/input\[1\] must be a string/);
    expect(() => tok.toTokens('x', { paddingSide: 'middle' as 'left' })).toThrow(/'left' or 'right'/);
  });
});

describe('toStrTokens / toString', () => {
  it('decodes each token alone, BOS first by default', () => {
    expect(tok.toStrTokens('Hello world')).toEqual(['<|endoftext|>', 'Hello', ' world']);
    expect(tok.toStrTokens("I can't", { prependBos: false })).toEqual(['I', ' can', "'t"]);
    expect(tok.toStrTokens([5335, 1757])).toEqual([' Mary', ' John']);
  });

  it('string tokens concatenate back to the text; split characters show as U+FFFD', () => {
    const s = 'When Mary and John went to the store, John gave a drink to';
    expect(tok.toStrTokens(s, { prependBos: false }).join('')).toBe(s);
    const emoji = tok.toStrTokens('🤖', { prependBos: false });
    expect(emoji.length).toBe(tok.encode('🤖').length);
    expect(emoji.length).toBeGreaterThan(1);
    for (const piece of emoji) expect(piece).toMatch(/^\uFFFD+$/);
  });

  it('toString decodes [pos] to a string and [batch, pos] to strings', () => {
    const ids = tok.encode('Hello world');
    expect(tok.toString(ids)).toBe('Hello world');
    expect(tok.toString([ids, [5335], []])).toEqual(['Hello world', ' Mary', '']);
    expect(tok.toString([])).toBe('');
    expect(() => tok.toString([1, 99999])).toThrow(/index 1/);
  });
});

describe('toSingleToken', () => {
  it('returns the id of a single-token string', () => {
    expect(tok.toSingleToken(' Mary')).toBe(5335);
    expect(tok.toSingleToken(' John')).toBe(1757);
    expect(tok.toSingleToken('<|endoftext|>')).toBe(50256);
  });

  it('names the string and the token count otherwise', () => {
    expect(() => tok.toSingleToken('Hello world')).toThrow(/"Hello world" is 2 tokens \["Hello", " world"\]/);
    expect(() => tok.toSingleToken('')).toThrow(/"" is 0 tokens/);
  });
});

describe('getTokenPosition', () => {
  const prompt = 'When Mary and John went to the store, John gave a drink to';
  it('first and last occurrence, counting BOS', () => {
    const strs = tok.toStrTokens(prompt);
    const firstJohn = strs.indexOf(' John');
    const lastJohn = strs.lastIndexOf(' John');
    expect(firstJohn).toBe(4); // [BOS, When, ' Mary', ' and', ' John', ...]
    expect(lastJohn).toBeGreaterThan(firstJohn);
    expect(tok.getTokenPosition(' John', prompt)).toBe(firstJohn);
    expect(tok.getTokenPosition(' John', prompt, { mode: 'last' })).toBe(lastJohn);
    expect(tok.getTokenPosition(1757, prompt, { mode: 'last' })).toBe(lastJohn);
    expect(tok.getTokenPosition(' John', prompt, { prependBos: false })).toBe(firstJohn - 1);
    expect(tok.getTokenPosition(' Mary', prompt, { mode: 'last' })).toBe(2);
  });

  it('takes token ids as given (no BOS added)', () => {
    const ids = tok.encode(prompt);
    expect(tok.getTokenPosition(' John', ids)).toBe(3);
    expect(tok.getTokenPosition(50256, [50256, 1, 50256], { mode: 'last' })).toBe(2);
  });

  it('errors list the tokens when absent; rejects a multi-token needle and bad mode', () => {
    expect(() => tok.getTokenPosition(' Bob', 'Mary and John')).toThrow(/does not occur in the prompt; its tokens are 0:"<\|endoftext\|>" 1:"Mary" 2:" and" 3:" John"/);
    expect(() => tok.getTokenPosition(' Mary Jane', prompt)).toThrow(/is 2 tokens/);
    expect(() => tok.getTokenPosition(' John', prompt, { mode: 'middle' as 'first' })).toThrow(/'first' or 'last'/);
  });
});

describe('tokenizer files that are not a tokenizer', () => {
  it('a corrupt tokenizer.json is named in the error (its contents never are); a wrong one too', async () => {
    const { mkdtemp, copyFile, writeFile, rm } = await import('node:fs/promises');
    const { tmpdir } = await import('node:os');
    const { join } = await import('node:path');
    const { DEFAULT_GPT2_TOKENIZER_DIR } = await import('../../hooks/tokenizer.ts');
    const dir = await mkdtemp(join(tmpdir(), 'lensboard-tok-'));
    try {
      await copyFile(join(DEFAULT_GPT2_TOKENIZER_DIR, 'tokenizer_config.json'), join(dir, 'tokenizer_config.json'));
      await writeFile(join(dir, 'tokenizer.json'), '{"model": SECRET-CONTENT');
      const corrupt = (await Gpt2Tokenizer.fromDir(dir).catch((e: Error) => e)) as Error;
      expect(corrupt.message).toBe(`Gpt2Tokenizer: ${join(dir, 'tokenizer.json')} is not valid JSON`);
      await writeFile(join(dir, 'tokenizer.json'), '{"model": {"type": "Unigram"}}');
      const wrong = (await Gpt2Tokenizer.fromDir(dir).catch((e: Error) => e)) as Error;
      expect(wrong.message).toMatch(new RegExp(`^Gpt2Tokenizer: ${join(dir, 'tokenizer.json')} with ${join(dir, 'tokenizer_config.json')} is not a usable tokenizer \\(`));
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
