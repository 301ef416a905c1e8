/**
 * The CLI's SAE commands that read a corpus: sae-eval (the evaluation of the SAE endpoints, on any text file) and
 * sae-dashboard (feature dashboards, written beside the SAE). `features` and `steer` are their services' commands
 * (services/saes/). `--sae` is an SAE directory, a directory name under the model's saes/ folder, or
 * org/repo/subfolder of a hub SAE.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { z } from 'zod';
import { featureDensityFigure } from '../hooks/figures/sae.ts';
import { corpusContexts, DEFAULT_CORPUS } from '../hooks/sae/corpus.ts';
import { computeFeatureDashboards, saveFeatureDashboards } from '../hooks/sae/dashboard.ts';
import { densityHistogram, evaluateSae } from '../hooks/sae/evaluate.ts';
import { UserError, type JobContext } from '../services/context.ts';
import { SaeArg, saeFlag } from '../services/saes/common.ts';
import type { SaeStore } from '../services/saes/store.ts';
import type { Command } from './commands.ts';
import type { FlagDef } from './flags.ts';

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
};
