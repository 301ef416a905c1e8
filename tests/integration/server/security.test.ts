/**
 * The server answers only its own origin and reads only its own files (issue 17, findings 4–7): Host allowlist and
 * Origin check; model files that link out of the model roots refused, never echoed; a config.json with n_layer 1e9
 * refused at once; `__proto__` in select refused; a full queue → 429 with Retry-After; no absolute server path in any
 * error; a corrupt tokenizer.json named; CSV text cells that a spreadsheet would run as formulas neutralised.
 */
import { request } from 'node:http';
import { mkdir, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readSse, get, parseCsv, post, startServer, writeTinyModel, type TestServer } from './helpers.ts';

/** An HTTP request with any Host / Origin headers (fetch does not let a caller set Host). */
function raw(url: string, opts: { method?: string; headers?: Record<string, string>; body?: unknown }): Promise<{ status: number; body: any; headers: Record<string, unknown> }> {
  const u = new URL(url);
  const data = opts.body === undefined ? undefined : JSON.stringify(opts.body);
  return new Promise((resolve, reject) => {
    const req = request({
      host: '127.0.0.1', port: u.port, path: u.pathname + u.search, method: opts.method ?? 'GET',
      headers: { ...(data ? { 'content-type': 'application/json', 'content-length': Buffer.byteLength(data) } : {}), ...opts.headers },
    }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (c) => (text += c));
      res.on('end', () => resolve({ status: res.statusCode!, body: text.startsWith('{') ? JSON.parse(text) : text, headers: res.headers }));
    });
    req.on('error', reject);
    if (data) req.write(data);
    req.end();
  });
}

let srv: TestServer;
const api = (p: string) => `${srv.url}${p}`;
const port = () => new URL(srv.url).port;

beforeAll(async () => {
  srv = await startServer({ allowedHosts: ['lens.example.org'] });
});
afterAll(async () => srv?.close());

describe('Host and Origin', () => {
  it('a DNS-rebinding request (foreign Host, and its Origin) → 403 JSON, on reads and on /api/models/load alike', async () => {
    const evil = `rebind.attacker.example:${port()}`;
    const load = await raw(api('/api/models/load?stream=0'), {
      method: 'POST', headers: { host: evil, origin: `http://${evil}` }, body: { name: 'tiny' },
    });
    expect(load.status).toBe(403);
    expect(load.body.error).toBe(
      `Host "${evil}" is not allowed: this server answers only localhost, 127.0.0.1, [::1], lens.example.org (a protection against DNS rebinding); ` +
        'start it with --allowed-hosts NAME to serve another name',
    );
    for (const path of ['/api/health', '/api/model', '/', '/api/openapi.json']) expect((await raw(api(path), { headers: { host: evil } })).status).toBe(403);
  });

  it('localhost, 127.0.0.1, [::1] and --allowed-hosts names are served (any port, any case)', async () => {
    for (const host of [`localhost:${port()}`, `127.0.0.1:${port()}`, `[::1]:${port()}`, 'LOCALHOST', `lens.example.org:${port()}`, 'lens.example.org.']) {
      const r = await raw(api('/api/health'), { headers: { host } });
      expect(r.status, host).toBe(200);
    }
  });

  it('a state-changing request from another origin → 403; same origin, or no Origin (curl, scripts), passes; reads pass', async () => {
    const host = `127.0.0.1:${port()}`;
    const body = { text: 'hello' };
    for (const origin of [`http://localhost:${port()}`, 'http://127.0.0.1:5173', 'https://evil.example', 'null', `http://127.0.0.1:${port()}.evil.example`]) {
      const r = await raw(api('/api/tokenize'), { method: 'POST', headers: { host, origin }, body });
      expect(r.status, origin).toBe(403);
      expect(r.body.error).toContain(`Origin ${JSON.stringify(origin)} may not POST here`);
    }
    const del = await raw(api('/api/jobs/some-id'), { method: 'DELETE', headers: { host, origin: 'https://evil.example' } });
    expect(del.status).toBe(403);
    expect((await raw(api('/api/tokenize'), { method: 'POST', headers: { host, origin: `http://${host}` }, body })).status).toBe(200);
    expect((await raw(api('/api/tokenize'), { method: 'POST', headers: { host }, body })).status).toBe(200);
    const read = await raw(api('/api/health'), { headers: { host, origin: 'https://evil.example' } });
    expect(read.status).toBe(200);
    expect(read.headers['access-control-allow-origin']).toBeUndefined(); // and no CORS: the page cannot read it
  });

  it("--allowed-hosts '*' turns the Host check off (the Origin check stays)", async () => {
    const open = await startServer({ allowedHosts: ['*'] });
    try {
      const p = new URL(open.url).port;
      expect((await raw(`${open.url}/api/health`, { headers: { host: `anything.example:${p}` } })).status).toBe(200);
      const r = await raw(`${open.url}/api/tokenize`, { method: 'POST', headers: { host: `anything.example:${p}`, origin: 'http://other.example' }, body: { text: 'x' } });
      expect(r.status).toBe(403);
    } finally {
      await open.close();
    }
  });
});

