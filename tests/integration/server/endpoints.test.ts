/** Every endpoint of the API server, against the library called directly on the same checkpoint (values within 1e-5). */
import { mkdir, readdir, stat, writeFile } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HookedTransformer } from '../../../hooks/HookedTransformer.ts';
import type { HookName } from '../../../hooks/hookPoints.ts';
import { Tensor } from '../../../hooks/tensor.ts';
import { createApp } from '../../../server/app.ts';
import { decodeNumber } from '../../../services/common/nonFinite.ts';
import { HealthResponse, JobsResponse } from '../../../server/routes/system.ts';
import { ModelResponse, ModelsResponse } from '../../../server/routes/models.ts';
import { ActivationsResponse } from '../../../services/inference/activations.ts';
import { AttentionResponse } from '../../../services/inference/attention.ts';
import { ForwardResponse } from '../../../services/inference/forward.ts';
import { TokenizeResponse } from '../../../services/inference/tokenize.ts';
import { get, maxAbsDiff, parseCsv, post, readSse, startServer, type TestServer } from './helpers.ts';

let srv: TestServer;
let ref: HookedTransformer;
const api = (p: string) => `${srv.url}${p}`;

beforeAll(async () => {
  srv = await startServer();
  ref = await HookedTransformer.fromPretrained(join(srv.packageRoot, 'tiny'), { threads: 1 });
});

afterAll(async () => {
  await srv?.close();
  await ref?.dispose();
});

/** Top-k of the library's logits at [b, p] (log-softmax, topk), for comparison with /api/forward. */
function refTop(logits: Tensor, b: number, p: number, k: number) {
  const row = logits.index(0, b).index(0, p); // [d_vocab]
  const lp = row.logSoftmax(-1);
  const top = lp.topk(k, -1);
  return Array.from(top.indices.data).map((token, j) => ({ token, prob: Math.exp(top.values.data[j]), logit: row.data[token] }));
}

