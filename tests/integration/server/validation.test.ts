/** Bad input gets a 4xx naming the problem (and the limit), model names never reach outside the model roots, and the server keeps serving. */
import { mkdir, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { get, post, startServer, writeTinyModel, type TestServer } from './helpers.ts';

let srv: TestServer;
const api = (p: string) => `${srv.url}${p}`;
const LIMITS = { maxBatch: 4, maxBodyBytes: 65_536, maxElements: 5000, maxTopK: 20 };

beforeAll(async () => {
  srv = await startServer({ limits: LIMITS });
});

afterAll(async () => {
  await srv?.close();
});

/** Every error answer: JSON { error: string, details? } with the status. */
function expectError(r: { status: number; body: any; headers: Headers }, status: number, ...fragments: (string | RegExp)[]) {
  expect(r.status, JSON.stringify(r.body)).toBe(status);
  expect(r.headers.get('content-type')).toMatch(/^application\/json/);
  expect(typeof r.body.error).toBe('string');
  for (const f of fragments) expect(r.body.error).toMatch(f);
}

describe('malformed requests', () => {
  it('malformed JSON → 400 naming it', async () => {
    expectError(await post(api('/api/forward'), '{"prompt": "x",'), 400, 'malformed JSON body');
    expectError(await post(api('/api/forward'), '"just a string"'), 400, 'malformed JSON body');
  });

  it('a body that is not JSON → 415', async () => {
    const res = await fetch(api('/api/forward'), { method: 'POST', headers: { 'content-type': 'text/plain' }, body: 'prompt=hi' });
    expectError({ status: res.status, body: await res.json(), headers: res.headers }, 415, 'Content-Type: application/json');
  });

  it('wrong types, missing and unknown fields → 400 with the field path and what is allowed', async () => {
    const wrongPrompt = await post(api('/api/forward'), { prompt: 5 });
    expectError(wrongPrompt, 400, /^invalid request body: prompt: prompt must be a non-empty string, an array of strings/);
    expect(wrongPrompt.body.details).toEqual([{ path: 'prompt', message: expect.stringContaining('array of token ids') }]);
    expectError(await post(api('/api/forward'), { prompt: 'x', topK: '5' }), 400, 'topK: Invalid input: expected number, received string');
    expectError(await post(api('/api/forward'), { prompt: 'x', topK: 21 }), 400, 'topK', '<=20');
    expectError(await post(api('/api/forward'), { prompt: 'x', topK: 2.5 }), 400, 'topK', 'expected int');
    expectError(await post(api('/api/forward'), {}), 400, 'prompt');
    expectError(await post(api('/api/forward'), { prompt: 'x', topk: 3 }), 400, "unknown field(s) 'topk'");
    expectError(await post(api('/api/forward'), { prompt: [[1, 2], [3, -4]] }), 400, 'prompt');
    expectError(await post(api('/api/models/load'), {}), 400, 'name: Invalid input: expected string, received undefined');
    expectError(await post(api('/api/attention'), { prompt: 'x', layers: 'all' }), 400, 'layers');
    expectError(await post(api('/api/activations'), { prompt: 'x', hook: 'hook_embed', select: { pos: 'last' } }), 400, 'select.pos', 'a selector is an index');
    expectError(await post(api('/api/tokenize'), { text: 7 }), 400, 'text must be a string or an array of 1..4 strings');
  });

  it('unknown routes, wrong methods and a bad ?format → JSON 4xx', async () => {
    expectError(await get(api('/api/nothing')), 404, 'no route GET /api/nothing');
    expectError(await get(api('/api/forward')), 404, 'no route GET /api/forward');
    expectError(await post(api('/api/forward?format=xml'), { prompt: 'x' }), 400, "format must be 'json' or 'csv'");
  });
});

describe('model-dependent checks (in the worker)', () => {
  it('unknown hook names → 400 naming the hook and where to find the list', async () => {
    expectError(await post(api('/api/activations'), { prompt: 'x', hook: 'blocks.9.hook_resid_pre' }), 400, "unknown hook point 'blocks.9.hook_resid_pre'", 'GET /api/model');
    expectError(await post(api('/api/activations'), { prompt: 'x', hook: 'hook_tokens' }), 400, "unknown hook point 'hook_tokens'");
  });

  it('out-of-range layers and heads → 400 stating the allowed range', async () => {
    expectError(await post(api('/api/attention'), { prompt: 'x', layers: [0, 2] }), 400, 'layers[1]: 2 is out of range; this model has n_layers = 2 (allowed 0..1)');
    expectError(await post(api('/api/attention'), { prompt: 'x', heads: [-1] }), 400, 'heads[0]: -1 is out of range; this model has n_heads = 4 (allowed 0..3)');
  });

  it('selections: unknown dims and out-of-range indices → 400', async () => {
    expectError(await post(api('/api/activations'), { prompt: 'x', hook: 'hook_embed', select: { head: 0 } }), 400, "select.head: hook hook_embed has no dim 'head'; its dims are batch, pos, d_model");
    expectError(await post(api('/api/activations'), { prompt: 'x', hook: 'hook_embed', select: { d_model: [3, 16] } }), 400, 'select.d_model[1]: index 16 is out of range for a dim of size 16 (allowed -16..15)');
    expectError(await post(api('/api/activations'), { prompt: 'x', hook: 'hook_embed', select: { pos: { start: 5 } } }), 400, 'selects nothing');
  });

  it('prompts longer than n_ctx, token ids outside the vocabulary, batches over maxBatch → 400 stating the limit', async () => {
    expectError(await post(api('/api/forward'), { prompt: ' word'.repeat(80) }), 400, "input has 81 tokens; this model's context (n_ctx) is 64");
    expectError(await post(api('/api/forward'), { prompt: Array(65).fill(1) }), 400, '(n_ctx) is 64');
    expectError(await post(api('/api/forward'), { prompt: [1, 50257] }), 400, 'token id 50257 at [0][1] is not an integer in [0, 50257)');
    expectError(await post(api('/api/forward'), { prompt: ['a', 'b', 'c', 'd', 'e'] }), 400, 'a batch has at most 4 prompts (maxBatch); got 5');
  });

  it('an activation slice over maxElements → 400 stating the count and the limit', async () => {
    // blocks.0.attn.hook_pattern for 2 prompts of 20 tokens: 2·4·20·20 = 3200 ≤ 5000; for 4 prompts: 6400 > 5000.
    const four = Array.from({ length: 4 }, () => Array(20).fill(7));
    expectError(await post(api('/api/activations'), { prompt: four, hook: 'blocks.0.attn.hook_pattern' }), 400, 'the answer would hold 6400 numbers; the limit is 5000 (maxElements)');
    const ok = await post(api('/api/activations'), { prompt: four.slice(2), hook: 'blocks.0.attn.hook_pattern' });
    expect(ok.status).toBe(200);
    expect(ok.body.shape).toEqual([2, 4, 20, 20]);
    expectError(await post(api('/api/attention'), { prompt: Array(40).fill(7), scores: true }), 400, 'the answer would hold 25600 numbers; the limit is 5000');
  });

  it('a body over maxBodyBytes → 413 JSON stating the limit', async () => {
    const r = await post(api('/api/tokenize'), { text: 'x'.repeat(70_000) });
    expectError(r, 413, /request body is \d+ bytes; the limit is 65536 bytes/);
  });
});

describe('model names stay inside the model roots', () => {
  beforeAll(async () => {
    // A valid model outside every root, reachable only by `..`, an absolute path or a symlink.
    await writeTinyModel(join(srv.tmp, 'outside', 'evil'), 9);
    await symlink(join(srv.tmp, 'outside', 'evil'), join(srv.extraRoot, 'escape'));
    await symlink(join(srv.tmp, 'outside'), join(srv.extraRoot, 'escape-dir'));
    await mkdir(join(srv.extraRoot, 'not-a-model'));
    await writeFile(join(srv.extraRoot, 'not-a-model', 'readme.txt'), 'no config here');
  });

  const load = (name: unknown) => post(api('/api/models/load'), { name });

  it('`..`, absolute paths, `~`, backslashes and empty segments → 400 naming the rule', async () => {
    expectError(await load('../outside/evil'), 400, "'..' segments are not allowed");
    expectError(await load('tiny/../../outside/evil'), 400, "'..' segments are not allowed");
    expectError(await load('..'), 400, "'..' segments are not allowed");
    expectError(await load(join(srv.tmp, 'outside', 'evil')), 400, 'absolute paths are not allowed');
    expectError(await load('/etc/passwd'), 400, 'absolute paths are not allowed');
    expectError(await load('~/models'), 400, "'~' paths are not allowed");
    expectError(await load('a\\..\\b'), 400, 'backslashes are not allowed');
    expectError(await load('C:/models/x'), 400, 'absolute paths are not allowed');
    expectError(await load('tiny//x'), 400, "empty and '.' segments are not allowed");
    expectError(await load('./tiny'), 400, "empty and '.' segments are not allowed");
    expectError(await load('ti\u0000ny'), 400, 'control characters');
  });

  it('symlinks escaping the roots → 400; nothing outside is loaded', async () => {
    expectError(await load('escape'), 400, 'is a link that escapes the model roots');
    expectError(await load('escape-dir/evil'), 400, 'is a link that escapes the model roots');
    expect((await get(api('/api/model'))).body.name).toBe('tiny');
    // the listing does not follow them either
    const models = (await get(api('/api/models'))).body;
    expect(models.local.map((m: { name: string }) => m.name)).toEqual(['tiny']);
  });

  it('unknown names → 404; a directory without config.json → 400', async () => {
    expectError(await load('no-such-model'), 404, 'no model "no-such-model"', 'not a directory under the model roots');
    expectError(await load('not-a-model'), 400, 'is not a model directory (it has no config.json)');
    expectError(await load('some-org/some-model'), 404, 'not in the Hugging Face cache and the server is offline');
  });
});

describe('headers and resilience', () => {
  it('helmet headers on, no CORS headers (not even on a preflight)', async () => {
    const r = await get(api('/api/health'), { origin: 'http://evil.example' });
    expect(r.headers.get('x-content-type-options')).toBe('nosniff');
    expect(r.headers.get('content-security-policy')).toContain("default-src 'self'");
    expect(r.headers.get('access-control-allow-origin')).toBeNull();
    const pre = await fetch(api('/api/forward'), { method: 'OPTIONS', headers: { origin: 'http://evil.example', 'access-control-request-method': 'POST' } });
    expect(pre.headers.get('access-control-allow-origin')).toBeNull();
  });

  it('after all of the above the server still answers correctly', async () => {
    expect((await get(api('/api/health'))).body).toMatchObject({ status: 'ok', model: 'tiny', jobs: { running: 0, queued: 0 } });
    const r = await post(api('/api/tokenize'), { text: 'still here' });
    expect(r.status).toBe(200);
    expect(r.body.strTokens).toEqual([['<|endoftext|>', 'still', ' here']]);
  });
});
