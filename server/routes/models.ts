/** GET /api/models (what can be loaded), POST /api/models/load (SSE progress), GET /api/model (the active model). */
import { z } from 'zod';
import { DEFAULT_PROCESSING, NO_PROCESSING, type ProcessingFlags } from '../../hooks/config.ts';
import { DEVICES } from '../../hooks/devices.ts';
import type { Cell, Table } from '../csv.ts';
import { conflict, HttpError } from '../errors.ts';
import { listCachedModels, listHubModels, listLocalModels } from '../host/catalog.ts';
import type { ModelInfo, ModelSource } from '../host/protocol.ts';
import { defineRoute, type RouteDef } from '../routeTable.ts';
import { SseStream } from '../sse.ts';

const Flags = z.strictObject({
  foldLn: z.boolean().optional(),
  centerWritingWeights: z.boolean().optional(),
  centerUnembed: z.boolean().optional(),
  foldValueBiases: z.boolean().optional(),
});

export const LoadBody = z.strictObject({
  name: z.string().min(1).max(200).describe('a directory name under a model root (e.g. "embedded"), an official name (gpt2, …) or a hub repo id "org/name"'),
  processing: z
    .union([z.enum(['default', 'none']), Flags], { error: "processing must be 'default', 'none' or an object of flags {foldLn, centerWritingWeights, centerUnembed, foldValueBiases}" })
    .default('default')
    .describe("TransformerLens weight processing: 'default' (all on), 'none' (raw weights) or single flags (unset ones default to on)"),
  device: z.enum(DEVICES).optional().describe('device for this model (default: the server --device)'),
});

function processingFlags(p: z.infer<typeof LoadBody>['processing']): ProcessingFlags {
  if (p === 'default') return { ...DEFAULT_PROCESSING };
  if (p === 'none') return { ...NO_PROCESSING };
  return { ...DEFAULT_PROCESSING, ...p };
}

/** A source as shown to clients (no filesystem paths). */
function publicSource(s: ModelSource): { kind: string; name: string; repo?: string } {
  return s.kind === 'hub' ? { kind: 'hub', name: s.name, repo: s.repo } : { kind: 'dir', name: s.name };
}

export function modelSummary(info: ModelInfo) {
  return {
    name: info.name,
    source: publicSource(info.source),
    config: info.config,
    device: info.device,
    processing: info.processing,
    hasTokenizer: info.hasTokenizer,
    defaults: info.defaults,
    loadedAt: info.loadedAt,
    hookPoints: info.hookPoints,
  };
}
export type ModelSummary = ReturnType<typeof modelSummary>;

const HookPointSchema = z.object({
  name: z.string(), layer: z.number().int().nullable(), dims: z.array(z.string()),
  sizes: z.array(z.number().int().nullable()).describe('size of each dim; null for batch and positions'),
});
export const ModelResponse = z.object({
  name: z.string(),
  source: z.object({ kind: z.enum(['dir', 'hub']), name: z.string(), repo: z.string().optional() }),
  config: z.record(z.string(), z.unknown()).describe("HookedTransformerConfig (TransformerLens's field names)"),
  device: z.string(),
  processing: z.object({ foldLn: z.boolean(), centerWritingWeights: z.boolean(), centerUnembed: z.boolean(), foldValueBiases: z.boolean() }),
  hasTokenizer: z.boolean(),
  defaults: z.object({
    prompt: z.string().nullable(), target: z.string().nullable(), contrast: z.string().nullable(), tokens: z.array(z.string()),
    leadingSpace: z.boolean().describe('whether a space is in the vocabulary (GPT-2: yes; the addition model: no)'),
  }).describe("the dashboard's example inputs for this model: GPT-2's IOI sentence and names where the vocabulary has them, else the model card's example (README.md front matter `widget`) with the model's top two next tokens as target and contrast"),
  loadedAt: z.string(),
  hookPoints: z.array(HookPointSchema),
});

export function modelTable(m: ModelSummary): Table {
  const rows: Cell[][] = [];
  for (const [k, v] of Object.entries(m.config)) rows.push(['config', k, v as Cell]);
  for (const [k, v] of Object.entries(m.processing)) rows.push(['processing', k, v]);
  rows.push(['model', 'name', m.name], ['model', 'device', m.device], ['model', 'hasTokenizer', m.hasTokenizer]);
  for (const h of m.hookPoints) rows.push(['hook', h.name, h.dims.map((d, i) => `${d}=${h.sizes[i] ?? '*'}`).join(' ')]);
  return { columns: ['section', 'name', 'value'], rows };
}

