/** POST /api/models/load: SSE progress, switching the active model (results follow the new weights), processing flags, a model without tokenizer, hub downloads from a fake hub, 409 on a second load, abort on disconnect. */
import { readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HookedTransformer } from '../../../hooks/HookedTransformer.ts';
import { FakeHub } from '../../helpers/fakeHub.ts';
import { get, maxAbsDiff, post, readSse, startServer, writeTinyModel, type TestServer } from './helpers.ts';

const load = (srv: TestServer, body: unknown, query = '') =>
  fetch(`${srv.url}/api/models/load${query}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });

let srv: TestServer;
let hub: FakeHub;

beforeAll(async () => {
  hub = await FakeHub.start();
  srv = await startServer({ offline: false, hubEndpoint: hub.url });
});

afterAll(async () => {
  await srv?.close();
  await hub?.close();
});

describe('loading from the model roots', () => {
  beforeAll(async () => {
    await writeTinyModel(join(srv.extraRoot, 'org', 'second'), 2, { n_layers: 3 });
    await writeTinyModel(join(srv.extraRoot, 'bare'), 3);
    for (const f of ['tokenizer.json', 'tokenizer_config.json', 'vocab.json', 'merges.txt', 'special_tokens_map.json']) await rm(join(srv.extraRoot, 'bare', f));
  });

  it('streams resolved → loaded as SSE, makes the model active, and answers follow its weights', async () => {
    const res = await load(srv, { name: 'org/second' });
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/^text\/event-stream/);
    const events = await readSse(res);
    expect(events.map((e) => e.event)).toEqual(['resolved', 'loaded']);
    expect(events[0].data).toEqual({ name: 'org/second', source: { kind: 'dir', name: 'org/second' } });
    expect(events[1].data.config.n_layers).toBe(3);
    const model = (await get(`${srv.url}/api/model`)).body;
    expect(model.name).toBe('org/second');
    expect(model.config.n_layers).toBe(3);
    const ref = await HookedTransformer.fromPretrained(join(srv.extraRoot, 'org', 'second'), { threads: 1 });
    try {
      const r = await post(`${srv.url}/api/attention`, { prompt: 'switching models', layers: [2] });
      const [, cache] = await ref.runWithCache('switching models', { namesFilter: ['blocks.2.attn.hook_pattern'] });
      expect(maxAbsDiff(r.body.patterns[0].flat(2), cache.get('blocks.2.attn.hook_pattern').data)).toBeLessThan(1e-6);
    } finally {
      await ref.dispose();
    }
  });

  it("processing 'none' loads the raw weights (= fromPretrainedNoProcessing); ?stream=0 answers JSON", async () => {
    const res = await load(srv, { name: 'tiny', processing: 'none' }, '?stream=0');
    expect(res.headers.get('content-type')).toMatch(/^application\/json/);
    const info = await res.json();
    expect(info.processing).toEqual({ foldLn: false, centerWritingWeights: false, centerUnembed: false, foldValueBiases: false });
    const ref = await HookedTransformer.fromPretrainedNoProcessing(join(srv.packageRoot, 'tiny'), { threads: 1 });
    try {
      const r = await post(`${srv.url}/api/activations`, { prompt: 'raw weights', hook: 'blocks.1.ln2.hook_normalized', select: { batch: 0 } });
      const [, cache] = await ref.runWithCache('raw weights', { namesFilter: ['blocks.1.ln2.hook_normalized'] });
      expect(maxAbsDiff(r.body.values.flat(), cache.get('blocks.1.ln2.hook_normalized').data)).toBeLessThan(1e-5);
    } finally {
      await ref.dispose();
    }
  });

  it('a model without tokenizer files takes token ids and refuses text with a 400', async () => {
    const events = await readSse(await load(srv, { name: 'bare' }));
    expect(events.at(-1)!.event).toBe('loaded');
    expect(events.at(-1)!.data.hasTokenizer).toBe(false);
    const tok = await post(`${srv.url}/api/tokenize`, { text: 'hello' });
    expect(tok.status).toBe(400);
    expect(tok.body.error).toContain('without tokenizer files');
    const text = await post(`${srv.url}/api/forward`, { prompt: 'hello' });
    expect(text.status).toBe(400);
    expect(text.body.error).toContain('needs a tokenizer');
    const ids = await post(`${srv.url}/api/forward`, { prompt: [1, 2, 3], topK: 2 });
    expect(ids.status).toBe(200);
    expect(ids.body.strTokens).toBeNull();
    expect(ids.body.top[0][0][0].str).toBeNull();
  });

  it('a second load while one runs → 409; a load whose client disconnects is aborted; the active model stays', async () => {
    const first = load(srv, { name: 'tiny' });
    await new Promise((r) => setTimeout(r, 20));
    let second = await load(srv, { name: 'org/second' });
    for (let i = 0; i < 20 && second.status === 200; i++) {
      await second.text(); // the first had not started yet: let it be, try again
      second = await load(srv, { name: 'org/second' });
    }
    expect(second.status).toBe(409);
    expect((await second.json()).error).toMatch(/model tiny is already loading/);
    expect((await readSse(await first)).at(-1)!.event).toBe('loaded');

    const abort = new AbortController();
    const res = await fetch(`${srv.url}/api/models/load`, { method: 'POST', signal: abort.signal, headers: { 'content-type': 'application/json' }, body: JSON.stringify({ name: 'org/second' }) });
    const reader = res.body!.getReader();
    await reader.read(); // the `resolved` event
    abort.abort();
    let health = (await get(`${srv.url}/api/health`)).body;
    for (let i = 0; i < 100 && health.loading; i++) {
      await new Promise((r) => setTimeout(r, 20));
      health = (await get(`${srv.url}/api/health`)).body;
    }
    expect(health).toMatchObject({ model: 'tiny', loading: null, modelState: 'ready' });
  });
});

describe('loading from the hub', () => {
  beforeAll(async () => {
    const dir = join(srv.tmp, 'hub-src');
    await writeTinyModel(dir, 4);
    const files: Record<string, Buffer> = {};
    for (const f of ['config.json', 'model.safetensors', 'tokenizer.json', 'tokenizer_config.json', 'vocab.json', 'merges.txt', 'special_tokens_map.json']) {
      files[f] = await readFile(join(dir, f));
    }
    hub.addRepo('test-org/tiny-hub', files);
  });

  it('downloads into the HF cache with initiate/download/progress/done/ready events, then lists it as cached', async () => {
    const events = await readSse(await load(srv, { name: 'test-org/tiny-hub' }));
    expect(events[0]).toEqual({ event: 'resolved', data: { name: 'test-org/tiny-hub', source: { kind: 'hub', name: 'test-org/tiny-hub', repo: 'test-org/tiny-hub' } } });
    const progress = events.filter((e) => e.event === 'progress').map((e) => e.data);
    const statuses = new Set(progress.map((p) => p.status));
    for (const s of ['initiate', 'download', 'progress', 'done', 'ready']) expect(statuses).toContain(s);
    const weights = progress.filter((p) => p.status === 'progress' && p.file === 'model.safetensors').at(-1);
    expect(weights.loaded).toBe(weights.total);
    expect(events.at(-1)!.event).toBe('loaded');
    expect((await get(`${srv.url}/api/model`)).body.source).toEqual({ kind: 'hub', name: 'test-org/tiny-hub', repo: 'test-org/tiny-hub' });
    const cached = (await get(`${srv.url}/api/models`)).body.cached;
    expect(cached.map((c: { repo: string }) => c.repo)).toEqual(['test-org/tiny-hub']);
  });

  it('a repo the hub does not have → an SSE error event with the hub\'s 404', async () => {
    const events = await readSse(await load(srv, { name: 'test-org/missing' }));
    expect(events.at(-1)!.event).toBe('error');
    expect(events.at(-1)!.data.status).toBe(404);
    expect(events.at(-1)!.data.error).toContain('could not load test-org/missing');
    expect((await get(`${srv.url}/api/health`)).body.model).toBe('test-org/tiny-hub');
  });
});
