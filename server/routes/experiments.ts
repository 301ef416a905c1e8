/**
 * GET /api/experiments, GET /api/experiments/:id: the dataset experiments (`lensboard batch`) whose output folders are
 * in --experiments-dir — their progress while they run (status.json), their figures once done (figures.json). Read
 * only, from files; no model work.
 */
import { readdir, readFile, realpath } from 'node:fs/promises';
import { join, sep } from 'node:path';
import { z } from 'zod';
import type { Table } from '../csv.ts';
import { notFound } from '../errors.ts';
import { defineRoute, type RouteDef } from '../routeTable.ts';

/** A running run rewrites status.json at least every 5 s; silent for this long, it stopped without saying so. */
export const STALE_AFTER_MS = 30_000;

const STATES = ['running', 'waiting', 'done', 'failed', 'unknown'] as const;

export const ExperimentSummary = z.object({
  id: z.string().describe('the output folder, a direct sub-folder of --experiments-dir'),
  name: z.string(),
  analysis: z.string(),
  dataset: z.string(),
  model: z.string(),
  state: z.enum(STATES).describe('running; waiting (for Redis); done; failed; unknown (no status.json)'),
  stale: z.boolean().describe('running or waiting, but its status not updated for 30 s: the run stopped without saying so'),
  mode: z.enum(['local', 'distributed']).nullable(),
  items: z.number().int(),
  itemsDone: z.number().int(),
  shards: z.number().int(),
  shardsDone: z.number().int(),
  ratePerS: z.number().nullable().describe('items per second in the current (or last) run'),
  etaS: z.number().nullable(),
  updatedAt: z.string().nullable(),
  message: z.string().nullable().describe('why it failed or waits'),
});
export type ExperimentSummaryData = z.infer<typeof ExperimentSummary>;

export const ExperimentsResponse = z.object({
  configured: z.boolean().describe('whether the server was started with --experiments-dir'),
  experiments: z.array(ExperimentSummary).describe('most recently updated first'),
});

export const ExperimentResponse = ExperimentSummary.extend({
  experiment: z.object({ dataset: z.unknown(), analysis: z.unknown(), shardSize: z.number().int() }).describe("the experiment's dataset, analysis and shard size"),
  workers: z.record(z.string(), z.number().int()).nullable().describe('distributed runs: shards accepted per worker'),
  figures: z.array(z.unknown()).nullable().describe('the figure specs ({name, data, layout, table}) of the aggregate; null until the run is done'),
});
export type ExperimentDetail = z.infer<typeof ExperimentResponse>;

const ID = /^[\w][\w.-]{0,199}$/;

async function readJson(path: string): Promise<Record<string, unknown> | null> {
  try {
    return JSON.parse(await readFile(path, 'utf8'));
  } catch {
    return null;
  }
}

/** The folder of experiment `id`, if it is a direct sub-folder of `root` (links leading outside are refused) holding experiment.json. */
async function experimentDir(root: string, id: string): Promise<string | null> {
  if (!ID.test(id) || id.includes('..')) return null;
  try {
    const [base, dir] = await Promise.all([realpath(root), realpath(join(root, id))]);
    if (!dir.startsWith(base + sep)) return null;
    return (await readJson(join(dir, 'experiment.json'))) ? dir : null;
  } catch {
    return null;
  }
}