describe('GET endpoints', () => {
  it('/api/health: ok, the loaded model, an empty queue', async () => {
    const r = await get(api('/api/health'));
    expect(r.status).toBe(200);
    HealthResponse.parse(r.body);
    expect(r.body).toMatchObject({ status: 'ok', model: 'tiny', modelState: 'ready', loading: null, jobs: { running: 0, queued: 0 } });
  });

  it('/api/openapi.json: OpenAPI 3.1 with every route, a JSON schema for every POST body', async () => {
    const r = await get(api('/api/openapi.json'));
    expect(r.status).toBe(200);
    expect(r.body.openapi).toBe('3.1.0');
    expect(Object.keys(r.body.paths).sort()).toEqual([
      '/api/ablate', '/api/ablate/sweep', '/api/activations', '/api/attention', '/api/attribution',
      '/api/attribution-patch', '/api/circuits/composition', '/api/circuits/copying', '/api/circuits/positional',
      '/api/circuits/top-copied', '/api/experiments', '/api/experiments/{id}', '/api/features', '/api/features/ablate',
      '/api/features/{id}', '/api/forward', '/api/graph', '/api/heads/detect', '/api/health', '/api/ioi', '/api/jobs',
      '/api/jobs/{id}', '/api/logit-lens', '/api/model', '/api/models', '/api/models/load', '/api/neurons/activations',
      '/api/neurons/examples', '/api/neurons/output', '/api/neurons/patch', '/api/neurons/top', '/api/openapi.json',
      '/api/patch', '/api/saes', '/api/saes/eval', '/api/saes/load', '/api/saliency', '/api/steer', '/api/tokenize',
    ]);
    const forward = r.body.paths['/api/forward'].post.requestBody.content['application/json'].schema;
    expect(forward.required).toEqual(['prompt']);
    expect(forward.properties.topK).toMatchObject({ type: 'integer', minimum: 1, maximum: 100, default: 10 });
    expect(forward.additionalProperties).toBe(false);
  });

  it('/api/model: the library\'s config, processing flags and hook points (names, dims, sizes)', async () => {
    const r = await get(api('/api/model'));
    expect(r.status).toBe(200);
    ModelResponse.parse(r.body);
    expect(r.body.config).toEqual(ref.cfg);
    expect(r.body.processing).toEqual(ref.processing);
    expect(r.body.device).toBe('cpu');
    expect(r.body.hasTokenizer).toBe(true);
    const hooks = ref.hookPoints();
    expect(r.body.hookPoints.map((h: { name: string }) => h.name)).toEqual(hooks.map((h) => h.name));
    expect(r.body.hookPoints[5]).toEqual({ name: 'blocks.0.attn.hook_q', layer: 0, dims: ['batch', 'pos', 'head', 'd_head'], sizes: [null, null, 4, 4] });
  });

  it('/api/models: local directories with their byte sizes, HF-cached repos, official models with parameter counts', async () => {
    // A cached hub repo in the (temporary) HF cache: refs/main → snapshot with config.json, blob sizes summed.
    const repoDir = join(srv.config.hfCacheDir!, 'models--some-org--cached-gpt2');
    const commit = 'a'.repeat(40);
    await mkdir(join(repoDir, 'snapshots', commit), { recursive: true });
    await mkdir(join(repoDir, 'refs'), { recursive: true });
    await mkdir(join(repoDir, 'blobs'), { recursive: true });
    await writeFile(join(repoDir, 'refs', 'main'), commit);
    await writeFile(join(repoDir, 'blobs', 'b1'), Buffer.alloc(1234));
    await writeFile(join(repoDir, 'snapshots', commit, 'config.json'), '{}');
    const r = await get(api('/api/models'));
    expect(r.status).toBe(200);
    ModelsResponse.parse(r.body);
    let tinyBytes = 0;
    for (const f of await readdir(join(srv.packageRoot, 'tiny'))) tinyBytes += (await stat(join(srv.packageRoot, 'tiny', f))).size;
    expect(r.body.local).toEqual([{ name: 'tiny', root: 0, bytes: tinyBytes }]);
    expect(r.body.embedded).toEqual({ name: 'embedded', available: false });
    expect(r.body.active).toBe('tiny');
    expect(r.body.cached).toEqual([{ repo: 'some-org/cached-gpt2', bytes: 1234 }]);
    // GPT-2 small has 124,439,808 parameters (its published count); GPT-2 XL 1,557,611,200.
    const gpt2 = r.body.hub.find((h: { name: string }) => h.name === 'gpt2');
    expect(gpt2).toMatchObject({ repo: 'openai-community/gpt2', params: 124_439_808, float32Bytes: 4 * 124_439_808, cached: false });
    expect(r.body.hub.find((h: { name: string }) => h.name === 'gpt2-xl').params).toBe(1_557_611_200);
    const csv = parseCsv((await get(api('/api/models?format=csv'))).body);
    expect(csv[0]).toEqual(['kind', 'name', 'repo', 'bytes', 'params', 'available_offline']);
    expect(csv).toContainEqual(['local', 'tiny', '', String(tinyBytes), '', 'true']);
  });

  it('/api/jobs: empty when idle', async () => {
    const r = await get(api('/api/jobs'));
    JobsResponse.parse(r.body);
    expect(r.body).toEqual({ jobs: [] });
  });
});

describe('POST /api/tokenize', () => {
  it('equals toTokens / toStrTokens for one text and a batch, with and without BOS', async () => {
    const texts = ['Hello world, this is Lensboard.', ' The cat sat on the mat\n'];
    const r = await post(api('/api/tokenize'), { text: texts });
    expect(r.status).toBe(200);
    TokenizeResponse.parse(r.body);
    expect(r.body.tokens).toEqual(texts.map((t) => ref.toTokens(t)[0]));
    expect(r.body.strTokens).toEqual(texts.map((t) => ref.toStrTokens(t)));
    expect(r.body.nCtx).toBe(64);
    expect(r.body.fitsContext).toEqual([true, true]);
    const one = await post(api('/api/tokenize'), { text: texts[0], prependBos: false });
    expect(one.body.tokens).toEqual(ref.toTokens(texts[0], { prependBos: false }));
  });

  it('a text longer than n_ctx is tokenized in full and flagged as not fitting', async () => {
    const long = 'word '.repeat(99) + 'word'; // BOS + 100 tokens
    const r = await post(api('/api/tokenize'), { text: long });
    expect(r.body.tokens[0]).toEqual(ref.tokenizer!.toTokens(long, { truncate: false }).tokens[0]);
    expect(r.body.tokens[0].length).toBe(101);
    expect(r.body.fitsContext).toEqual([false]);
  });
});