export const ModelsResponse = z.object({
  active: z.string().nullable(),
  loading: z.object({ name: z.string(), startedAt: z.string() }).nullable(),
  embedded: z.object({ name: z.literal('embedded'), available: z.boolean() }),
  local: z.array(z.object({ name: z.string(), root: z.number().int().describe('index into roots'), bytes: z.number().int() })),
  roots: z.array(z.string()),
  cached: z.array(z.object({ repo: z.string(), bytes: z.number().int() })),
  hub: z.array(z.object({
    name: z.string(), repo: z.string(), aliases: z.array(z.string()), n_layers: z.number().int(), d_model: z.number().int(),
    params: z.number().int(), float32Bytes: z.number().int(), cached: z.boolean(),
  })),
});
type Models = z.infer<typeof ModelsResponse>;

function modelsTable(m: Models): Table {
  const rows: Cell[][] = [
    ...m.local.map((l): Cell[] => ['local', l.name, null, l.bytes, null, true]),
    ...m.cached.map((c): Cell[] => ['cached', c.repo, c.repo, c.bytes, null, true]),
    ...m.hub.map((h): Cell[] => ['hub', h.name, h.repo, h.float32Bytes, h.params, h.cached]),
  ];
  return { columns: ['kind', 'name', 'repo', 'bytes', 'params', 'available_offline'], rows };
}

export function modelRoutes(): RouteDef[] {
  return [
    defineRoute({
      method: 'get', path: '/api/models', formats: ['json', 'csv'], response: ModelsResponse,
      summary: 'Loadable models: the embedded model, directories under the model roots, HF-cached hub models, official GPT-2 models with sizes',
      handler: async (ctx) => {
        const { host } = ctx;
        const local = await listLocalModels(host.roots);
        const cached = await listCachedModels(ctx.config.hfCacheDir);
        const result: Models = {
          active: host.active?.name ?? null,
          loading: host.loading,
          embedded: { name: 'embedded', available: local.some((l) => l.name === 'embedded' && l.root === host.roots[0]) },
          local: local.map((l) => ({ name: l.name, root: host.roots.indexOf(l.root), bytes: l.bytes })),
          roots: host.roots,
          cached,
          hub: listHubModels(cached),
        };
        ctx.send(result, modelsTable);
      },
    }),
    defineRoute({
      method: 'post', path: '/api/models/load', formats: ['json', 'sse'], body: LoadBody, response: ModelResponse,
      summary: 'Load a model (download with progress as Server-Sent Events) and make it the active model',
      description:
        'Answers SSE by default: `resolved` {name, source}, `progress` (hub download events: initiate, download, progress, done, ready), ' +
        'then `loaded` (the GET /api/model answer) or `error` {status, error}. With ?stream=0 it answers the model as JSON when loaded. ' +
        'A name that is a directory under a model root loads from there; else an official name or hub repo id loads through the HF cache. ' +
        'Absolute paths, `..` and links escaping the roots are refused (400). Closing the stream aborts the load.',
      handler: async (ctx) => {
        const { host, req, res, body } = ctx;
        const source = await host.resolve(body.name);
        if (host.loading) throw conflict(`model ${host.loading.name} is already loading (since ${host.loading.startedAt}); wait for it to finish`);
        const request = { name: body.name, processing: processingFlags(body.processing), device: body.device };
        if (req.query.stream === '0' || req.query.stream === 'false') {
          const info = await host.load(source, request);
          ctx.send(modelSummary(info), modelTable);
          return;
        }
        const abort = new AbortController();
        res.on('close', () => {
          if (!res.writableEnded) abort.abort();
        });
        const sse = new SseStream(res);
        sse.send('resolved', { name: body.name, source: publicSource(source) });
        try {
          const info = await host.load(source, request, (e) => sse.send('progress', e), abort.signal);
          ctx.log.info({ model: info.name, device: info.device }, 'model loaded');
          sse.send('loaded', modelSummary(info));
        } catch (e) {
          const status = e instanceof HttpError ? e.status : 500;
          if (status >= 500) ctx.log.error({ err: e }, 'model load failed');
          sse.send('error', { status, error: (e as Error).message });
        }
        sse.end();
      },
    }),
    defineRoute({
      method: 'get', path: '/api/model', formats: ['json', 'csv'], response: ModelResponse,
      summary: 'The active model: config, device, processing flags, hook points with dims and sizes',
      handler: (ctx) => ctx.send(modelSummary(ctx.host.require().info), modelTable),
    }),
  ];
}
