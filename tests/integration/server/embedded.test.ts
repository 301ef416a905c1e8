/** The server with the embedded model (models/embedded) as `npm start` runs it: runs only once that checkpoint exists. */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HookedTransformer } from '../../../hooks/HookedTransformer.ts';
import { PACKAGE_MODELS_DIR } from '../../../server/config.ts';
import { get, maxAbsDiff, post, startServer, type TestServer } from './helpers.ts';

const EMBEDDED = join(PACKAGE_MODELS_DIR, 'embedded');

describe.skipIf(!existsSync(join(EMBEDDED, 'config.json')))('the embedded model', () => {
  let srv: TestServer;
  let ref: HookedTransformer;

  beforeAll(async () => {
    srv = await startServer({ model: 'embedded' }, { packageRoot: PACKAGE_MODELS_DIR });
    ref = await HookedTransformer.fromPretrained(EMBEDDED, { threads: 1 });
  });

  afterAll(async () => {
    await srv?.close();
    await ref?.dispose();
  });

  it('is the default model, listed as available, and its forward and attention equal the library\'s', async () => {
    expect((await get(`${srv.url}/api/health`)).body.model).toBe('embedded');
    expect((await get(`${srv.url}/api/models`)).body.embedded).toEqual({ name: 'embedded', available: true });
    const prompt = 'The embedded model says hello';
    const r = await post(`${srv.url}/api/forward`, { prompt, topK: 3 });
    const logits = await ref.forward(prompt);
    const pos = logits.shape[1];
    for (let p = 0; p < pos; p++) {
      const row = logits.index(0, 0).index(0, p);
      const top = row.logSoftmax(-1).topk(3, -1);
      expect(r.body.top[0][p].map((c: { token: number }) => c.token)).toEqual(Array.from(top.indices.data));
    }
    expect(Math.abs(r.body.loss - ((await ref.forward(prompt, { returnType: 'loss' })) as number))).toBeLessThan(1e-5);
    const a = await post(`${srv.url}/api/attention`, { prompt, layers: [0] });
    const [, cache] = await ref.runWithCache(prompt, { namesFilter: ['blocks.0.attn.hook_pattern'] });
    expect(maxAbsDiff(a.body.patterns[0].flat(2), cache.get('blocks.0.attn.hook_pattern').data)).toBeLessThan(1e-6);
  });
});