describe('model files stay inside the model roots', () => {
  const SECRET = 'root:x:0:0:TOP-SECRET-CONTENT';
  let outside: string;
  const load = (name: string) => post(api('/api/models/load?stream=0'), { name });
  /** Every error of this block: no file contents, no absolute server path. */
  const clean = (msg: string) => {
    expect(msg).not.toContain('TOP-SECRET');
    expect(msg).not.toContain('root:x');
    expect(msg).not.toContain(srv.tmp);
    expect(msg).not.toContain(tmpdir());
  };

  beforeAll(async () => {
    outside = join(srv.tmp, 'outside');
    await mkdir(outside, { recursive: true });
    await writeFile(join(outside, 'passwd'), SECRET);
    await writeTinyModel(join(outside, 'model'), 5);
    // config.json → a secret file outside the roots
    await writeTinyModel(join(srv.extraRoot, 'evil-config'), 5);
    await writeFile(join(srv.extraRoot, 'evil-config', 'config.json.bak'), '');
    await rm(join(srv.extraRoot, 'evil-config', 'config.json'));
    await symlink(join(outside, 'passwd'), join(srv.extraRoot, 'evil-config', 'config.json'));
    // every file a link to a model outside the roots (the directory itself is a real directory inside)
    await mkdir(join(srv.extraRoot, 'evil-links'));
    for (const f of ['config.json', 'model.safetensors', 'tokenizer.json', 'tokenizer_config.json']) await symlink(join(outside, 'model', f), join(srv.extraRoot, 'evil-links', f));
    // the weights link outside, the config is real
    await writeTinyModel(join(srv.extraRoot, 'evil-weights'), 5);
    await rm(join(srv.extraRoot, 'evil-weights', 'model.safetensors'));
    await symlink(join(outside, 'model', 'model.safetensors'), join(srv.extraRoot, 'evil-weights', 'model.safetensors'));
    // a tokenizer.json that links outside
    await writeTinyModel(join(srv.extraRoot, 'evil-tokenizer'), 5);
    await rm(join(srv.extraRoot, 'evil-tokenizer', 'tokenizer.json'));
    await symlink(join(outside, 'passwd'), join(srv.extraRoot, 'evil-tokenizer', 'tokenizer.json'));
    // links that stay inside the roots are fine
    await mkdir(join(srv.extraRoot, 'linked-inside'));
    for (const f of ['config.json', 'model.safetensors']) await symlink(join(srv.packageRoot, 'tiny', f), join(srv.extraRoot, 'linked-inside', f));
    // a corrupt config.json and a corrupt tokenizer.json (no links)
    await writeTinyModel(join(srv.extraRoot, 'bad-json'), 5);
    await writeFile(join(srv.extraRoot, 'bad-json', 'config.json'), `${SECRET} {`);
    await writeTinyModel(join(srv.extraRoot, 'bad-tokenizer'), 5);
    await writeFile(join(srv.extraRoot, 'bad-tokenizer', 'tokenizer.json'), `{"model": ${SECRET}`);
  });

  it('a config.json that links to a file outside → 422 naming the file relative to its root, echoing nothing of it', async () => {
    const r = await load('evil-config');
    expect(r.status).toBe(422);
    expect(r.body.error).toBe('could not load evil-config: evil-config/config.json is a link to a file outside the model roots; only files inside a model root are read');
    clean(r.body.error);
  });

  it('weights, tokenizer files or a whole directory of links to files outside → 422; links inside the roots load', async () => {
    for (const [name, file] of [['evil-links', 'config.json'], ['evil-weights', 'model.safetensors'], ['evil-tokenizer', 'tokenizer.json']]) {
      const r = await load(name);
      expect(r.status, name).toBe(422);
      expect(r.body.error).toContain(`${name}/${file} is a link to a file outside the model roots`);
      clean(r.body.error);
    }
    const ok = await load('linked-inside');
    expect(ok.status, JSON.stringify(ok.body)).toBe(200);
    await load('tiny');
  });

  it('corrupt JSON: config.json and tokenizer.json are named, relative, and their contents never shown', async () => {
    const c = await load('bad-json');
    expect(c.status).toBe(422);
    expect(c.body.error).toBe('could not load bad-json: bad-json/config.json is not valid JSON');
    const t = await load('bad-tokenizer');
    expect(t.status).toBe(422);
    expect(t.body.error).toMatch(/^could not load bad-tokenizer: Gpt2Tokenizer: bad-tokenizer\/tokenizer\.json is not valid JSON/);
    for (const m of [c.body.error, t.body.error]) clean(m);
  });
});

