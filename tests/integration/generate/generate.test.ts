/** model.generate: KV cache = no cache = a naive loop of forward (tokens and per-step logits), left-padded batches, seeded sampling, EOS, errors. */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HookedTransformer } from '../../../hooks/HookedTransformer.ts';
import { gpt2Config, randomWeights } from '../../../hooks/init.ts';
import type { GenerateOptions } from '../../../hooks/generate.ts';
import { Tensor } from '../../../hooks/tensor.ts';
import { Gpt2Tokenizer } from '../../../hooks/tokenizer.ts';

const ATOL = 1e-4;
// Tiny GPT-2: 3 layers, d_model 24, 4 heads, d_vocab 60, n_ctx 32; random LayerNorms and biases.
const cfg = gpt2Config({ model_name: 'tiny', n_layers: 3, d_model: 24, n_heads: 4, d_vocab: 60, n_ctx: 32 });
const PROMPTS = [
  [7, 21, 3, 44, 8, 19],
  [50, 2, 33, 11, 40, 27],
];
let model: HookedTransformer;

/** Runs generate and records each step's logits [batch, d_vocab] and tokens. */
async function run(input: number[][], opts: GenerateOptions): Promise<{ tokens: number[][]; logits: Tensor[] }> {
  const logits: Tensor[] = [];
  const tokens = (await model.generate(input, {
    ...opts,
    returnType: 'tokens',
    onStep: (s) => void logits.push(new Tensor(Float32Array.from(s.logits.data), s.logits.shape)),
  })) as number[][];
  return { tokens, logits };
}

function maxDiff(a: Tensor, b: Tensor): number {
  expect(a.shape).toEqual(b.shape);
  let worst = 0;
  for (let i = 0; i < a.data.length; i++) worst = Math.max(worst, Math.abs(a.data[i] - b.data[i]));
  return Number.isNaN(worst) ? Infinity : worst;
}

/** Greedy decoding by hand: forward on the whole growing sequence, argmax (first) of the last position. */
async function naiveGreedy(prompts: number[][], steps: number): Promise<{ tokens: number[][]; logits: Tensor[] }> {
  const seq = prompts.map((r) => [...r]);
  const all: Tensor[] = [];
  const V = cfg.d_vocab;
  for (let s = 0; s < steps; s++) {
    const logits = await model.forward(seq); // [batch, pos, d_vocab]
    const pos = seq[0].length;
    const last = new Float32Array(seq.length * V);
    seq.forEach((row, b) => {
      const r = logits.data.subarray((b * pos + pos - 1) * V, (b * pos + pos) * V);
      last.set(r, b * V);
      let best = 0;
      for (let i = 1; i < V; i++) if (r[i] > r[best]) best = i;
      row.push(best);
    });
    all.push(new Tensor(last, [seq.length, V]));
  }
  return { tokens: seq, logits: all };
}

beforeAll(async () => {
  model = await HookedTransformer.fromWeights(cfg, randomWeights(cfg, { seed: 11, randomAffine: true, std: 0.5 }));
});
afterAll(async () => {
  await model.dispose();
});