async function summary(id: string, dir: string): Promise<{ summary: ExperimentSummaryData; manifest: Record<string, unknown>; status: Record<string, unknown> | null } | null> {
  const manifest = await readJson(join(dir, 'experiment.json'));
  if (!manifest) return null;
  const status = await readJson(join(dir, 'status.json'));
  const shardsDone = typeof status?.shardsDone === 'number'
    ? status.shardsDone
    : (await readdir(join(dir, 'shards')).catch(() => [])).filter((f) => /^\d{6}\.json$/.test(f)).length;
  const state = STATES.includes(status?.state as never) ? (status!.state as ExperimentSummaryData['state']) : 'unknown';
  const updatedAt = typeof status?.updatedAt === 'string' ? status.updatedAt : null;
  const num = (v: unknown) => (typeof v === 'number' && Number.isFinite(v) ? v : null);
  return {
    manifest,
    status,
    summary: {
      id,
      name: String(manifest.name ?? id),
      analysis: String((manifest.analysis as { kind?: string } | undefined)?.kind ?? ''),
      dataset: String((manifest.dataset as { kind?: string } | undefined)?.kind ?? ''),
      model: String(manifest.model ?? ''),
      state,
      stale: (state === 'running' || state === 'waiting') && (updatedAt === null || Date.now() - Date.parse(updatedAt) > STALE_AFTER_MS),
      mode: status?.mode === 'local' || status?.mode === 'distributed' ? status.mode : null,
      items: Number(manifest.items ?? 0),
      itemsDone: num(status?.itemsDone) ?? 0,
      shards: Number(manifest.shards ?? 0),
      shardsDone,
      ratePerS: num(status?.ratePerS),
      etaS: num(status?.etaS),
      updatedAt,
      message: typeof status?.message === 'string' ? status.message : null,
    },
  };
}

const listTable = (r: z.infer<typeof ExperimentsResponse>): Table => ({
  columns: ['id', 'name', 'analysis', 'dataset', 'model', 'state', 'items_done', 'items', 'shards_done', 'shards', 'updated_at'],
  rows: r.experiments.map((e) => [e.id, e.name, e.analysis, e.dataset, e.model, e.state, e.itemsDone, e.items, e.shardsDone, e.shards, e.updatedAt]),
});

export function experimentRoutes(): RouteDef[] {
  return [
    defineRoute({
      method: 'get', path: '/api/experiments', formats: ['json', 'csv'], response: ExperimentsResponse,
      summary: 'Dataset experiments (lensboard batch) in --experiments-dir, with their progress',
      handler: async (ctx) => {
        const root = ctx.config.experimentsDir;
        const experiments: ExperimentSummaryData[] = [];
        if (root) {
          const entries = await readdir(root, { withFileTypes: true }).catch(() => []);
          for (const e of entries) {
            if (!e.isDirectory() && !e.isSymbolicLink()) continue;
            const dir = await experimentDir(root, e.name);
            const s = dir ? await summary(e.name, dir) : null;
            if (s) experiments.push(s.summary);
          }
          experiments.sort((a, b) => (b.updatedAt ?? '').localeCompare(a.updatedAt ?? '') || a.id.localeCompare(b.id));
        }
        ctx.send({ configured: Boolean(root), experiments }, listTable);
      },
    }),
    defineRoute({
      method: 'get', path: '/api/experiments/:id', formats: ['json'], response: ExperimentResponse,
      summary: "One dataset experiment: its progress, and its aggregate's figures once done",
      handler: async (ctx) => {
        const root = ctx.config.experimentsDir;
        if (!root) throw notFound('no experiments folder: start the server with --experiments-dir DIR (the folder holding the --out folders of lensboard batch)');
        const id = String(ctx.req.params.id);
        const dir = await experimentDir(root, id);
        const s = dir ? await summary(id, dir) : null;
        if (!dir || !s) throw notFound(`no experiment ${JSON.stringify(id)} in the experiments folder; see GET /api/experiments`);
        const figures = s.summary.state === 'done' ? await readJson(join(dir, 'figures.json')) as unknown[] | null : null;
        const detail: ExperimentDetail = {
          ...s.summary,
          experiment: { dataset: s.manifest.dataset, analysis: s.manifest.analysis, shardSize: Number(s.manifest.shardSize ?? 0) },
          workers: (s.status?.workers as Record<string, number> | undefined) ?? null,
          figures: Array.isArray(figures) ? figures : null,
        };
        ctx.send(detail, () => ({ columns: [], rows: [] }));
      },
    }),
  ];
}
