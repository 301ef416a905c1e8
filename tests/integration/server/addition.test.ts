/**
 * The server and its analysis endpoints on the addition model (models/addition): a vocabulary of 13 characters that is not
 * GPT-2's. Listed by GET /api/models, its example inputs (the model card's `widget`, the model's own top next tokens) as
 * the dashboard's defaults, and every analysis a user runs on it (logit lens, attention, ablation, sweeps, patching, head
 * detection on random tokens of its vocabulary, circuits) answering with the library's values; IOI, which needs names,
 * is refused with a message.
 */
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HookedTransformer } from '../../../hooks/HookedTransformer.ts';
import { copyingScores } from '../../../hooks/circuits/index.ts';
import { PACKAGE_MODELS_DIR } from '../../../server/config.ts';
import { get, maxAbsDiff, post, startServer, type TestServer } from './helpers.ts';

const ADDITION = join(PACKAGE_MODELS_DIR, 'addition');
const PROMPT = '01234+56789='; // the model card's example (operands zero-padded to 5 digits): the answer starts 3 (058023 reversed: 320850)

describe('the addition model in the workbench', () => {
  let srv: TestServer;
  let ref: HookedTransformer;
  const api = (p: string) => `${srv.url}${p}`;

  beforeAll(async () => {
    srv = await startServer({ model: 'addition' }, { packageRoot: PACKAGE_MODELS_DIR });
    ref = await HookedTransformer.fromPretrained(ADDITION, { threads: 1 });
  });
  afterAll(async () => {
    await srv?.close();
    await ref?.dispose();
  });

  it('is listed among the local models, and GET /api/model gives its own example inputs as defaults', async () => {
    const models = (await get(api('/api/models'))).body;
    expect(models.local.map((m: { name: string }) => m.name)).toContain('addition');
    const m = (await get(api('/api/model'))).body;
    expect(m.config.d_vocab).toBe(13);
    expect(m.hasTokenizer).toBe(true);
    const logits = await ref.forward(PROMPT);
    const last = Array.from(logits.data.subarray(logits.data.length - 13));
    const order = last.map((v, i) => [v, i]).sort((a, b) => b[0] - a[0]).map(([, i]) => ref.tokenizer!.decode([i]));
    expect(m.defaults).toEqual({ prompt: PROMPT, target: order[0], contrast: order[1], tokens: ['0', '1', '2', '3', '4', '+'], leadingSpace: false });
    const tok = (await post(api('/api/tokenize'), { text: PROMPT })).body;
    expect(tok.strTokens[0]).toEqual(['<|endoftext|>', '0', '1', '2', '3', '4', '+', '5', '6', '7', '8', '9', '=']);
    // a character outside the vocabulary is the user's mistake (400, naming it), not a server error
    const bad = await post(api('/api/tokenize'), { text: ['12', '1 + 2'] });
    expect(bad.status).toBe(400);
    expect(bad.body.error).toMatch(/text\[1\]: encode: " " at index 1 of "1 \+ 2" is not in this tokenizer's vocabulary/);
  });

  it('logit lens and attention equal the library\'s', async () => {
    const r = await post(api('/api/logit-lens'), { prompt: PROMPT, topK: 3, targets: ['3', '4'] });
    expect(r.status, JSON.stringify(r.body)).toBe(200);
    // the final label is the model's own output: its target probability is the softmax of the library's logits
    const logits = await ref.forward(PROMPT);
    const last = Array.from(logits.data.subarray(logits.data.length - 13));
    const z = last.reduce((a, v) => a + Math.exp(v - Math.max(...last)), 0);
    const p3 = Math.exp(last[3] - Math.max(...last)) / z;
    const labels: string[] = r.body.labels;
    expect(labels.at(-1)).toBe('final_post');
    expect(Math.abs(r.body.targets[0].prob[labels.length - 1].at(-1) - p3)).toBeLessThan(1e-5);
    const [, cache] = await ref.runWithCache(PROMPT, { namesFilter: ['blocks.1.attn.hook_pattern'] });
    const a = await post(api('/api/attention'), { prompt: PROMPT, layers: [1] });
    expect(a.status).toBe(200);
    expect(maxAbsDiff(a.body.patterns[0].flat(2), cache.get('blocks.1.attn.hook_pattern').data)).toBeLessThan(1e-6);
    expect(r.body.targets.map((t: { str: string }) => t.str)).toEqual(['3', '4']);
    expect(r.body.strTokens[0]).toBe('<|endoftext|>');
  });

  it('ablation, a sweep over every head, and patching run on digit tokens', async () => {
    const metric = { kind: 'logit_diff', correct: '3', incorrect: '4' };
    const ab = await post(api('/api/ablate'), { prompt: PROMPT, ablations: [{ kind: 'head', layer: 1, head: 0 }], metric });
    expect(ab.status, JSON.stringify(ab.body)).toBe(200);
    const logits = await ref.forward(PROMPT);
    const V = 13;
    const last = logits.data.subarray(logits.data.length - V);
    expect(Math.abs(ab.body.clean - (last[3] - last[4]))).toBeLessThan(1e-4);
    const sw = await post(api('/api/ablate/sweep'), { prompt: PROMPT, metric });
    expect(sw.status).toBe(200);
    expect(sw.body.values).toHaveLength(ref.cfg.n_layers);
    // clean and corrupted differ in whether the units digits carry (8 + 9 vs 3 + 4): same length, same first answer digit
    const p = await post(api('/api/patch'), { clean: '12348+67899=7', corrupted: '12343+67894=7', metric: { kind: 'logit_diff', correct: '5', incorrect: '4' }, kinds: ['resid_pre', 'head_out_all_pos'] });
    expect(p.status, JSON.stringify(p.body)).toBe(200);
    expect(p.body.cleanStrTokens.at(-1)).toBe('7');
  });

  it('head detection on repeated random tokens of its own vocabulary, and the circuits views', async () => {
    const d = await post(api('/api/heads/detect'), { repeated: { seqLen: 8, batch: 2, seed: 1 } });
    expect(d.status, JSON.stringify(d.body)).toBe(200);
    for (const row of d.body.tokens) {
      expect(row[0]).toBe(12);
      expect(row.slice(1).every((t: number) => t >= 0 && t < 12)).toBe(true); // every id but BOS
      expect(row.slice(1, 9)).toEqual(row.slice(9));
    }
    const comp = await post(api('/api/circuits/composition'), { mode: 'K', baselineSamples: 10 });
    expect(comp.status).toBe(200);
    const copy = await post(api('/api/circuits/copying'), {});
    expect(copy.status).toBe(200);
    const want = await copyingScores(ref);
    expect(maxAbsDiff(copy.body.scores.flat(), want.data)).toBeLessThan(1e-4);
    const pastMlp0 = await post(api('/api/circuits/copying'), { pastMlp0: true });
    expect(pastMlp0.status).toBe(200);
    expect(pastMlp0.body.tokens).toBe(13); // the whole vocabulary (fewer than 1,024 tokens)
    const pos = await post(api('/api/circuits/positional'), { layer: 1, head: 0 });
    expect(pos.status).toBe(200);
    expect(pos.body.nPos).toBe(20); // min(n_ctx, 64)
    const top = await post(api('/api/circuits/top-copied'), { layer: 1, head: 0, tokens: ['1', '+'], k: 3 });
    expect(top.status, JSON.stringify(top.body)).toBe(200);
    expect(top.body.rows.map((r: { str: string }) => r.str)).toEqual(['1', '+']);
  });

  it('IOI, which needs names, is refused with a message naming the problem', async () => {
    const r = await post(api('/api/ioi'), { n: 4 });
    expect(r.status).toBe(400);
    expect(r.body.error).toMatch(/not in this tokenizer's vocabulary|single token/);
  });
});
