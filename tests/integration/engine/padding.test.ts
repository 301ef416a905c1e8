/** Padded batches (left and right, token ids with attentionMask, and text through the tokenizer): each row = the prompt alone, engine = reference with the mask. */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ActivationCache } from '../../../hooks/ActivationCache.ts';
import { DEFAULT_PROCESSING, type HookedTransformerConfig } from '../../../hooks/config.ts';
import { HookedTransformer } from '../../../hooks/HookedTransformer.ts';
import type { HookName, HookPointInfo } from '../../../hooks/hookPoints.ts';
import { processWeights } from '../../../hooks/processing.ts';
import { referenceForward } from '../../../hooks/reference.ts';
import { Tensor } from '../../../hooks/tensor.ts';
import { Gpt2Tokenizer } from '../../../hooks/tokenizer.ts';
import type { TransformerWeights } from '../../../hooks/weights.ts';
import { cacheMismatches, cloneWeights, expectClose, maxDiff, tinyConfig, tinyWeights } from './helpers.ts';

const ATOL = 1e-4;
const cfg = tinyConfig({ n_layers: 2, d_model: 16, n_heads: 4, d_vocab: 60 });
const original = tinyWeights(cfg, 31);
const PAD = 59;
const PROMPTS = [
  [5, 17, 3, 44, 8, 21],
  [9, 30, 2],
  [51, 4, 13, 27, 1],
];
const POS = 6;

function padBatch(prompts: number[][], side: 'left' | 'right'): { tokens: number[][]; mask: number[][]; offsets: number[] } {
  const tokens: number[][] = [];
  const mask: number[][] = [];
  const offsets: number[] = [];
  for (const p of prompts) {
    const n = POS - p.length;
    const pads = new Array<number>(n).fill(PAD);
    tokens.push(side === 'left' ? [...pads, ...p] : [...p, ...pads]);
    mask.push(side === 'left' ? [...new Array<number>(n).fill(0), ...p.map(() => 1)] : [...p.map(() => 1), ...new Array<number>(n).fill(0)]);
    offsets.push(side === 'left' ? n : 0);
  }
  return { tokens, mask, offsets };
}

/** Row `b` of `t`, restricted along every position dim to `positions`; the batch dim is kept (size 1). */
function realSlice(t: Tensor, info: HookPointInfo, b: number, positions: number[]): Tensor {
  let out = t.select(0, [b]);
  info.dims.forEach((d, axis) => {
    if (d === 'pos' || d === 'query_pos' || d === 'key_pos') out = out.select(axis, positions);
  });
  return out;
}

/** Each row's logits and every cached value at its real positions equal the prompt run alone (ATOL). */
async function expectRowsMatchAlone(
  model: HookedTransformer,
  batchLogits: Tensor,
  batchCache: ActivationCache,
  prompts: number[][],
  offsets: number[],
): Promise<void> {
  const infos = model.hookPoints().filter((h) => batchCache.has(h.name));
  expect(infos.length).toBeGreaterThan(30);
  for (let b = 0; b < prompts.length; b++) {
    const positions = prompts[b].map((_, i) => offsets[b] + i);
    const [aloneLogits, aloneCache] = await model.runWithCache([prompts[b]], { namesFilter: infos.map((h) => h.name) });
    const rowLogits = batchLogits.select(0, [b]).select(1, positions);
    expectClose(rowLogits, aloneLogits, ATOL, `row ${b} logits`);
    const bad: string[] = [];
    for (const info of infos) {
      const got = realSlice(batchCache.get(info.name), info, b, positions);
      const want = aloneCache.get(info.name);
      const d = maxDiff(got, want); // equal infinities count 0, NaN never passes
      if (d > ATOL) bad.push(`${info.name} (${d})`);
    }
    expect(bad, `row ${b}`).toEqual([]);
  }
}

