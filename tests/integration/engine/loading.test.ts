/** HookedTransformer through the real loader: HF checkpoints (shapes, dtypes, prefix, buffers) → every hook point and the logits match referenceForward, processed and not. */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEFAULT_PROCESSING, type HookedTransformerConfig } from '../../../hooks/config.ts';
import { HookedTransformer } from '../../../hooks/HookedTransformer.ts';
import { listHookPoints, type HookName } from '../../../hooks/hookPoints.ts';
import { loadGpt2Checkpoint } from '../../../hooks/loading/index.ts';
import { processWeights } from '../../../hooks/processing.ts';
import { referenceForward } from '../../../hooks/reference.ts';
import type { TransformerWeights } from '../../../hooks/weights.ts';
import { writeHfCheckpoint } from '../../helpers/checkpoints.ts';
import { cacheMismatches, cloneWeights, expectClose, tinyConfig, tinyWeights, tokenBatch } from './helpers.ts';

const ATOL = 1e-4; // engine vs reference, every hook point and the logits

/** Three shapes: different n_heads, d_mlp != 4·d_model, every activation function family. */
const CONFIGS: { label: string; cfg: HookedTransformerConfig }[] = [
  { label: '2L d16 h4 gelu_new', cfg: tinyConfig({ model_name: 'a', n_layers: 2, d_model: 16, n_heads: 4, d_vocab: 50 }) },
  { label: '3L d24 h2 d_mlp40 gelu', cfg: tinyConfig({ model_name: 'b', n_layers: 3, d_model: 24, n_heads: 2, d_mlp: 40, d_vocab: 70, act_fn: 'gelu' }) },
  { label: '2L d32 h8 d_mlp48 relu', cfg: tinyConfig({ model_name: 'c', n_layers: 2, d_model: 32, n_heads: 8, d_mlp: 48, d_vocab: 64, act_fn: 'relu' }) },
];
const DTYPES = ['F32', 'F16', 'BF16'] as const;

interface Case {
  label: string;
  cfg: HookedTransformerConfig;
  original: TransformerWeights;
  dtype: (typeof DTYPES)[number];
  prefix: boolean;
  buffers: boolean;
  lmHead: boolean;
  /** Shard files (1 = a single model.safetensors). */
  shards: number;
  dir: string;
}

let root: string;
const cases: Case[] = [];
CONFIGS.forEach(({ label, cfg }, ci) => {
  DTYPES.forEach((dtype, di) => {
    const combo = (ci * DTYPES.length + di) % 4; // cycles through all four prefix × buffers combinations
    cases.push({
      label: `${label} ${dtype} prefix=${combo & 1 ? 'yes' : 'no'} buffers=${combo & 2 ? 'yes' : 'no'}${di === 2 ? ' 3 shards' : ''}`,
      cfg,
      original: tinyWeights(cfg, 100 + ci),
      dtype,
      prefix: (combo & 1) === 1,
      buffers: (combo & 2) === 2,
      lmHead: di === 1,
      shards: di === 2 ? 3 : 1,
      dir: '',
    });
  });
});

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'lensboard-engine-load-'));
  await Promise.all(
    cases.map(async (c, i) => {
      c.dir = join(root, `ckpt-${i}`);
      await writeHfCheckpoint(c.dir, c.cfg, c.original, {
        dtype: c.dtype,
        prefix: c.prefix,
        buffers: c.buffers,
        lmHead: c.lmHead,
        shards: c.shards,
      });
    }),
  );
});

afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

/** Every standard hook point plus attn.hook_result, in forward order. */
const allNames = (cfg: HookedTransformerConfig): HookName[] => listHookPoints(cfg).map((h) => h.name);