describe('greedy generation', () => {
  it('with the KV cache = without it = a naive forward loop: same tokens, per-step logits within 1e-4', async () => {
    const steps = 12;
    const greedy: GenerateOptions = { maxNewTokens: steps, doSample: false, stopAtEos: false };
    const kv = await run(PROMPTS, { ...greedy, useKvCache: true });
    const full = await run(PROMPTS, { ...greedy, useKvCache: false });
    const naive = await naiveGreedy(PROMPTS, steps);
    expect(kv.tokens).toEqual(naive.tokens);
    expect(full.tokens).toEqual(naive.tokens);
    expect(kv.tokens[0]).toHaveLength(PROMPTS[0].length + steps);
    expect(new Set(kv.tokens[0].slice(6)).size, 'the continuation is not one repeated token').toBeGreaterThan(1);
    expect(kv.logits).toHaveLength(steps);
    for (let s = 0; s < steps; s++) {
      expect(maxDiff(kv.logits[s], naive.logits[s]), `step ${s} kv vs naive`).toBeLessThanOrEqual(ATOL);
      expect(maxDiff(full.logits[s], naive.logits[s]), `step ${s} no-cache vs naive`).toBeLessThanOrEqual(ATOL);
    }
  });

  it('fed weights (weightMode feed) and folded LayerNorms (LNPre): KV-cache logits = forward within 1e-4', async () => {
    const processed = await HookedTransformer.fromWeights(cfg, randomWeights(cfg, { seed: 11, randomAffine: true, std: 0.5 }), {
      weightMode: 'feed', foldLn: true, centerWritingWeights: true, centerUnembed: true, foldValueBiases: true,
    });
    try {
      expect(processed.cfg.normalization_type).toBe('LNPre');
      const kv: Tensor[] = [];
      const full: Tensor[] = [];
      const greedy: GenerateOptions = { maxNewTokens: 8, doSample: false, stopAtEos: false, returnType: 'tokens' };
      const a = await processed.generate(PROMPTS, { ...greedy, onStep: (s) => void kv.push(s.logits) });
      const b = await processed.generate(PROMPTS, { ...greedy, useKvCache: false, onStep: (s) => void full.push(s.logits) });
      expect(a).toEqual(b);
      kv.forEach((l, s) => expect(maxDiff(l, full[s]), `step ${s}`).toBeLessThanOrEqual(ATOL));
    } finally {
      await processed.dispose();
    }
  });

  it('temperature 0 and topK 1 with sampling on both equal greedy', async () => {
    const base: GenerateOptions = { maxNewTokens: 8, stopAtEos: false };
    const greedy = await run(PROMPTS, { ...base, doSample: false });
    expect((await run(PROMPTS, { ...base, doSample: true, topK: 1, seed: 5 })).tokens).toEqual(greedy.tokens);
    expect((await run(PROMPTS, { ...base, doSample: true, temperature: 0, seed: 5 })).tokens).toEqual(greedy.tokens);
  });

  it('rows of a left-padded batch equal their prompts generated alone (with and without the cache)', async () => {
    const prompts = [[7, 21, 3, 44, 8, 19], [50, 2, 33], [9, 14, 1, 58]];
    const pos = 6;
    const PAD = 59;
    const tokens = prompts.map((p) => [...new Array<number>(pos - p.length).fill(PAD), ...p]);
    const attentionMask = prompts.map((p) => [...new Array<number>(pos - p.length).fill(0), ...p.map(() => 1)]);
    const greedy: GenerateOptions = { maxNewTokens: 10, doSample: false, stopAtEos: false, attentionMask };
    for (const useKvCache of [true, false]) {
      const batch = await run(tokens, { ...greedy, useKvCache });
      for (let b = 0; b < prompts.length; b++) {
        const alone = await run([prompts[b]], { ...greedy, attentionMask: undefined, useKvCache });
        expect(batch.tokens[b].slice(pos - prompts[b].length), `row ${b}, kv ${useKvCache}`).toEqual(alone.tokens[0]);
        for (let s = 0; s < 10; s++) {
          const row = batch.logits[s].slice(0, b, b + 1);
          expect(maxDiff(row, alone.logits[s]), `row ${b} step ${s} kv ${useKvCache}`).toBeLessThanOrEqual(ATOL);
        }
      }
    }
  });
});

