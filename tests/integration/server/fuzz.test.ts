/**
 * Fuzz: random malformed bodies to every POST endpoint of the OpenAPI document (1,000 each by default,
 * LENSBOARD_FUZZ_PER_ENDPOINT overrides) — every answer a JSON 4xx, no 5xx, no crash.
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { Rng } from '../../../hooks/random.ts';
import { get, post, startServer, type TestServer } from './helpers.ts';

let srv: TestServer;
const PER_ENDPOINT = Number(process.env.LENSBOARD_FUZZ_PER_ENDPOINT ?? 1000);
const IN_FLIGHT = 8;

beforeAll(async () => {
  srv = await startServer({ limits: { maxBodyBytes: 200_000, maxElements: 20_000 } });
});

afterAll(async () => {
  await srv?.close();
});

/** Values of the wrong kind (and some of the right kind with bad contents). */
function junkValue(rng: Rng, depth = 0): unknown {
  const pick = rng.int(0, depth > 2 ? 12 : 16);
  switch (pick) {
    case 0: return null;
    case 1: return rng.next() < 0.5;
    case 2: return rng.int(-1e6, 1e6);
    case 3: return (rng.next() - 0.5) * 1e300;
    case 4: return rng.next() * 3 - 1.5;
    case 5: return ['', ' ', '../', '/etc/passwd', '~', '\u0000', 'C:\\x', 'a/..', 'x'.repeat(rng.int(200, 400))][rng.int(0, 9)];
    case 6: return String.fromCharCode(...Array.from({ length: rng.int(0, 12) }, () => rng.int(0, 0xd7ff)));
    case 7: return ['NaN', 'Infinity', '-Infinity', '1e999', '0x10', '-0'][rng.int(0, 6)];
    case 8: return [-1, 50257, 1e9, 0.5, -0][rng.int(0, 5)];
    case 9: return Array.from({ length: rng.int(0, 3) }, () => rng.int(-5, 60000));
    case 10: return 'blocks.' + rng.int(-2, 5) + '.' + ['hook_resid_pre', 'attn.hook_z', 'nope', ''][rng.int(0, 4)];
    case 11: return { start: junkValue(rng, depth + 1), end: junkValue(rng, depth + 1) };
    case 12: return Array.from({ length: rng.int(0, 4) }, () => junkValue(rng, depth + 1));
    case 13: return Object.fromEntries(Array.from({ length: rng.int(0, 4) }, (_, i) => [['__proto__', 'constructor', 'pos', 'head', `k${i}`][rng.int(0, 5)], junkValue(rng, depth + 1)]));
    case 14: return Array.from({ length: rng.int(0, 3) }, () => Array.from({ length: rng.int(0, 3) }, () => junkValue(rng, depth + 2)));
    default: return Array(rng.int(40, 80)).fill(rng.int(0, 3));
  }
}

/** A raw body: broken JSON text, a non-object JSON value, or an object of the endpoint's fields (and extra ones) with junk values. */
function junkBody(rng: Rng, fields: string[]): string {
  const kind = rng.int(0, 10);
  if (kind === 0) {
    const valid = JSON.stringify({ [fields[0]]: 'x' });
    return valid.slice(0, rng.int(0, valid.length - 1)); // truncated JSON
  }
  if (kind === 1) return ['{', '}', '[', '{"a":}', '{,}', "{'a':1}", 'undefined', '{"a":1}}', '\u0000', 'NaN', '[1,]'][rng.int(0, 11)];
  if (kind === 2) return '['.repeat(rng.int(1000, 20000)) + ']'.repeat(rng.int(0, 20000)); // deep nesting
  if (kind === 3) return JSON.stringify(junkValue(rng, 3)); // a JSON value that is not an object (or is {...} with junk)
  const body: Record<string, unknown> = {};
  for (const f of fields) if (rng.next() < 0.7) body[f] = junkValue(rng);
  if (rng.next() < 0.3) body[['extra', '__proto__', 'Prompt', 'top_k'][rng.int(0, 4)]] = junkValue(rng);
  // keep it malformed even when the junk happens to fit: one field (any of them) gets a value no field accepts
  body[fields[rng.int(0, fields.length)]] = { not: 'valid' };
  return JSON.stringify(body);
}

it(`${PER_ENDPOINT} random malformed bodies per POST endpoint (${29 * PER_ENDPOINT} in all): every answer is a JSON 4xx, the server keeps serving`, async () => {
  const doc = (await get(`${srv.url}/api/openapi.json`)).body;
  const endpoints: { path: string; fields: string[] }[] = [];
  for (const [path, ops] of Object.entries<any>(doc.paths)) {
    if (!ops.post) continue;
    const schema = ops.post.requestBody.content['application/json'].schema;
    endpoints.push({ path, fields: Object.keys(schema.properties) });
  }
  expect(endpoints.map((e) => e.path).sort()).toEqual([
    '/api/ablate', '/api/ablate/sweep', '/api/activations', '/api/attention', '/api/attribution',
    '/api/attribution-patch', '/api/circuits/composition', '/api/circuits/copying', '/api/circuits/positional',
    '/api/circuits/top-copied', '/api/features', '/api/features/ablate', '/api/forward', '/api/graph',
    '/api/heads/detect', '/api/ioi', '/api/logit-lens', '/api/models/load', '/api/neurons/activations',
    '/api/neurons/examples', '/api/neurons/output', '/api/neurons/patch', '/api/neurons/top', '/api/patch',
    '/api/saes/eval', '/api/saes/load', '/api/saliency', '/api/steer', '/api/tokenize',
  ]);

  const rng = new Rng(20261129);
  const statuses = new Map<number, number>();
  const failures: string[] = [];
  let sent = 0;
  for (const ep of endpoints) {
    const bodies = Array.from({ length: PER_ENDPOINT }, () => junkBody(rng, ep.fields));
    let next = 0;
    const workerLoop = async () => {
      while (next < bodies.length) {
        const body = bodies[next++];
        const res = await fetch(`${srv.url}${ep.path}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body });
        const text = await res.text();
        sent++;
        statuses.set(res.status, (statuses.get(res.status) ?? 0) + 1);
        const okJson = (res.headers.get('content-type') ?? '').startsWith('application/json');
        let error: unknown;
        try {
          error = JSON.parse(text).error;
        } catch {
          error = undefined;
        }
        if (res.status >= 500 || res.status < 400 || !okJson || typeof error !== 'string' || error.length === 0) {
          if (failures.length < 10) failures.push(`${ep.path} ${res.status} ${body.slice(0, 200)} → ${text.slice(0, 200)}`);
        }
      }
    };
    await Promise.all(Array.from({ length: IN_FLIGHT }, workerLoop));
  }
  expect(failures).toEqual([]);
  expect(sent).toBe(PER_ENDPOINT * endpoints.length);
  expect([...statuses.keys()].every((s) => s >= 400 && s < 500)).toBe(true);

  // still serving, with the same model and correct answers
  const health = await get(`${srv.url}/api/health`);
  expect(health.body).toMatchObject({ status: 'ok', model: 'tiny', modelState: 'ready', jobs: { running: 0, queued: 0 } });
  const tok = await post(`${srv.url}/api/tokenize`, { text: 'after the storm' });
  expect(tok.body.strTokens).toEqual([['<|endoftext|>', 'after', ' the', ' storm']]);
});