describe('config.json sanity before anything is allocated', () => {
  async function withConfig(name: string, edit: (c: Record<string, unknown>) => void): Promise<void> {
    await writeTinyModel(join(srv.extraRoot, name), 6);
    const path = join(srv.extraRoot, name, 'config.json');
    const c = JSON.parse(await readFile(path, 'utf8'));
    edit(c);
    await writeFile(path, JSON.stringify(c));
  }

  it('n_layer: 1e9 → 422 at once naming the field and the bounds; a count that disagrees with the weights → 422 naming both', async () => {
    await withConfig('huge', (c) => (c.n_layer = 1e9));
    const t0 = Date.now();
    const r = await post(api('/api/models/load?stream=0'), { name: 'huge' });
    expect(r.status).toBe(422);
    expect(r.body.error).toBe("could not load huge: config.json: 'n_layer' is 1000000000, out of range (allowed 1..512)");
    expect(Date.now() - t0).toBeLessThan(10_000); // a runner start and a config read, not 37 s and 3.3 GB
    await withConfig('wrong-count', (c) => {
      c.n_layer = 5;
      c.vocab_size = 50000;
    });
    const w = await post(api('/api/models/load?stream=0'), { name: 'wrong-count' });
    expect(w.status).toBe(422);
    expect(w.body.error).toBe(
      'could not load wrong-count: config.json of wrong-count does not match its weights: n_layer is 5 but the weights hold 2 blocks (h.0 …); vocab_size is 50000 but wte.weight has 50257 rows',
    );
    expect((await get(api('/api/health'))).body).toMatchObject({ model: 'tiny', modelState: 'ready' });
  });
});

describe('requests', () => {
  it('__proto__ (and any other unknown key) inside select → 400 naming it, like everywhere else', async () => {
    const body = '{"prompt":"Hello world","hook":"blocks.0.hook_resid_pre","select":{"__proto__":{"pos":0},"batch":0}}';
    const r = await post(api('/api/activations'), body);
    expect(r.status).toBe(400);
    expect(r.body.details).toEqual([{ path: 'select', message: "unknown field(s) '__proto__'" }]);
    const top = await post(api('/api/forward'), '{"prompt":"x","__proto__":{"topK":3}}');
    expect(top.status).toBe(400);
    expect(top.body.details).toEqual([{ path: '', message: "unknown field(s) '__proto__'" }]);
    const nested = await post(api('/api/ablate'), '{"prompt":"a b c","ablations":[{"kind":"head","layer":0,"head":0}],"metric":{"kind":"loss","__proto__":{}}}');
    expect(nested.status).toBe(400);
    expect(nested.body.error).toContain("unknown field(s) '__proto__'");
  });

  it('a full queue → 429 with Retry-After (seconds), then jobs are taken again', async () => {
    const q = await startServer({ limits: { maxQueue: 1, maxBatch: 100, tokensPerStep: 64 } });
    try {
      const long = Array.from({ length: 12 }, (_, r) => Array.from({ length: 64 }, (_, i) => (r * 3 + i) % 50257));
      const running = fetch(`${q.url}/api/forward`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ prompt: long, topK: 1 }) });
      for (let i = 0; i < 100 && (await get(`${q.url}/api/jobs`)).body.jobs.length < 1; i++) await new Promise((r) => setTimeout(r, 10));
      const queued = post(`${q.url}/api/forward`, { prompt: [1, 2], topK: 1 });
      for (let i = 0; i < 100 && (await get(`${q.url}/api/jobs`)).body.jobs.length < 2; i++) await new Promise((r) => setTimeout(r, 10));
      const full = await post(`${q.url}/api/forward`, { prompt: [3, 4], topK: 1 });
      expect(full.status).toBe(429);
      expect(full.body.error).toBe('the job queue of model tiny is full (maxQueue = 1); try again later');
      expect(Number(full.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
      expect((await running).status).toBe(200);
      expect((await queued).status).toBe(200);
      expect((await post(`${q.url}/api/forward`, { prompt: [3, 4], topK: 1 })).status).toBe(200);
    } finally {
      await q.close();
    }
  });
});

