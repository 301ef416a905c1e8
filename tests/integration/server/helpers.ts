/** Test helpers for the API server: a random tiny GPT-2 checkpoint (GPT-2 vocabulary + tokenizer files), a running server on 127.0.0.1:0, HTTP helpers. */
import { copyFile, mkdtemp, mkdir, rm } from 'node:fs/promises';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gpt2Config, randomWeights } from '../../../hooks/init.ts';
import type { HookedTransformerConfig } from '../../../hooks/config.ts';
import { DEFAULT_GPT2_TOKENIZER_DIR } from '../../../hooks/tokenizer.ts';
import { createApp } from '../../../server/app.ts';
import { validateConfig, type ServerConfig, type ServerConfigInput } from '../../../server/config.ts';
import { ModelHost } from '../../../server/host/ModelHost.ts';
import { writeHfCheckpoint } from '../../helpers/checkpoints.ts';
import pino from 'pino';
import { expect } from 'vitest';

export const TINY: Partial<HookedTransformerConfig> = { n_layers: 2, d_model: 16, n_heads: 4, d_vocab: 50257, n_ctx: 64 };

const TOKENIZER_FILES = ['tokenizer.json', 'tokenizer_config.json', 'vocab.json', 'merges.txt', 'special_tokens_map.json'];

/** Writes a random tiny GPT-2 (config.json + model.safetensors + GPT-2 tokenizer files) into `dir`. */
export async function writeTinyModel(dir: string, seed: number, overrides: Partial<HookedTransformerConfig> = {}): Promise<HookedTransformerConfig> {
  const cfg = gpt2Config({ ...TINY, ...overrides, model_name: 'tiny' });
  await writeHfCheckpoint(dir, cfg, randomWeights(cfg, { seed, randomAffine: true, std: 0.2 }), { dtype: 'F32', prefix: false, buffers: false, lmHead: false });
  for (const f of TOKENIZER_FILES) await copyFile(join(DEFAULT_GPT2_TOKENIZER_DIR, f), join(dir, f));
  return cfg;
}

export interface TestServer {
  url: string;
  server: Server;
  host: ModelHost;
  config: ServerConfig;
  /** The model roots: [packageModels (a temp dir holding 'tiny'), extra root]. */
  packageRoot: string;
  extraRoot: string;
  tmp: string;
  close(): Promise<void>;
}

/**
 * Starts the real app on 127.0.0.1:0 with `tiny` (a random checkpoint) loaded from a temporary package-models root;
 * with `packageRoot`, that root is used as is and `input.model` is loaded from it.
 */
export async function startServer(input: Partial<ServerConfigInput> = {}, opts: { packageRoot?: string; log?: pino.Logger } = {}): Promise<TestServer> {
  const tmp = await mkdtemp(join(tmpdir(), 'lensboard-server-'));
  const packageRoot = opts.packageRoot ?? join(tmp, 'models');
  const extraRoot = join(tmp, 'extra');
  await mkdir(extraRoot, { recursive: true });
  if (!opts.packageRoot) {
    await mkdir(packageRoot, { recursive: true });
    await writeTinyModel(join(packageRoot, 'tiny'), 1);
  }
  const config = validateConfig({
    model: 'tiny', port: 0, threads: 1, offline: true, logLevel: 'silent', hfCacheDir: join(tmp, 'hf-cache'), cacheDir: join(tmp, 'cache'),
    ...input, modelRoots: [extraRoot, ...(input.modelRoots ?? [])],
  });
  const log = opts.log ?? pino({ level: 'silent' });
  const host = await ModelHost.create(config, packageRoot, log);
  await host.load(await host.resolve(config.model), { name: config.model, processing: { foldLn: true, centerWritingWeights: true, centerUnembed: true, foldValueBiases: true } });
  const app = createApp(config, host, { log });
  const server = await new Promise<Server>((resolve) => {
    const s = app.listen(0, '127.0.0.1', () => resolve(s));
  });
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`, server, host, config, packageRoot, extraRoot, tmp,
    close: async () => {
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
      await host.close();
      await rm(tmp, { recursive: true, force: true });
    },
  };
}

/** A pino logger whose JSON lines are kept (parsed) in `lines`, for tests that check what the server logs. */
export function captureLog(level: pino.Level = 'info'): { log: pino.Logger; lines: Record<string, any>[] } {
  const lines: Record<string, any>[] = [];
  const log = pino({ level }, { write: (s: string) => void lines.push(JSON.parse(s)) });
  return { log, lines };
}

export interface JsonAnswer<T = any> {
  status: number;
  body: T;
  headers: Headers;
  ms: number;
}

/** POSTs `body` (an object, or a raw string sent as is) and parses the JSON answer. */
export async function post<T = any>(url: string, body: unknown, headers: Record<string, string> = {}): Promise<JsonAnswer<T>> {
  const t0 = performance.now();
  const res = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  });
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : null, headers: res.headers, ms: performance.now() - t0 };
}

export async function get<T = any>(url: string, headers: Record<string, string> = {}): Promise<JsonAnswer<T>> {
  const t0 = performance.now();
  const res = await fetch(url, { headers });
  const text = await res.text();
  const type = res.headers.get('content-type') ?? '';
  return { status: res.status, body: type.includes('json') ? JSON.parse(text) : text, headers: res.headers, ms: performance.now() - t0 };
}

/** RFC 4180 CSV → rows of strings (quoted fields with "" escapes, CRLF line ends). */
export function parseCsv(text: string): string[][] {
  const rows: string[][] = [];
  let row: string[] = [];
  let field = '';
  let quoted = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (quoted) {
      if (c === '"' && text[i + 1] === '"') {
        field += '"';
        i++;
      } else if (c === '"') quoted = false;
      else field += c;
    } else if (c === '"') quoted = true;
    else if (c === ',') {
      row.push(field);
      field = '';
    } else if (c === '\r' && text[i + 1] === '\n') {
      row.push(field);
      rows.push(row);
      row = [];
      field = '';
      i++;
    } else field += c;
  }
  if (field !== '' || row.length > 0) rows.push([...row, field]);
  return rows;
}

/** Reads an SSE response to its end and returns its events. */
export async function readSse(res: Response): Promise<{ event: string; data: any }[]> {
  const { parseSse } = await import('../../../server/sse.ts');
  return parseSse(await res.text());
}

export const maxAbsDiff = (a: ArrayLike<number>, b: ArrayLike<number>): number => {
  if (a.length !== b.length) return Infinity;
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
};

/** POSTs `body` to `url` with ?format=csv, checks the answer is a 200 CSV and parses it. */
export async function postCsv(url: string, body: unknown): Promise<string[][]> {
  const res = await fetch(`${url}?format=csv`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  expect(res.status).toBe(200);
  expect(res.headers.get('content-type')).toMatch(/^text\/csv/);
  return parseCsv(await res.text());
}

/** Expects a 400 whose error contains every fragment. */
export function expect400(r: { status: number; body: any }, ...fragments: string[]): void {
  expect(r.status, JSON.stringify(r.body)).toBe(400);
  for (const f of fragments) expect(r.body.error).toContain(f);
}
