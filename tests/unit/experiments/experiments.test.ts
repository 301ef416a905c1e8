/** Dataset experiments, the pure parts: mean / standard error against a two-pass computation, shards, fingerprints, datasets. */
import { describe, expect, it } from 'vitest';
import { TreeStats, type NumericTree } from '../../../hooks/experiments/aggregate.ts';
import { ioiItems, itemSeed, repeatedItems, textWindowItems } from '../../../hooks/experiments/datasets.ts';
import { canonicalJson, fingerprint, shardRanges } from '../../../hooks/experiments/shards.ts';
import { ioiDataset } from '../../../hooks/analysis/ioi.ts';
import { Rng } from '../../../hooks/random.ts';
import { Gpt2Tokenizer } from '../../../hooks/tokenizer.ts';
import { formatBar, formatDuration, formatRate } from '../../../cli/progress.ts';

/** Mean and sample standard error of xs, two-pass (the textbook formula, independent of Welford's update). */
function meanSe(xs: number[]): [number, number] {
  const n = xs.length;
  const mean = xs.reduce((a, b) => a + b, 0) / n;
  const ss = xs.reduce((a, x) => a + (x - mean) ** 2, 0);
  return [mean, Math.sqrt(ss / (n - 1) / n)];
}

describe('TreeStats', () => {
  it('gives every leaf of nested results the two-pass mean and standard error', () => {
    const rng = new Rng(3);
    const trees = Array.from({ length: 37 }, () => ({
      clean: 10 + 3 * rng.normal(),
      grid: [[rng.normal(), rng.normal() * 1e3, 5], [rng.normal() + 1e6, -rng.normal(), rng.normal()]],
      nested: { a: [rng.normal()], b: rng.normal() },
    }));
    const s = new TreeStats();
    trees.forEach((t) => s.add(t));
    const r = s.result();
    expect(r.n).toBe(37);
    const mean = r.mean as typeof trees[number];
    const se = r.stderr as typeof trees[number];
    const check = (get: (t: typeof trees[number]) => number, got: [number, number]) => {
      const [m, e] = meanSe(trees.map(get));
      expect(Math.abs(got[0] - m)).toBeLessThanOrEqual(1e-12 * Math.max(1, Math.abs(m)));
      expect(Math.abs(got[1] - e)).toBeLessThanOrEqual(1e-9 * Math.max(1, e));
    };
    check((t) => t.clean, [mean.clean, se.clean]);
    for (let i = 0; i < 2; i++) for (let j = 0; j < 3; j++) check((t) => t.grid[i][j], [mean.grid[i][j], se.grid[i][j]]);
    check((t) => t.nested.a[0], [mean.nested.a[0], se.nested.a[0]]);
    check((t) => t.nested.b, [mean.nested.b, se.nested.b]);
    expect(se.grid[0][2]).toBe(0); // a constant leaf
    expect(Object.keys(mean)).toEqual(['clean', 'grid', 'nested']);
  });

  it('gives the same bits for the same items in the same order, NaN standard error for one item, and decodes non-finite strings', () => {
    const a = new TreeStats();
    const b = new TreeStats();
    const xs = [0.1, 0.2, 0.3, 1e-9, 7];
    xs.forEach((x) => a.add([x]));
    xs.forEach((x) => b.add([x]));
    expect(JSON.stringify(a.result())).toBe(JSON.stringify(b.result()));
    const one = new TreeStats();
    one.add({ x: 2 });
    expect(one.result().mean).toEqual({ x: 2 });
    expect(Number.isNaN((one.result().stderr as { x: number }).x)).toBe(true);
    const inf = new TreeStats();
    inf.add(['-Infinity', 1]);
    inf.add([0, 'NaN']);
    const m = inf.result().mean as number[];
    expect(m[0]).toBe(-Infinity);
    expect(Number.isNaN(m[1])).toBe(true);
  });

  it('refuses results of another shape, naming the item and the field, and keeps what it had', () => {
    const s = new TreeStats();
    s.add({ delta: [[1, 2], [3, 4]], clean: 1 });
    expect(() => s.add({ delta: [[1, 2], [3]], clean: 1 }, 'item 17')).toThrow(/item 17: delta\[1\] has 1 entries where the first item has 2/);
    expect(() => s.add({ delta: [[1, 2], [3, 4]] } as NumericTree, 'item 18')).toThrow(/item 18: .*fields delta where the first item has delta, clean/);
    expect(() => s.add({ delta: [[1, 2], [3, 4]], clean: [1] }, 'item 19')).toThrow(/item 19: clean is an array/);
    expect(() => s.add({ delta: [[1, 2], [3, 'x']], clean: 1 }, 'item 20')).toThrow(/delta\[1\]\[1\]: 'x' is not a number/);
    expect(s.n).toBe(1);
    s.add({ delta: [[3, 2], [3, 4]], clean: 3 });
    expect(s.result().mean).toEqual({ delta: [[2, 2], [3, 4]], clean: 2 });
  });
});