describe('CSV', () => {
  it('text cells beginning with = + - @ get a leading apostrophe; numbers, negative ones included, stay numbers', async () => {
    const text = '=1+2 @SUM -3';
    const neutral = (s: string) => (/^[=+\-@\t\r]/.test(s) ? `'${s}` : s);
    const json = (await post(api('/api/forward'), { prompt: text, topK: 3 })).body;
    const res = await fetch(api('/api/forward?format=csv'), { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ prompt: text, topK: 3 }) });
    const rows = parseCsv(await res.text());
    const col = (name: string) => rows[0].indexOf(name);
    expect(rows.length).toBe(1 + json.tokens[0].length * 3);
    for (const r of rows.slice(1)) {
      const [p, k] = [Number(r[col('position')]), Number(r[col('rank')])];
      expect(r[col('str')]).toBe(neutral(json.strTokens[0][p]));
      expect(r[col('top_str')]).toBe(neutral(json.top[0][p][k].str));
      expect(Number(r[col('logit')])).toBe(json.top[0][p][k].logit); // a number, written as one (negative ones too)
    }
    const strs = rows.slice(1).map((r) => r[col('str')]);
    expect(strs).toContain("'=");
    expect(strs).toContain("'+");
    // Negative numbers stay numbers: the residual stream's values, as CSV.
    const act = parseCsv(await (await fetch(api('/api/activations?format=csv'), {
      method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ prompt: text, hook: 'blocks.0.hook_resid_pre', select: { batch: 0, pos: 1 } }),
    })).text());
    const values = act.slice(1).map((r) => r.at(-1)!);
    expect(values.filter((v) => v.startsWith('-')).length).toBeGreaterThan(0);
    for (const v of values) expect(Number.isFinite(Number(v))).toBe(true);
  });

  it('the IOI prompt text column is neutralised the same way; its numeric columns stay numbers', async () => {
    const prompts = [{ text: '=cmd|calc When Mary and John went to the store, John gave a drink to', io: 'Mary', s: 'John' }];
    const res = await fetch(api('/api/ioi?format=csv'), { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ prompts }) });
    const rows = parseCsv(await res.text());
    const promptRow = rows.find((r) => r[0] === 'prompt')!;
    expect(promptRow[2]).toBe(`'${prompts[0].text}`);
    expect(Number.isFinite(Number(promptRow.at(-1)))).toBe(true);
  });
});

describe('no absolute server path in an error', () => {
  it('a failed load, a bad request and an SSE error carry no path of the server', async () => {
    const sse = await readSse(await fetch(api('/api/models/load'), { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ name: 'bad-json' }) }));
    const answers = [
      JSON.stringify(sse),
      JSON.stringify((await post(api('/api/models/load?stream=0'), { name: 'evil-config' })).body),
      JSON.stringify((await post(api('/api/models/load?stream=0'), { name: '../etc' })).body),
      JSON.stringify((await post(api('/api/activations'), { prompt: 'x', hook: 'nope' })).body),
    ];
    for (const a of answers) {
      expect(a).not.toContain(srv.tmp);
      expect(a).not.toContain(tmpdir());
      expect(a).not.toContain(process.cwd());
    }
  });
});
