/**
 * The CLI's SAE commands: sae-eval (the evaluation of the SAE endpoints), sae-dashboard (feature dashboards, written
 * beside the SAE), features (a prompt's features) and steer (steered and unsteered continuations). `--sae` is an SAE
 * directory, a directory name under the model's saes/ folder, or org/repo/subfolder of a hub SAE.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { z } from 'zod';
import { featureDensityFigure, promptFeaturesFigure } from '../hooks/figures/sae.ts';
import { corpusContexts, DEFAULT_CORPUS } from '../hooks/sae/corpus.ts';
import { computeFeatureDashboards, saveFeatureDashboards } from '../hooks/sae/dashboard.ts';
import { densityHistogram, evaluateSae } from '../hooks/sae/evaluate.ts';
import { featuresSchema, steerSchema } from '../server/saeSchemas.ts';
import { UserError, type JobContext } from '../services/context.ts';
import { features, steer } from '../server/worker/saes.ts';
import type { SaeStore } from '../services/saes/store.ts';
import { CLI_LIMITS, type Command } from './commands.ts';
import type { FlagDef } from './flags.ts';

const saeFlag: FlagDef = { flag: 'sae', type: 'string', path: 'sae', help: "the SAE: its directory, a name under the model's saes/ folder, or org/repo/subfolder on the hub" };
const SaeArg = z.string({ error: 'an SAE is required: pass --sae DIR_OR_NAME' }).min(1);
const corpusFlags: FlagDef[] = [
  { flag: 'data', type: 'string', path: 'data', help: "a text file (default the repository's Tiny Shakespeare)" },
  { flag: 'split', type: 'string', path: 'split', help: 'heldOut | train | all: the part of the text (its last 10 % is held out)' },
  { flag: 'context-size', type: 'int', path: 'contextSize', help: "tokens per context, BOS included (default the SAE's context_size, at most n_ctx)" },
  { flag: 'tokens', type: 'int', path: 'tokens', help: 'positions to read (BOS left out)' },
];
const corpusFields = (tokens: number, split: 'heldOut' | 'train' | 'all') => ({
  sae: SaeArg,
  data: z.string().min(1).optional(),
  split: z.enum(['heldOut', 'train', 'all']).default(split),
  contextSize: z.number().int().min(2).max(4096).optional(),
  tokens: z.number().int().min(1).default(tokens),
});

function store(ctx: JobContext): SaeStore {
  if (!ctx.saes) throw new Error('internal: the CLI made no SAE store');
  return ctx.saes;
}

/** The corpus contexts of a command (the SAE's context size by default, within the model's context). */
function contextsOf(model: Parameters<Command['run']>[0], req: { data?: string; split: 'heldOut' | 'train' | 'all'; contextSize?: number }, contextSize: number | null) {
  if (!model.tokenizer) throw new UserError('reading a corpus needs the model\'s tokenizer files');
  const size = Math.min(req.contextSize ?? contextSize ?? 128, model.cfg.n_ctx);
  const data = req.data ?? DEFAULT_CORPUS;
  if (!existsSync(data)) throw new UserError(`--data: cannot read '${data}': no such file`);
  return { size, data, contexts: corpusContexts(data, model.tokenizer, { contextSize: size, split: req.split }) };
}

const saeEvalSchema = z.strictObject(corpusFields(16_384, 'heldOut'));
const saeDashboardSchema = z.strictObject({
  ...corpusFields(131_072, 'all'),
  topK: z.number().int().min(1).max(100).default(10).describe('top contexts per feature'),
  logitK: z.number().int().min(1).max(100).default(10),
  windowBefore: z.number().int().min(0).max(64).default(10),
  windowAfter: z.number().int().min(0).max(64).default(4),
});
const cliFeaturesSchema = featuresSchema(CLI_LIMITS).extend({ sae: SaeArg });
const cliSteerSchema = steerSchema().extend({ sae: SaeArg });