describe('shards and fingerprints', () => {
  it('cuts n items into consecutive shards covering each item once', () => {
    expect(shardRanges(10, 4)).toEqual([{ index: 0, start: 0, end: 4 }, { index: 1, start: 4, end: 8 }, { index: 2, start: 8, end: 10 }]);
    expect(shardRanges(8, 4).map((s) => s.end - s.start)).toEqual([4, 4]);
    expect(shardRanges(1, 50)).toEqual([{ index: 0, start: 0, end: 1 }]);
    expect(() => shardRanges(5, 0)).toThrow(/shardSize must be a positive integer; got 0/);
  });

  it('fingerprints values whatever their key order, and tells different ones apart', () => {
    expect(canonicalJson({ b: 1, a: { d: [1, { y: 2, x: 1 }], c: null } })).toBe('{"a":{"c":null,"d":[1,{"x":1,"y":2}]},"b":1}');
    expect(fingerprint({ a: 1, b: [2, 3] })).toBe(fingerprint({ b: [2, 3], a: 1 }));
    expect(fingerprint({ a: 1, b: [2, 3] })).not.toBe(fingerprint({ a: 1, b: [3, 2] }));
    expect(fingerprint({ a: 1 })).toMatch(/^[0-9a-f]{64}$/);
  });
});

describe('datasets', () => {
  it("item seeds are 32-bit, deterministic, and distinct across nearby seeds and indices", () => {
    const seen = new Set<number>();
    for (let seed = 0; seed < 20; seed++) {
      for (let i = 0; i < 200; i++) {
        const s = itemSeed(seed, i);
        expect(Number.isInteger(s) && s >= 0 && s < 2 ** 32).toBe(true);
        seen.add(s);
      }
    }
    expect(seen.size).toBe(4000);
    expect(itemSeed(5, 7)).toBe(itemSeed(5, 7));
    expect(repeatedItems({ n: 3, seqLen: 8, seed: 5 })).toEqual([0, 1, 2].map((i) => ({ repeated: { seqLen: 8, seed: itemSeed(5, i) } })));
  });

  it("IOI items are the toolkit's IOI prompts, each with its corrupted prompt (the other name repeated, same token length)", async () => {
    const tok = await Gpt2Tokenizer.default();
    const items = ioiItems(tok, { n: 12, seed: 4 });
    const ds = ioiDataset(tok, { n: 12, seed: 4 });
    expect(items.map((x) => x.prompt)).toEqual(ds.prompts.map((p) => p.prompt));
    items.forEach((x, i) => {
      const p = ds.prompts[i];
      expect([x.io, x.s, x.correct, x.incorrect]).toEqual([p.io, p.s, ` ${p.io}`, ` ${p.s}`]);
      const text = x.prompt as string;
      const corrupted = x.corrupted as string;
      // Same first clause; the sentence's second clause names the IO instead of the subject.
      const cut = text.lastIndexOf(` ${p.s} `);
      expect(corrupted).toBe(`${text.slice(0, cut)} ${p.io} ${text.slice(cut + p.s.length + 2)}`);
      expect(tok.encode(corrupted).length).toBe(tok.encode(text).length);
    });
    expect(items.map((x) => x.prompt)).toEqual(ioiItems(tok, { n: 12, seed: 4 }).map((x) => x.prompt));
    const held = ioiItems(tok, { n: 6, names: 'heldout' });
    expect(held.every((x) => ['Richard', 'Henry', 'Edward', 'Margaret', 'Juliet', 'Romeo', 'Isabel', 'Angelo', 'Lewis', 'Warwick', 'Clarence', 'Hastings', 'George', 'Thomas', 'Harry'].includes(x.io!))).toBe(true);
  });

  it('text windows: BOS + `length` tokens from every `stride`-th token, as many as fit (or `limit`)', async () => {
    const tok = await Gpt2Tokenizer.default();
    const text = 'To be, or not to be, that is the question: whether tis nobler in the mind to suffer';
    const all = tok.encode(text);
    const w = textWindowItems(tok, text, { length: 5, stride: 3 });
    expect(w).toHaveLength(Math.floor((all.length - 5) / 3) + 1);
    w.forEach((x, k) => expect(x.prompt).toEqual([50256, ...all.slice(3 * k, 3 * k + 5)]));
    expect(textWindowItems(tok, text, { length: 5, limit: 2, prependBos: false })).toEqual([{ prompt: all.slice(0, 5) }, { prompt: all.slice(5, 10) }]);
    expect(() => textWindowItems(tok, 'short', { length: 50 })).toThrow(/fewer than one window of 50/);
  });
});

describe('the progress line', () => {
  it('shows items per second since the first update and the time left at that rate', () => {
    // 30 items done in 12 s since a resumed start at 100 of 400: 2.5 items/s, 270 left → 108 s.
    expect(formatRate('items', { done: 100, ms: 0 }, 130, 400, 12_000)).toBe('2.50 items/s, ETA 1m48s');
    expect(formatRate('items', { done: 0, ms: 0 }, 150, 400, 10_000)).toBe('15.0 items/s, ETA 17s');
    expect(formatRate('items', { done: 5, ms: 0 }, 5, 400, 10_000)).toBe(''); // nothing done since the start yet
    expect([formatDuration(59.4), formatDuration(3600 * 2 + 3 * 60 + 9)]).toEqual(['59s', '2h03m']);
    expect(formatBar('items', 130, 400, '2.50 items/s, ETA 1m48s', 10)).toBe('items [###-------] 130/400  32% 2.50 items/s, ETA 1m48s');
  });
});
