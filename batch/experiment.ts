/**
 * Experiment files: the schema (zod; every error names its field), reading one (paths relative to the file), the
 * dataset as items, every item checked against the analysis before anything runs, the shards and the fingerprint.
 */
import { statSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { basename, dirname, extname, isAbsolute, join, resolve } from 'node:path';
import { z } from 'zod';
import { ioiItems, repeatedItems, textWindowItems, type DatasetItem } from '../hooks/experiments/datasets.ts';
import { fingerprint, shardRanges, type ShardRange } from '../hooks/experiments/shards.ts';
import { Gpt2Tokenizer } from '../hooks/tokenizer.ts';
import { UsageError } from '../cli/errors.ts';
import { ANALYSES, analysisOptions, ItemFieldError } from './analyses.ts';

/** Bumped when the shard files' content changes meaning (a different version never resumes from old shards). */
export const FORMAT_VERSION = 1;

const Count = z.number().int().min(1).max(10_000_000);
const Seed = z.number().int().min(0).max(2 ** 32 - 1).default(0);
const TokenSpec = z.union([z.string().min(1), z.number().int().min(0)], {
  error: 'a token is a string that is exactly one token (e.g. " Mary", with its leading space) or a token id (integer ≥ 0)',
});
const PromptSpec = z.union([z.string().min(1), z.array(z.number().int().min(0)).min(1)], {
  error: 'a prompt is a non-empty string or a non-empty array of token ids (integers ≥ 0)',
});

/** One line of a JSONL dataset. */
export const ItemSchema = z.strictObject({
  prompt: PromptSpec.optional().describe('the prompt (the clean prompt of patching); text or token ids (ids get no BOS)'),
  corrupted: PromptSpec.optional().describe("patching's corrupted prompt (the prompt's token length)"),
  correct: TokenSpec.optional().describe("the metric's correct token (logit difference, probability) and a tracked token of the logit lens"),
  incorrect: TokenSpec.optional().describe("the metric's incorrect token"),
  io: z.string().min(1).optional().describe('IOI: the indirect object, without the leading space'),
  s: z.string().min(1).optional().describe('IOI: the subject, without the leading space'),
  repeated: z.strictObject({ seqLen: z.number().int().min(1).max(4096), seed: Seed }).optional()
    .describe('repeated random tokens: BOS + span + span from the model\'s token pool'),
  id: z.union([z.string(), z.number()]).optional().describe('a label of your own, kept in items.jsonl'),
});

export const DatasetSchema = z.discriminatedUnion('kind', [
  z.strictObject({ kind: z.literal('jsonl'), path: z.string().min(1).describe('a JSONL file of items, one JSON object per line (relative to the experiment file)') }),
  z.strictObject({
    kind: z.literal('ioi'), n: Count, seed: Seed,
    order: z.enum(['ABBA', 'BABA', 'both']).default('both'),
    templates: z.array(z.number().int().min(0)).min(1).optional().describe('IOI template indices (default [0]: prompts of one length)'),
    names: z.enum(['train', 'heldout']).default('train'),
  }),
  z.strictObject({ kind: z.literal('repeated'), n: Count, seqLen: z.number().int().min(1).max(4096), seed: Seed }),
  z.strictObject({
    kind: z.literal('text'), path: z.string().min(1).describe('a UTF-8 text file (relative to the experiment file)'),
    length: z.number().int().min(1).max(1_000_000).describe('tokens per window (BOS not counted)'),
    stride: z.number().int().min(1).optional().describe('tokens between window starts (default length)'),
    limit: Count.optional().describe('at most this many windows'),
    prependBos: z.boolean().default(true),
  }),
], { error: "dataset must be {kind: 'jsonl', path}, {kind: 'ioi', n, seed?, order?, templates?, names?}, {kind: 'repeated', n, seqLen, seed?} or {kind: 'text', path, length, stride?, limit?, prependBos?}" });
export type DatasetSpec = z.infer<typeof DatasetSchema>;

const analysisKinds = Object.keys(ANALYSES);
const AnalysisSchema = z.discriminatedUnion(
  'kind',
  analysisKinds.map((k) => ANALYSES[k].options.extend({ kind: z.literal(k) })) as unknown as [z.ZodObject, ...z.ZodObject[]],
  { error: `analysis.kind must be one of ${analysisKinds.join(', ')}` },
);
export type AnalysisSpec = { kind: string } & Record<string, unknown>;

export const ExperimentSchema = z.strictObject({
  name: z.string().regex(/^[\w.-]{1,100}$/, 'a name is 1..100 letters, digits, _ . or -').optional().describe('default: the file name'),
  model: z.string().min(1).optional().describe('a checkpoint directory, a name under models/, or a model name such as gpt2 (default embedded)'),
  dataset: DatasetSchema,
  analysis: AnalysisSchema,
  shardSize: z.number().int().min(1).max(1_000_000).default(50).describe('items per shard'),
  out: z.string().min(1).optional().describe('output directory (relative to the experiment file)'),
});

export interface ExperimentSpec {
  name: string;
  model: string;
  dataset: DatasetSpec;
  analysis: AnalysisSpec;
  shardSize: number;
}

export interface PreparedExperiment {
  spec: ExperimentSpec;
  items: DatasetItem[];
  shards: ShardRange[];
  /** Of the spec (without the name) and every item: a different fingerprint never resumes another's shards. */
  fingerprint: string;
  /** The output directory the file names (resolved), if any. */
  out?: string;
}

export interface ExperimentOverrides {
  model?: string;
  shardSize?: number;
  out?: string;
}

function issues(where: string, error: z.ZodError, prefix = ''): string {
  const lines = error.issues.slice(0, 12).map((i) => `  ${prefix}${i.path.length ? i.path.join('.') : '(top level)'}: ${i.message}`);
  if (error.issues.length > 12) lines.push(`  … and ${error.issues.length - 12} more`);
  return `${where}:\n${lines.join('\n')}`;
}

const isDirectory = (p: string) => statSync(p, { throwIfNoEntry: false })?.isDirectory() ?? false;

async function readText(what: string, path: string): Promise<string> {
  try {
    return await readFile(path, 'utf8');
  } catch (e) {
    throw new UsageError(`${what}: cannot read '${path}': ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
}

/** A JSONL dataset: one item per non-blank line; every line checked, errors name the line and field. */
export function parseJsonlItems(text: string, file: string): { items: DatasetItem[]; lines: number[] } {
  const items: DatasetItem[] = [];
  const lines: number[] = [];
  const errors: string[] = [];
  text.split(/\r?\n/).forEach((raw, i) => {
    if (raw.trim() === '' || errors.length >= 10) return;
    let value: unknown;
    try {
      value = JSON.parse(raw);
    } catch (e) {
      errors.push(`  line ${i + 1}: not valid JSON: ${(e as Error).message}`);
      return;
    }
    const r = ItemSchema.safeParse(value);
    if (!r.success) {
      for (const iss of r.error.issues) errors.push(`  line ${i + 1}: ${iss.path.length ? iss.path.join('.') : '(the item)'}: ${iss.message}`);
      return;
    }
    items.push(r.data);
    lines.push(i + 1);
  });
  if (errors.length) throw new UsageError(`dataset '${file}' has bad items:\n${errors.slice(0, 10).join('\n')}`);
  if (items.length === 0) throw new UsageError(`dataset '${file}' has no items (one JSON object per line)`);
  return { items, lines };
}

/** The dataset's items (generators use GPT-2's tokenizer from models/gpt2-tokenizer, the same on every machine). */
async function datasetItems(d: DatasetSpec): Promise<{ items: DatasetItem[]; label: (i: number) => string }> {
  const itemLabel = (i: number) => `item ${i}`;
  try {
    switch (d.kind) {
      case 'jsonl': {
        const { items, lines } = parseJsonlItems(await readText('dataset.path', d.path), d.path);
        return { items, label: (i) => `item ${i} (line ${lines[i]})` };
      }
      case 'ioi':
        return { items: ioiItems(await Gpt2Tokenizer.default(), d), label: itemLabel };
      case 'repeated':
        return { items: repeatedItems(d), label: itemLabel };
      case 'text': {
        const text = await readText('dataset.path', d.path);
        return { items: textWindowItems(await Gpt2Tokenizer.default(), text, d), label: itemLabel };
      }
    }
  } catch (e) {
    if (e instanceof UsageError) throw e;
    throw new UsageError(`dataset: ${(e as Error).message}`);
  }
}

/**
 * Every item's request for the analysis, checked with the server's schema before anything runs. A repeated-token
 * item stands in for its prompt with one token here (its tokens are drawn where it runs, from the model's pool).
 */
export function checkItems(analysis: AnalysisSpec, items: readonly DatasetItem[], label: (i: number) => string): void {
  const a = ANALYSES[analysis.kind];
  const options = analysisOptions(analysis);
  const byMessage = new Map<string, string[]>(); // the same fault in many items is said once
  for (let i = 0; i < items.length && byMessage.size < 10; i++) {
    const item = items[i].repeated && !a.readsRepeated && items[i].prompt === undefined ? { ...items[i], prompt: [0] } : items[i];
    const faults: string[] = [];
    try {
      const r = a.schema.safeParse(a.request(options, item));
      if (!r.success) for (const iss of r.error.issues) faults.push(`${iss.path.length ? iss.path.join('.') : '(request)'}: ${iss.message}`);
    } catch (e) {
      if (!(e instanceof ItemFieldError)) throw e;
      faults.push(e.message);
    }
    for (const f of faults) byMessage.set(f, [...(byMessage.get(f) ?? []), label(i)]);
  }
  if (byMessage.size === 0) return;
  const lines = [...byMessage].map(([msg, where]) => `  ${where.slice(0, 3).join(', ')}${where.length > 3 ? ` and ${where.length - 3} more` : ''}: ${msg}`);
  throw new UsageError(`the dataset's items do not fit the ${analysis.kind} analysis:\n${lines.join('\n')}`);
}

/** Validates an experiment object (paths already resolved), makes its items and shards. */
export async function prepareExperiment(value: unknown, opts: { name: string; where: string }): Promise<PreparedExperiment> {
  const r = ExperimentSchema.safeParse(value);
  if (!r.success) throw new UsageError(issues(`invalid experiment ${opts.where}`, r.error));
  const e = r.data;
  const spec: ExperimentSpec = {
    name: e.name ?? opts.name, model: e.model ?? 'embedded', dataset: e.dataset, analysis: e.analysis as AnalysisSpec, shardSize: e.shardSize,
  };
  const { items, label } = await datasetItems(spec.dataset);
  checkItems(spec.analysis, items, label);
  const fp = fingerprint({ v: FORMAT_VERSION, model: spec.model, analysis: spec.analysis, shardSize: spec.shardSize, items });
  return { spec, items, shards: shardRanges(items.length, spec.shardSize), fingerprint: fp, out: e.out };
}

/** Reads and prepares an experiment file; `over` (the command's flags) wins over the file. Paths are relative to the file. */
export async function loadExperiment(file: string, over: ExperimentOverrides = {}): Promise<PreparedExperiment> {
  const text = await readText('experiment', file);
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (e) {
    throw new UsageError(`experiment: '${file}' is not valid JSON: ${(e as Error).message}`);
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new UsageError(`experiment: '${file}' must hold a JSON object`);
  const v = value as Record<string, unknown>;
  const base = dirname(resolve(file));
  const rel = (p: unknown) => (typeof p === 'string' && !isAbsolute(p) ? join(base, p) : p);
  if (over.model !== undefined) v.model = over.model;
  else if (typeof v.model === 'string' && !isAbsolute(v.model) && isDirectory(join(base, v.model))) v.model = join(base, v.model);
  if (over.shardSize !== undefined) v.shardSize = over.shardSize;
  if (over.out !== undefined) v.out = resolve(over.out);
  else v.out = rel(v.out);
  const d = v.dataset as Record<string, unknown> | undefined;
  if (d && typeof d === 'object' && typeof d.path === 'string') d.path = rel(d.path);
  return prepareExperiment(v, { name: basename(file, extname(file)).replace(/[^\w.-]/g, '_').slice(0, 100) || 'experiment', where: `'${file}'` });
}