interface Variant {
  label: string;
  model: HookedTransformer;
  refCfg: HookedTransformerConfig;
  refWeights: TransformerWeights;
}
const variants: Variant[] = [];

beforeAll(async () => {
  const processed = processWeights(cfg, cloneWeights(original), DEFAULT_PROCESSING);
  variants.push(
    { label: 'unprocessed', model: await HookedTransformer.fromWeights(cfg, cloneWeights(original), { threads: 1 }), refCfg: cfg, refWeights: original },
    {
      label: 'processed',
      model: await HookedTransformer.fromWeights(cfg, cloneWeights(original), { threads: 1, ...DEFAULT_PROCESSING }),
      refCfg: processed.cfg,
      refWeights: processed.weights,
    },
  );
});

afterAll(async () => {
  for (const v of variants) await v.model.dispose();
});

describe('padded token-id batches with attentionMask', () => {
  for (const side of ['left', 'right'] as const) {
    for (const which of ['unprocessed', 'processed']) {
      it(`${side}-padded, ${which}: each row at its real positions = the prompt alone (logits and every cache value, ${ATOL})`, async () => {
        const v = variants.find((x) => x.label === which)!;
        const { tokens, mask, offsets } = padBatch(PROMPTS, side);
        const [logits, cache] = await v.model.runWithCache(tokens, { attentionMask: mask });
        await expectRowsMatchAlone(v.model, logits, cache, PROMPTS, offsets);
      });

      it(`${side}-padded, ${which}: engine = referenceForward with the same mask, every hook point incl. hook_result (${ATOL})`, async () => {
        const v = variants.find((x) => x.label === which)!;
        const { tokens, mask } = padBatch(PROMPTS, side);
        const names = v.model.hookPoints().map((h) => h.name);
        const [logits, cache] = await v.model.runWithCache(tokens, { attentionMask: mask, namesFilter: names });
        const ref = referenceForward(v.refCfg, cloneWeights(v.refWeights), tokens, { attentionMask: mask });
        expect(cacheMismatches(cache, ref.cache, names, ATOL)).toEqual([]);
        expectClose(logits, ref.logits, ATOL, 'logits');
      });
    }
  }

  it('hook_pos_embed is exactly 0 at pads; real tokens get W_pos rows counted from their first real token', async () => {
    const v = variants[0];
    for (const side of ['left', 'right'] as const) {
      const { tokens, mask, offsets } = padBatch(PROMPTS, side);
      const [, cache] = await v.model.runWithCache(tokens, { attentionMask: mask, namesFilter: 'hook_pos_embed' });
      const pe = cache.get('hook_pos_embed');
      for (let b = 0; b < tokens.length; b++) {
        for (let p = 0; p < POS; p++) {
          for (let d = 0; d < cfg.d_model; d++) {
            const want = mask[b][p] === 0 ? 0 : original.W_pos[(p - offsets[b]) * cfg.d_model + d];
            // exact (0 and -0 both count as zero: W_pos · 0 may give -0)
            expect(Math.abs(pe.get(b, p, d) - want), `${side} [${b}, ${p}, ${d}]`).toBe(0);
          }
        }
      }
    }
  });

  it('masked keys get -Infinity scores and 0 attention; real query rows sum to 1 and fully masked (left-pad) query rows are all 0 (1e-5)', async () => {
    const v = variants[0];
    const { tokens, mask } = padBatch(PROMPTS, 'left');
    const [, cache] = await v.model.runWithCache(tokens, { attentionMask: mask, namesFilter: (n) => n.includes('attn.hook_') });
    for (let l = 0; l < cfg.n_layers; l++) {
      const pat = cache.get('pattern', l);
      const sc = cache.get('attn_scores', l);
      for (let b = 0; b < tokens.length; b++) {
        for (let h = 0; h < cfg.n_heads; h++) {
          for (let q = 0; q < POS; q++) {
            let sum = 0;
            for (let k = 0; k < POS; k++) {
              if (mask[b][k] === 0 || k > q) {
                expect(sc.get(b, h, q, k)).toBe(-Infinity);
                expect(pat.get(b, h, q, k)).toBe(0);
              }
              sum += pat.get(b, h, q, k);
            }
            expect(Math.abs(sum - mask[b][q])).toBeLessThanOrEqual(1e-5);
          }
        }
      }
    }
  });

  it('an all-ones attentionMask gives the unmasked result (1e-5)', async () => {
    const v = variants[0];
    const tokens = [PROMPTS[0], PROMPTS[0].map((t) => (t * 7) % cfg.d_vocab)];
    const plain = await v.model.forward(tokens);
    const masked = await v.model.forward(tokens, { attentionMask: tokens.map((r) => r.map(() => 1)) });
    expectClose(masked, plain, 1e-5, 'logits');
  });
});

