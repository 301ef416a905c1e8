/** The CLI's experiments: flags, request schema (the server's, so a config file reads like an API body), and the run → result + figures. */
import { z } from 'zod';
import type { HookedTransformer } from '../hooks/HookedTransformer.ts';
import {
  compositionFigure, copyingFigure, patchComparisonFigure, patchingFigure, positionalFigure, topCopiedFigure, type FigureSpec,
} from '../hooks/figures/index.ts';
import { CLI_LIMITS } from '../services/limits.ts';
import type { JobContext } from '../services/context.ts';
import { CHUNK_FLAG, inferMetric, metricFlags, PREPEND_BOS_FLAG, SEED_FLAG } from '../services/common/cli.ts';
import { patchSchema } from '../services/analysis/patch.ts';
import { UsageError } from './errors.ts';
import type { FlagDef } from './flags.ts';
import type { AnyService } from '../services/service.ts';
import { SERVICE_LIST, SERVICES } from '../services/registry.ts';
import { compositionSchema } from '../services/circuits/composition.ts';
import { positionalSchema } from '../services/circuits/positional.ts';
import { topCopiedSchema } from '../services/circuits/topCopied.ts';

export { CLI_LIMITS };

export interface Experiment {
  /** The analysis result (the server's answer for the same request). */
  result: unknown;
  figures: FigureSpec[];
  /** Files the command wrote itself (besides --out), printed with the others. */
  files?: string[];
}

export interface Command {
  name: string;
  summary: string;
  flags: FlagDef[];
  schema: z.ZodType;
  /** Fills fields the flags imply (e.g. the metric kind from --correct/--incorrect) before validation. */
  prepare?: (req: Record<string, unknown>) => void;
  run: (model: HookedTransformer, req: never, ctx: JobContext) => Promise<Experiment>;
  /** Without --out the command's own files are all it writes (sae-dashboard writes beside the SAE). */
  outOptional?: boolean;
}

const circuitsSchema = z.strictObject({
  modes: z.array(z.enum(['Q', 'K', 'V'])).min(1).max(3).default(['Q', 'K', 'V']).describe('composition scores to compute'),
  baselineSamples: compositionSchema().shape.baselineSamples,
  seed: compositionSchema().shape.seed,
  copying: z.boolean().default(true).describe('copying scores of every head'),
  heads: z.array(z.strictObject({ layer: positionalSchema().shape.layer, head: positionalSchema().shape.head })).max(64).default([])
    .describe('heads whose positional QK pattern (and, with tokens, top copied tokens) to show'),
  tokens: topCopiedSchema(CLI_LIMITS).shape.tokens.optional().describe('source tokens for "what does this head copy"'),
  k: topCopiedSchema(CLI_LIMITS).shape.k,
  nPos: positionalSchema().shape.nPos,
  normalize: positionalSchema().shape.normalize,
  pastMlp0: z.boolean().default(false).describe("read past block 0's MLP: composition through its linearisation, copying through the effective embedding (an extension; see the README)"),
});
type CircuitsRequest = z.infer<typeof circuitsSchema>;

/** The CLI's patch request: /api/patch's body and the method (activation patching, attribution patching, or both side by side). */
const cliPatchSchema = patchSchema().extend({
  method: z.enum(['activation', 'attribution', 'both']).default('activation')
    .describe('activation patching (/api/patch), attribution patching (/api/attribution-patch), or both with a scatter plot of one against the other'),
});

/** "1.2", "1:2" or "L1H2" → {layer, head}. */
function parseHead(s: string): { layer: number; head: number } {
  const m = /^(\d+)[.:H](\d+)$/.exec(s.trim().replace(/^L/, ''));
  if (!m) throw new UsageError(`--head: '${s}' is not a head; write it as LAYER.HEAD (e.g. 1.2) or L1H2`);
  return { layer: Number(m[1]), head: Number(m[2]) };
}

/** A feature's own CLI command: its flags → its request (the CLI's limits) → its handler → its figures. */
function serviceCommand(f: AnyService & { cli: NonNullable<AnyService['cli']> }): Command {
  return {
    name: f.cli.command, summary: f.cli.summary, flags: f.cli.flags, schema: (f.cli.request ?? f.request)(CLI_LIMITS), prepare: f.cli.prepare,
    run: async (model, req, ctx) => {
      const result = await f.handler(model, req, ctx);
      return { result, figures: f.figures?.(result, req) ?? [] };
    },
  };
}