describe('POST /api/forward', () => {
  const prompts = ['The quick brown fox', 'Interpretability is the study of how networks compute'];

  it('top-k per position and loss per token equal the library\'s (padded batch; 1e-5)', async () => {
    const k = 5;
    const r = await post(api('/api/forward'), { prompt: prompts, topK: k });
    expect(r.status).toBe(200);
    ForwardResponse.parse(r.body);
    const { tokens, attentionMask } = ref.prepareInput(prompts);
    expect(r.body.tokens).toEqual(tokens);
    expect(r.body.attentionMask).toEqual(attentionMask);
    expect(r.body.strTokens).toEqual(tokens.map((row) => ref.toStrTokens(row)));
    const logits = await ref.forward(prompts); // [2, pos, d_vocab]
    const perToken = (await ref.forward(prompts, { returnType: 'loss', lossPerToken: true })) as Tensor; // [2, pos-1]
    const meanLoss = (await ref.forward(prompts, { returnType: 'loss' })) as number;
    const pos = tokens[0].length;
    for (let b = 0; b < 2; b++) {
      for (let p = 0; p < pos; p++) {
        const want = refTop(logits, b, p, k);
        const got = r.body.top[b][p];
        expect(got.map((c: { token: number }) => c.token)).toEqual(want.map((c) => c.token));
        expect(maxAbsDiff(got.map((c: { prob: number }) => c.prob), want.map((c) => c.prob))).toBeLessThan(1e-6);
        expect(maxAbsDiff(got.map((c: { logit: number }) => c.logit), want.map((c) => c.logit))).toBeLessThan(1e-5);
        expect(got[0].str).toBe(ref.toStrTokens([got[0].token])[0]);
        if (p < pos - 1) {
          const real = attentionMask![b][p] === 1 && attentionMask![b][p + 1] === 1;
          if (real) expect(Math.abs(r.body.lossPerToken[b][p] - perToken.get(b, p))).toBeLessThan(1e-5);
          else expect(r.body.lossPerToken[b][p]).toBeNull();
        }
      }
    }
    expect(Math.abs(r.body.loss - meanLoss)).toBeLessThan(1e-5);
  });

  it('token-id rows: same answer as the library; a single position has no loss', async () => {
    const ids = [[50256, 464, 2068, 7586], [50256, 40, 588, 340]];
    const r = await post(api('/api/forward'), { prompt: ids, topK: 1 });
    const logits = await ref.forward(ids);
    expect(r.body.attentionMask).toBeNull();
    for (let b = 0; b < 2; b++) for (let p = 0; p < 4; p++) expect(r.body.top[b][p][0].token).toBe(refTop(logits, b, p, 1)[0].token);
    expect(Math.abs(r.body.loss - ((await ref.forward(ids, { returnType: 'loss' })) as number))).toBeLessThan(1e-5);
    const single = await post(api('/api/forward'), { prompt: [50256], topK: 3 });
    expect(single.body.lossPerToken).toEqual([[]]);
    expect(single.body.loss).toBeNull();
    expect(single.body.top[0][0].map((c: { token: number }) => c.token)).toEqual(refTop(await ref.forward([50256]), 0, 0, 3).map((c) => c.token));
  });

  it('as CSV (?format=csv and Accept: text/csv): one row per (batch, position, rank), equal to the JSON answer', async () => {
    const body = { prompt: 'Hello, world', topK: 3 };
    const json = (await post(api('/api/forward'), body)).body;
    for (const [url, headers] of [[api('/api/forward?format=csv'), {}], [api('/api/forward'), { accept: 'text/csv' }]] as const) {
      const res = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: JSON.stringify(body) });
      expect(res.headers.get('content-type')).toMatch(/^text\/csv/);
      const rows = parseCsv(await res.text());
      expect(rows[0]).toEqual(['batch', 'position', 'token', 'str', 'loss_next', 'rank', 'top_token', 'top_str', 'prob', 'logit']);
      const pos = json.tokens[0].length;
      expect(rows.length).toBe(1 + pos * 3);
      const row = rows[1 + 1 * 3 + 2]; // position 1, rank 2
      expect(row.slice(0, 3)).toEqual(['0', '1', String(json.tokens[0][1])]);
      expect(row[3]).toBe(json.strTokens[0][1]);
      expect(Number(row[4])).toBe(json.lossPerToken[0][1]);
      expect(Number(row[6])).toBe(json.top[0][1][2].token);
      expect(Number(row[8])).toBe(json.top[0][1][2].prob);
    }
  });

  it('as Server-Sent Events: job, progress, then the same result', async () => {
    const body = { prompt: ['one', 'two two', 'three three three'], topK: 2 };
    const json = (await post(api('/api/forward'), body)).body;
    const res = await fetch(api('/api/forward'), { method: 'POST', headers: { 'content-type': 'application/json', accept: 'text/event-stream' }, body: JSON.stringify(body) });
    expect(res.headers.get('content-type')).toMatch(/^text\/event-stream/);
    const events = await readSse(res);
    expect(events[0].event).toBe('job');
    expect(events[0].data.kind).toBe('forward');
    expect(events.filter((e) => e.event === 'progress').at(-1)!.data).toMatchObject({ done: 3, total: 3 });
    expect(events.at(-1)!.event).toBe('result');
    expect(events.at(-1)!.data).toEqual(json);
  });
});