export const SAE_COMMANDS: Record<string, Command> = {
  'sae-eval': {
    name: 'sae-eval',
    summary: 'evaluates an SAE: explained variance, L0, dead/dense features, CE loss recovered, feature density histogram',
    flags: [saeFlag, ...corpusFlags],
    schema: saeEvalSchema,
    run: async (model, req: z.infer<typeof saeEvalSchema>, ctx) => {
      const sae = await store(ctx).fitting(req.sae);
      const { size, data, contexts } = contextsOf(model, req, sae.cfg.context_size);
      const r = await evaluateSae(model, sae, contexts, { maxTokens: req.tokens, batchSize: 8, onProgress: (d) => ctx.progress(Math.min(d, req.tokens), req.tokens, 'tokens') });
      const { featureDensity, ...metrics } = r;
      return {
        result: { sae: req.sae, corpus: { data, split: req.split, contextSize: size }, ...metrics, featureDensity: Array.from(featureDensity) },
        figures: [featureDensityFigure(r.densityHistogram, sae.name)],
      };
    },
  },
  'sae-dashboard': {
    name: 'sae-dashboard',
    summary: 'feature dashboards (top contexts, activation histogram, logit weights, density) written beside the SAE as feature_dashboards.json.gz',
    outOptional: true,
    flags: [
      saeFlag, ...corpusFlags,
      { flag: 'top-k', type: 'int', path: 'topK', help: 'top activating contexts per feature (default 10)' },
      { flag: 'logit-k', type: 'int', path: 'logitK', help: 'top and bottom logit-weight tokens (default 10)' },
      { flag: 'window-before', type: 'int', path: 'windowBefore', help: 'tokens kept before the maximum (default 10)' },
      { flag: 'window-after', type: 'int', path: 'windowAfter', help: 'tokens kept after the maximum (default 4)' },
    ],
    schema: saeDashboardSchema,
    run: async (model, req: z.infer<typeof saeDashboardSchema>, ctx) => {
      const sae = await store(ctx).fitting(req.sae);
      if (!sae.dir) throw new UserError(`--sae: ${req.sae} has no directory to write the dashboards beside`);
      const { data, contexts } = contextsOf(model, req, sae.cfg.context_size);
      // A model trained on a small vocabulary (training_vocab.json's seen_tokens) reads logit weights over it.
      const modelDir = store(ctx).modelDir;
      const vocabFile = modelDir ? join(modelDir, 'training_vocab.json') : null;
      const vocab = vocabFile && existsSync(vocabFile) ? (JSON.parse(readFileSync(vocabFile, 'utf8')) as { seen_tokens?: number[] }).seen_tokens : undefined;
      const dash = await computeFeatureDashboards(model, sae, contexts, {
        maxTokens: req.tokens, batchSize: 8, topK: req.topK, logitK: req.logitK, windowBefore: req.windowBefore, windowAfter: req.windowAfter, vocab,
        corpus: { name: data === DEFAULT_CORPUS ? 'tinyshakespeare' : data.split('/').pop()!, split: req.split },
        onProgress: (d) => ctx.progress(Math.min(d, req.tokens), req.tokens, 'tokens'),
      });
      const path = await saveFeatureDashboards(sae.dir, dash);
      const density = dash.features.map((f) => f.density);
      return {
        result: { sae: req.sae, file: path, features: dash.features.length, tokens: dash.corpus.tokens, dead: density.filter((d) => d === 0).length, logitVocab: vocab ? vocab.length : null },
        figures: [featureDensityFigure(densityHistogram(density), sae.name)],
        files: [path],
      };
    },
  },
  features: {
    name: 'features',
    summary: "a prompt's SAE features: the most active features at each token",
    flags: [
      saeFlag,
      { flag: 'prompt', type: 'string', path: 'prompt', help: 'the prompt (text)' },
      { flag: 'top-k', type: 'int', path: 'topK', help: 'features per token (default 8)' },
      { flag: 'no-prepend-bos', type: 'bool', negate: true, path: 'prependBos', help: 'do not prepend <|endoftext|>' },
    ],
    schema: cliFeaturesSchema,
    run: async (model, req: z.infer<typeof cliFeaturesSchema>, ctx) => {
      const r = await features(model, req, ctx);
      return { result: r, figures: [promptFeaturesFigure(r)] };
    },
  },
  steer: {
    name: 'steer',
    summary: "generates with α·W_dec[f] added at the SAE's hook point, and without: --feature F:α (repeatable)",
    flags: [
      saeFlag,
      { flag: 'prompt', type: 'string', path: 'prompt', help: 'text to continue' },
      { flag: 'feature', type: 'string', path: 'features', multiple: true, help: 'FEATURE:STRENGTH, e.g. 12:8 (repeatable)' },
      { flag: 'max-new-tokens', type: 'int', path: 'maxNewTokens', help: 'tokens to generate (default 24)' },
      { flag: 'seed', type: 'int', path: 'seed', help: 'sampling seed (with --temperature > 0)' },
    ],
    schema: cliSteerSchema,
    prepare: (req) => {
      if (Array.isArray(req.features)) {
        req.features = req.features.map((f) => {
          if (typeof f !== 'string') return f;
          const m = /^(\d+):(-?[\d.]+(?:e-?\d+)?)$/.exec(f.trim());
          if (!m) throw new UserError(`--feature: '${f}' is not FEATURE:STRENGTH (e.g. 12:8)`);
          return { feature: Number(m[1]), strength: Number(m[2]) };
        });
      }
    },
    run: async (model, req: z.infer<typeof cliSteerSchema>, ctx) => ({ result: await steer(model, req, ctx), figures: [] }),
  },
};