describe('sampling', () => {
  const opts: GenerateOptions = { maxNewTokens: 12, stopAtEos: false, temperature: 1.5 };

  it('is reproducible from the seed, the same with and without the cache, and differs across seeds', async () => {
    const a = await run(PROMPTS, { ...opts, seed: 42 });
    const b = await run(PROMPTS, { ...opts, seed: 42 });
    const c = await run(PROMPTS, { ...opts, seed: 42, useKvCache: false });
    expect(b.tokens).toEqual(a.tokens);
    expect(c.tokens).toEqual(a.tokens);
    const others = await Promise.all([1, 2, 3].map((seed) => run(PROMPTS, { ...opts, seed })));
    expect(others.some((o) => JSON.stringify(o.tokens) !== JSON.stringify(a.tokens))).toBe(true);
  });

  it('topK draws only among the k largest logits of each step', async () => {
    const k = 3;
    const r = await run(PROMPTS, { ...opts, topK: k, seed: 9 });
    r.logits.forEach((l, s) => {
      for (let b = 0; b < PROMPTS.length; b++) {
        const row = Array.from(l.data.subarray(b * cfg.d_vocab, (b + 1) * cfg.d_vocab));
        const kth = [...row].sort((x, y) => y - x)[k - 1];
        const t = r.tokens[b][PROMPTS[b].length + s];
        expect(row[t], `step ${s} row ${b}`).toBeGreaterThanOrEqual(kth);
      }
    });
  });
});

describe('stopAtEos', () => {
  it('finished rows are padded with EOS and generation stops once every row has finished', async () => {
    const max = 12;
    const free = await run(PROMPTS, { maxNewTokens: max, doSample: false, stopAtEos: false });
    // Each row's 3rd new token taken as "EOS" in turn: a row finishes at its first occurrence, if any
    // (with this model, row 1's 3rd token also ends row 0 later, so the run stops before maxNewTokens).
    for (const eos of PROMPTS.map((p, b) => free.tokens[b][p.length + 2])) {
      const firstEos = PROMPTS.map((p, b) => {
        const i = free.tokens[b].slice(p.length).indexOf(eos);
        return i < 0 ? Infinity : i;
      });
      const steps = Math.min(max, Math.max(...firstEos) + 1);
      for (const useKvCache of [true, false]) {
        const stopped = await run(PROMPTS, { maxNewTokens: max, doSample: false, stopAtEos: true, eosTokenId: eos, useKvCache });
        expect(stopped.logits).toHaveLength(steps);
        PROMPTS.forEach((p, b) => {
          const expected = free.tokens[b].slice(0, p.length + steps).map((t, i) => (i - p.length > firstEos[b] ? eos : t));
          expect(stopped.tokens[b], `row ${b} kv ${useKvCache} eos ${eos}`).toEqual(expected);
        });
      }
      // A batch of one stops right after its EOS.
      const one = await run([PROMPTS[0]], { maxNewTokens: max, doSample: false, eosTokenId: eos });
      expect(one.tokens[0]).toEqual(free.tokens[0].slice(0, PROMPTS[0].length + Math.min(max, firstEos[0] + 1)));
    }
  });
});

describe('text input (GPT-2 tokenizer, tiny model with 50257 tokens)', () => {
  const textCfg = gpt2Config({ model_name: 'tiny-text', n_layers: 2, d_model: 16, n_heads: 4, n_ctx: 48 });
  let textModel: HookedTransformer;
  let tok: Gpt2Tokenizer;
  beforeAll(async () => {
    tok = await Gpt2Tokenizer.default();
    textModel = await HookedTransformer.fromWeights(textCfg, randomWeights(textCfg, { seed: 4, randomAffine: true, std: 0.4 }), { tokenizer: tok });
  });
  afterAll(async () => {
    await textModel?.dispose();
  });

  it('a batch of texts is left-padded; each row equals its text alone; str output decodes without <|endoftext|>', async () => {
    const texts = ['The cat sat on the mat because', 'Hello'];
    const greedy: GenerateOptions = { maxNewTokens: 6, doSample: false, stopAtEos: false };
    const batch = (await textModel.generate(texts, { ...greedy, returnType: 'tokens' })) as number[][];
    const lens = texts.map((t) => textModel.toTokens(t)[0].length);
    const pos = Math.max(...lens);
    expect(batch[1].slice(0, pos - lens[1])).toEqual(new Array(pos - lens[1]).fill(tok.padTokenId)); // left padding
    for (let b = 0; b < texts.length; b++) {
      const alone = (await textModel.generate(texts[b], { ...greedy, returnType: 'tokens' })) as number[][];
      expect(batch[b].slice(pos - lens[b])).toEqual(alone[0]);
    }
    const strs = await textModel.generate(texts, greedy); // returnType 'input': text in, text out
    expect(strs).toEqual(batch.map((row) => tok.decode(row.filter((t) => t !== tok.eosTokenId))));
    expect((strs as string[])[0].startsWith(texts[0])).toBe(true);
    const single = await textModel.generate(texts[1], greedy);
    expect(typeof single).toBe('string');
  });
});