describe('POST /api/attention', () => {
  it('patterns and scores of chosen layers and heads equal the cache\'s; masked scores are "-Infinity"', async () => {
    const prompt = 'Attention is all you need';
    const r = await post(api('/api/attention'), { prompt, layers: [1, 0], heads: [3, 1], scores: true });
    expect(r.status).toBe(200);
    AttentionResponse.parse(r.body);
    const names = [0, 1].flatMap((l) => [`blocks.${l}.attn.hook_pattern`, `blocks.${l}.attn.hook_attn_scores`]) as HookName[];
    const [, cache] = await ref.runWithCache(prompt, { namesFilter: names });
    const pos = ref.toTokens(prompt)[0].length;
    expect(r.body.tokens).toEqual(ref.toTokens(prompt)[0]);
    expect(r.body.layers).toEqual([1, 0]);
    expect(r.body.heads).toEqual([3, 1]);
    [1, 0].forEach((l, li) =>
      [3, 1].forEach((h, hi) => {
        const pattern = cache.get(`blocks.${l}.attn.hook_pattern`).index(0, 0).index(0, h); // [q, k]
        const scores = cache.get(`blocks.${l}.attn.hook_attn_scores`).index(0, 0).index(0, h);
        expect(maxAbsDiff(r.body.patterns[li][hi].flat(), pattern.data)).toBeLessThan(1e-6);
        const got = (r.body.scores[li][hi].flat() as (number | string)[]).map(decodeNumber);
        for (let i = 0; i < pos * pos; i++) {
          const [q, k] = [Math.floor(i / pos), i % pos];
          if (k > q) {
            expect(r.body.scores[li][hi][q][k]).toBe('-Infinity');
            expect(scores.data[i]).toBe(-Infinity);
          } else expect(Math.abs(got[i] - scores.data[i])).toBeLessThan(1e-5);
        }
      }),
    );
    const csv = parseCsv((await fetch(api('/api/attention?format=csv'), { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ prompt, layers: [0], heads: [2], scores: true }) }).then((x) => x.text())));
    expect(csv[0]).toEqual(['layer', 'head', 'query_pos', 'key_pos', 'pattern', 'score']);
    expect(csv.length).toBe(1 + pos * pos);
    expect(csv[2]).toEqual(['0', '2', '0', '1', '0', '-Infinity']);
  });

  it('defaults to every layer and head', async () => {
    const r = await post(api('/api/attention'), { prompt: [50256, 10, 20] });
    expect(r.body.layers).toEqual([0, 1]);
    expect(r.body.heads).toEqual([0, 1, 2, 3]);
    expect(r.body.scores).toBeUndefined();
    const [, cache] = await ref.runWithCache([50256, 10, 20], { namesFilter: ['blocks.1.attn.hook_pattern'] });
    expect(maxAbsDiff(r.body.patterns[1].flat(2), cache.get('blocks.1.attn.hook_pattern').data)).toBeLessThan(1e-6);
  });
});