describe('fromPretrained* on HF checkpoints = referenceForward on the same (rounded) weights (1e-4 abs)', () => {
  for (const c of cases) {
    it(c.label, async () => {
      const tokens = tokenBatch(2, 7, c.cfg.d_vocab, 3);
      const names = allNames(c.cfg);
      // The reference sees exactly the weights the loader produces (F16/BF16 rounding included).
      const loaded = await loadGpt2Checkpoint(c.dir);
      expect(loaded.cfg.d_mlp).toBe(c.cfg.d_mlp);
      expect(loaded.cfg.n_heads).toBe(c.cfg.n_heads);
      expect(loaded.cfg.act_fn).toBe(c.cfg.act_fn);
      // For F32 the reference runs on the weights we wrote, independent of the loader.
      const rawRefWeights = c.dtype === 'F32' ? cloneWeights(c.original) : cloneWeights(loaded.weights);
      const refRaw = referenceForward(loaded.cfg, rawRefWeights, tokens);
      const processed = processWeights(loaded.cfg, cloneWeights(loaded.weights), DEFAULT_PROCESSING);
      expect(processed.cfg.normalization_type).toBe('LNPre');
      const refProc = referenceForward(processed.cfg, processed.weights, tokens);

      const raw = await HookedTransformer.fromPretrainedNoProcessing(c.dir, { threads: 1 });
      const proc = await HookedTransformer.fromPretrained(c.dir, { threads: 1 });
      try {
        expect(raw.cfg.normalization_type).toBe('LN');
        expect(proc.cfg.normalization_type).toBe('LNPre');
        expect(proc.processing).toEqual(DEFAULT_PROCESSING);

        const [rawLogits, rawCache] = await raw.runWithCache(tokens, { namesFilter: names });
        expect(rawCache.keys()).toEqual(names);
        expect(cacheMismatches(rawCache, refRaw.cache, names, ATOL)).toEqual([]);
        expectClose(rawLogits, refRaw.logits, ATOL, 'unprocessed logits');

        const [procLogits, procCache] = await proc.runWithCache(tokens, { namesFilter: names });
        expect(procCache.keys()).toEqual(names);
        expect(cacheMismatches(procCache, refProc.cache, names, ATOL)).toEqual([]);
        expectClose(procLogits, refProc.logits, ATOL, 'processed logits');

        // Processing leaves log-probabilities unchanged (1e-4 abs).
        expectClose(procLogits.logSoftmax(-1), rawLogits.logSoftmax(-1), 1e-4, 'log-probs processed vs unprocessed');
        // ... while it does change the logits themselves (centerUnembed), so the check above is not vacuous.
        expect(procLogits.sub(rawLogits).abs().max().item()).toBeGreaterThan(1e-3);
      } finally {
        await raw.dispose();
        await proc.dispose();
      }
    });
  }
});

describe('processing flags one at a time keep log-probs (1e-4 abs)', () => {
  it('each flag alone, and the default set, on config b', async () => {
    const c = cases.find((x) => x.cfg.model_name === 'b' && x.dtype === 'F32')!;
    const tokens = tokenBatch(2, 9, c.cfg.d_vocab, 8);
    const raw = await HookedTransformer.fromPretrainedNoProcessing(c.dir, { threads: 1 });
    const base = (await raw.forward(tokens)).logSoftmax(-1);
    await raw.dispose();
    const flagSets = [
      { foldLn: true, centerWritingWeights: false, centerUnembed: false, foldValueBiases: false },
      { foldLn: false, centerWritingWeights: true, centerUnembed: false, foldValueBiases: false },
      { foldLn: false, centerWritingWeights: false, centerUnembed: true, foldValueBiases: false },
      { foldLn: false, centerWritingWeights: false, centerUnembed: false, foldValueBiases: true },
    ];
    for (const flags of flagSets) {
      const m = await HookedTransformer.fromPretrained(c.dir, { threads: 1, ...flags });
      try {
        expect(m.processing).toEqual(flags);
        expectClose((await m.forward(tokens)).logSoftmax(-1), base, 1e-4, JSON.stringify(flags));
      } finally {
        await m.dispose();
      }
    }
  });
});