/** Commands that combine features (patch's --method both, circuits). */
const COMBINED: Record<string, Command> = {
  patch: {
    name: 'patch',
    summary: 'activation patching (or attribution patching, its first-order estimate): the normalised logit difference with each slice of the clean run patched into the corrupted run',
    flags: [
      { flag: 'clean', type: 'string', path: 'clean', help: 'the clean prompt' },
      { flag: 'corrupted', type: 'string', path: 'corrupted', help: "the corrupted prompt (the clean prompt's token length)" },
      ...metricFlags('logit_diff'),
      { flag: 'kinds', type: 'list', path: 'kinds', help: 'resid_pre,attn_out,mlp_out,head_out_all_pos,head_out_by_pos (default all)' },
      { flag: 'method', type: 'string', path: 'method', help: 'activation | attribution | both (default activation; both adds a scatter plot per kind)' },
      CHUNK_FLAG, PREPEND_BOS_FLAG,
    ],
    schema: cliPatchSchema,
    prepare: (req) => inferMetric(req, null),
    run: async (model, { method, ...req }: z.infer<typeof cliPatchSchema>, ctx) => {
      const act = method === 'attribution' ? null : await SERVICES.patch.handler(model, req, ctx);
      const attr = method === 'activation' ? null : await SERVICES.attributionPatch.handler(model, req, ctx);
      const figures = [act, attr].flatMap((r) => (r ? r.results.map((_x, i) => patchingFigure(r, i)) : []));
      if (act && attr) figures.push(...act.results.map((_x, i) => patchComparisonFigure(act, attr, i)));
      return { result: act && attr ? { activation: act, attribution: attr } : (act ?? attr), figures };
    },
  },
  circuits: {
    name: 'circuits',
    summary: 'circuits from the weights: Q/K/V composition scores, copying scores, positional QK and top copied tokens of chosen heads',
    flags: [
      { flag: 'modes', type: 'list', path: 'modes', help: 'composition modes Q,K,V (default all three)' },
      { flag: 'baseline-samples', type: 'int', path: 'baselineSamples', help: 'random matrix pairs for the baseline (default 100)' },
      SEED_FLAG,
      { flag: 'no-copying', type: 'bool', negate: true, path: 'copying', help: 'skip the copying scores' },
      { flag: 'head', type: 'string', path: 'heads', multiple: true, help: 'a head L.H for the positional pattern and top copied tokens' },
      { flag: 'copy-token', type: 'token', path: 'tokens', multiple: true, help: 'a source token for "what does this head copy"' },
      { flag: 'k', type: 'int', path: 'k', help: 'top copied tokens per source token (default 10)' },
      { flag: 'n-pos', type: 'int', path: 'nPos', help: 'positions of the positional pattern (default min(n_ctx, 64))' },
      { flag: 'past-mlp0', type: 'bool', path: 'pastMlp0', help: "read composition, copying and top copied tokens past block 0's MLP" },
    ],
    schema: circuitsSchema,
    prepare: (req) => {
      if (Array.isArray(req.heads)) req.heads = req.heads.map((h) => (typeof h === 'string' ? parseHead(h) : h));
    },
    run: async (model, req: CircuitsRequest, ctx) => {
      const steps = req.modes.length + (req.copying ? 1 : 0) + req.heads.length;
      let done = 0;
      const step = (message: string) => ctx.progress(++done, steps, message);
      const silent: JobContext = { ...ctx, progress: () => {} };
      const figures: FigureSpec[] = [];
      const result: Record<string, unknown> = { composition: [], copying: null, positional: [], topCopied: [] };
      for (const mode of req.modes) {
        const r = await SERVICES.composition.handler(model, { mode, baselineSamples: req.baselineSamples, seed: req.seed, pastMlp0: req.pastMlp0 }, silent);
        (result.composition as unknown[]).push(r);
        figures.push(compositionFigure(r));
        step(`${mode}-composition`);
      }
      if (req.copying) {
        const r = await SERVICES.copying.handler(model, { pastMlp0: req.pastMlp0 }, silent);
        result.copying = r;
        figures.push(copyingFigure(r));
        step('copying');
      }
      for (const { layer, head } of req.heads) {
        const p = await SERVICES.positional.handler(model, { layer, head, normalize: req.normalize, ...(req.nPos ? { nPos: req.nPos } : {}) }, silent);
        (result.positional as unknown[]).push(p);
        figures.push(positionalFigure(p));
        if (req.tokens) {
          const t = await SERVICES.topCopied.handler(model, { layer, head, tokens: req.tokens, k: req.k, pastMlp0: req.pastMlp0 }, silent);
          (result.topCopied as unknown[]).push(t);
          figures.push(topCopiedFigure(t));
        }
        step(`L${layer}H${head}`);
      }
      return { result, figures };
    },
  },
};

/** The order `lensboard --help` lists the commands in (as before they moved into the services); any other comes after them. */
const HELP_ORDER = ['logit-lens', 'heads', 'sweep', 'patch', 'saliency', 'ioi', 'circuits'];
const helpRank = (name: string) => (HELP_ORDER.includes(name) ? HELP_ORDER.indexOf(name) : HELP_ORDER.length);

/** Every command: each feature that declares one (services/registry.ts) and the combined ones, in help order. */
export const COMMANDS: Record<string, Command> = Object.fromEntries(
  Object.entries({
    ...Object.fromEntries(SERVICE_LIST.flatMap((f) => ('cli' in f && f.cli ? [[f.cli.command, serviceCommand(f as AnyService & { cli: NonNullable<AnyService['cli']> })]] : []))),
    ...COMBINED,
  }).sort(([a], [b]) => helpRank(a) - helpRank(b)),
);