describe('POST /api/activations', () => {
  it('a slice of mlp.hook_post (pos slice, d_mlp list) equals the cached activation', async () => {
    const prompts = ['first prompt here', 'and the second one'];
    const r = await post(api('/api/activations'), { prompt: prompts, hook: 'blocks.1.mlp.hook_post', select: { pos: { start: 1, end: -1 }, d_mlp: [0, 5, 63] } });
    expect(r.status).toBe(200);
    ActivationsResponse.parse(r.body);
    const [, cache] = await ref.runWithCache(prompts, { namesFilter: ['blocks.1.mlp.hook_post'] });
    const full = cache.get('blocks.1.mlp.hook_post'); // [batch, pos, d_mlp]
    const pos = full.shape[1];
    expect(r.body.fullShape).toEqual(full.shape);
    expect(r.body.dims).toEqual(['batch', 'pos', 'd_mlp']);
    expect(r.body.shape).toEqual([2, pos - 2, 3]);
    expect(r.body.indices).toEqual([[0, 1], Array.from({ length: pos - 2 }, (_, i) => i + 1), [0, 5, 63]]);
    for (let b = 0; b < 2; b++) for (let p = 1; p < pos - 1; p++) [0, 5, 63].forEach((n, j) => {
      expect(Math.abs(r.body.values[b][p - 1][j] - full.get(b, p, n))).toBeLessThan(1e-5);
    });
  });

  it('single indices drop their dims (negative counts from the end); every dim indexed gives a number', async () => {
    const prompt = 'A short prompt';
    const [, cache] = await ref.runWithCache(prompt, { namesFilter: ['hook_embed', 'blocks.0.attn.hook_z'] });
    const z = cache.get('blocks.0.attn.hook_z'); // [1, pos, head, d_head]
    const pos = z.shape[1];
    const r = await post(api('/api/activations'), { prompt, hook: 'blocks.0.attn.hook_z', select: { batch: 0, pos: -1, head: [2] } });
    expect(r.body.dims).toEqual(['head', 'd_head']);
    expect(maxAbsDiff(r.body.values.flat(), z.index(0, 0).index(0, pos - 1).index(0, 2).data)).toBeLessThan(1e-5);
    const one = await post(api('/api/activations'), { prompt, hook: 'hook_embed', select: { batch: 0, pos: 1, d_model: 7 } });
    expect(one.body.shape).toEqual([]);
    expect(Math.abs(one.body.values - cache.get('hook_embed').get(0, 1, 7))).toBeLessThan(1e-6);
    const csv = parseCsv((await fetch(api('/api/activations?format=csv'), { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ prompt, hook: 'blocks.0.attn.hook_z', select: { batch: 0, pos: -1, head: [2] } }) }).then((x) => x.text())));
    expect(csv[0]).toEqual(['head', 'd_head', 'value']);
    expect(csv.slice(1).map((row) => Number(row[2]))).toEqual(r.body.values.flat());
  });
});

describe('the dashboard hook point', () => {
  it('with staticDir, / and client-side routes serve index.html; /api stays JSON', async () => {
    const dir = join(srv.tmp, 'ui-dist');
    await mkdir(dir, { recursive: true });
    await writeFile(join(dir, 'index.html'), '<!doctype html><title>Lensboard</title>');
    await writeFile(join(dir, 'app.js'), 'console.log(1)');
    const app = createApp(srv.config, srv.host, { staticDir: dir });
    const server = await new Promise<import('node:http').Server>((resolve) => {
      const s = app.listen(0, '127.0.0.1', () => resolve(s));
    });
    const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    try {
      expect(await (await fetch(`${base}/`)).text()).toContain('<title>Lensboard</title>');
      expect(await (await fetch(`${base}/heads/3`)).text()).toContain('<title>Lensboard</title>');
      expect(await (await fetch(`${base}/app.js`)).text()).toBe('console.log(1)');
      const missing = await fetch(`${base}/api/nope`);
      expect(missing.status).toBe(404);
      expect((await missing.json()).error).toContain('no route GET /api/nope');
      expect((await (await fetch(`${base}/api/health`)).json()).status).toBe('ok');
    } finally {
      server.closeAllConnections();
      await new Promise((r) => server.close(r));
    }
  });
});