describe('errors', () => {
  it('rejects bad options with messages naming what is allowed', async () => {
    const bad = async (opts: GenerateOptions, pattern: RegExp, input: number[][] = PROMPTS) =>
      expect(model.generate(input, opts)).rejects.toThrow(pattern);
    await bad({ maxNewTokens: 0 }, /maxNewTokens must be an integer ≥ 1/);
    await bad({ maxNewTokens: 2.5 }, /maxNewTokens must be an integer ≥ 1/);
    await bad({ maxNewTokens: 28 }, /n_ctx\) is 32, so maxNewTokens can be at most 27/);
    await bad({ temperature: -1 }, /temperature must be a finite number ≥ 0/);
    await bad({ topK: 0 }, /topK must be an integer ≥ 1/);
    await bad({ topP: 0 }, /topP must be in \(0, 1\]/);
    await bad({ topP: 1.5 }, /topP must be in \(0, 1\]/);
    await bad({ freqPenalty: -0.5 }, /freqPenalty must be a finite number ≥ 0/);
    await bad({ seed: 1.5 }, /seed must be an integer/);
    await bad({ eosTokenId: 60 }, /eosTokenId must be a token id/);
    await bad({ returnType: 'embeds' as never }, /returnType must be 'input', 'tokens' or 'str'/);
    await bad({ returnType: 'str' }, /needs a tokenizer/);
    await bad({ attentionMask: [[1, 1, 1, 0, 0, 0], [1, 1, 1, 1, 1, 1]] }, /not left-padded/);
    await expect(model.generate('some text', {})).rejects.toThrow(/needs a tokenizer/);
    // 27 new tokens after 6 fit exactly (the model reads 32).
    const fits = (await model.generate([PROMPTS[0]], { maxNewTokens: 27, doSample: false, stopAtEos: false })) as number[][];
    expect(fits[0]).toHaveLength(33);
  });

  it('hooks registered on the model need useKvCache: false, and then apply at every step', async () => {
    const zeroEmbed = (a: Tensor) => Tensor.zeros(a.shape);
    const ref = await model.runWithHooks(PROMPTS, { fwdHooks: [['hook_embed', zeroEmbed]] }); // [batch, pos, d_vocab]
    await model.withHooks([['hook_embed', zeroEmbed]], async (m) => {
      await expect(m.generate(PROMPTS, { maxNewTokens: 2 })).rejects.toThrow(/useKvCache: false/);
      const steps: Tensor[] = [];
      await m.generate(PROMPTS, { maxNewTokens: 1, doSample: false, useKvCache: false, onStep: (s) => void steps.push(s.logits) });
      const pos = PROMPTS[0].length;
      const lastRef = Tensor.cat(PROMPTS.map((_, b) => ref.slice(0, b, b + 1).slice(1, pos - 1, pos).reshape([1, cfg.d_vocab])), 0);
      expect(maxDiff(steps[0], lastRef)).toBeLessThanOrEqual(ATOL);
    });
  });
});