describe('a padded batch of strings (real GPT-2 tokenizer, d_vocab 50257, d_model 8)', () => {
  const textCfg = tinyConfig({ n_layers: 2, d_model: 8, n_heads: 2, d_vocab: 50257, n_ctx: 32 });
  const textWeights = tinyWeights(textCfg, 41);
  const TEXTS = ['The quick brown fox jumps over', 'Hello', 'Lensboard is a workbench'];
  let model: HookedTransformer;
  let tokenizer: Gpt2Tokenizer;

  beforeAll(async () => {
    tokenizer = await Gpt2Tokenizer.default();
    model = await HookedTransformer.fromWeights(textCfg, cloneWeights(textWeights), { threads: 1, tokenizer });
  });
  afterAll(async () => {
    await model?.dispose();
  });

  for (const side of ['left', 'right'] as const) {
    it(`paddingSide '${side}': each row = the text alone at its real positions, and = reference with the tokenizer's mask (${ATOL})`, async () => {
      const batch = tokenizer.toTokens(TEXTS, { prependBos: true, paddingSide: side });
      expect(batch.attentionMask.some((r) => r.includes(0))).toBe(true);
      const names = ['hook_pos_embed', 'blocks.1.attn.hook_pattern', 'blocks.1.hook_resid_post', 'ln_final.hook_normalized'] as HookName[];
      const [logits, cache] = await model.runWithCache(TEXTS, { paddingSide: side, namesFilter: names });
      const ref = referenceForward(textCfg, textWeights, batch.tokens, { attentionMask: batch.attentionMask });
      expectClose(logits, ref.logits, ATOL, 'logits vs reference');
      expect(cacheMismatches(cache, ref.cache, names, ATOL)).toEqual([]);
      const pe = cache.get('hook_pos_embed');
      batch.attentionMask.forEach((row, b) => row.forEach((m, p) => {
        if (m === 0) expect(pe.select(0, [b]).select(1, [p]).abs().max().item()).toBe(0);
      }));

      for (let b = 0; b < TEXTS.length; b++) {
        const alone = await model.forward(TEXTS[b]);
        const n = alone.shape[1];
        const first = side === 'left' ? batch.tokens[0].length - n : 0;
        const positions = Array.from({ length: n }, (_, i) => first + i);
        expect(batch.attentionMask[b].filter((m) => m === 1).length).toBe(n);
        expectClose(logits.select(0, [b]).select(1, positions), alone, ATOL, `row ${b} (${JSON.stringify(TEXTS[b])})`);
      }
    });
  }

  it('a single string = its token ids (exactly the same run), and text longer than n_ctx is a clear error', async () => {
    const ids = model.toTokens(TEXTS[0]);
    expect(ids[0][0]).toBe(50256); // BOS prepended by default
    expectClose(await model.forward(TEXTS[0]), await model.forward(ids), 0, 'string vs ids');
    const long = Array.from({ length: 40 }, (_, i) => `word${i}`).join(' ');
    await expect(model.forward(long)).rejects.toThrow(/input has \d+ tokens; this model's context \(n_ctx\) is 32/);
  });
});
