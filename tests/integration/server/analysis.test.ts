/** The analysis endpoints against the library called directly on the same tiny checkpoint (values within 1e-5), their CSV forms, and 4xx answers naming the field. */
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HookedTransformer } from '../../../hooks/HookedTransformer.ts';
import type { HookName } from '../../../hooks/hookPoints.ts';
import { lmCrossEntropyLoss } from '../../../hooks/loss.ts';
import type { Tensor } from '../../../hooks/tensor.ts';
import {
  ablationSpecs, detectHead, directLogitAttribution, generateRepeatedTokens, getActPatchAttnHeadOutAllPos, getActPatchAttnHeadOutByPos, getActPatchAttnOut,
  getActPatchMlpOut, getActPatchResidPre, headAblationSweep, ioiDataset, ioiHeadAttribution, logitDiff, logitLens, lossByPosition, normalisedMetric,
} from '../../../hooks/analysis/index.ts';
import {
  allCompositionScores, blockZeroMlpInputs, compositionBaseline, copyingScores, effectiveEmbedding, embeddingTokenSet, mlpLinearization, positionalPattern,
  previousTokenScoreFromWeights, previousTokenScoresFromWeights, topCopiedTokens,
} from '../../../hooks/circuits/index.ts';
import { AblateResponse } from '../../../services/analysis/ablate.ts';
import { AblateSweepResponse } from '../../../services/analysis/ablateSweep.ts';
import { HeadsDetectResponse } from '../../../services/analysis/headsDetect.ts';
import { IoiResponse } from '../../../services/analysis/ioi.ts';
import { LogitLensResponse } from '../../../services/analysis/logitLens.ts';
import { PatchResponse } from '../../../services/analysis/patch.ts';
import { CompositionResponse } from '../../../services/circuits/composition.ts';
import { CopyingResponse } from '../../../services/circuits/copying.ts';
import { PositionalResponse } from '../../../services/circuits/positional.ts';
import { TopCopiedResponse } from '../../../services/circuits/topCopied.ts';
import { expect400, maxAbsDiff, post, readSse, startServer, type TestServer, postCsv } from './helpers.ts';

let srv: TestServer;
let ref: HookedTransformer;
const api = (p: string) => `${srv.url}${p}`;
const TOL = 1e-5;
const IOI = 'When Mary and John went to the store, John gave a drink to';
const IOI_CORRUPT = 'When Paul and Lisa went to the store, Lisa gave a drink to';

beforeAll(async () => {
  srv = await startServer();
  ref = await HookedTransformer.fromPretrained(join(srv.packageRoot, 'tiny'), { threads: 1 });
});

afterAll(async () => {
  await srv?.close();
  await ref?.dispose();
});

const csv = (path: string, body: unknown) => postCsv(api(path), body);

const flat = (x: unknown): number[] => (Array.isArray(x) ? x.flat(Infinity as 1) : [x]) as number[];

describe('POST /api/logit-lens', () => {
  it('top-k and each target\'s prob / rank / logit equal logitLens (inclMid); CSV has one row per label, position and candidate', async () => {
    const body = { prompt: IOI, inclMid: true, topK: 3, targets: [' Mary', ' John'] };
    const r = await post(api('/api/logit-lens'), body);
    expect(r.status, JSON.stringify(r.body)).toBe(200);
    LogitLensResponse.parse(r.body);
    const tokens = ref.toTokens(IOI)[0];
    expect(r.body.tokens).toEqual(tokens);
    expect(r.body.strTokens).toEqual(ref.toStrTokens(IOI));
    expect(r.body.labels).toEqual(['0_pre', '0_mid', '1_pre', '1_mid', 'final_post']);
    for (const [i, target] of [' Mary', ' John'].entries()) {
      const lib = await logitLens(ref, IOI, { inclMid: true, topK: 3, target });
      expect(r.body.positions).toEqual(lib.positions);
      if (i === 0) {
        const got = r.body.top.flat(2);
        expect(got.map((c: { token: number }) => c.token)).toEqual(Array.from(lib.topTokens.data));
        expect(maxAbsDiff(got.map((c: { prob: number }) => c.prob), lib.topProbs.data)).toBeLessThan(TOL);
        expect(got[0].str).toBe(ref.toStrTokens([got[0].token])[0]);
      }
      const t = r.body.targets[i];
      expect(t.token).toBe(ref.toSingleToken(target));
      expect(t.str).toBe(target);
      expect(maxAbsDiff(t.prob.flat(), lib.target!.prob.data)).toBeLessThan(TOL);
      expect(t.rank.flat()).toEqual(Array.from(lib.target!.rank.data));
      expect(maxAbsDiff(t.logit.flat(), lib.target!.logit.data)).toBeLessThan(TOL);
    }
    const rows = await csv('/api/logit-lens', body);
    expect(rows[0]).toEqual(['label', 'position', 'token', 'str', 'kind', 'rank', 'candidate', 'candidate_str', 'prob', 'logit']);
    expect(rows.length).toBe(1 + 5 * tokens.length * (3 + 2));
    const mary = rows.find((row) => row[0] === 'final_post' && row[1] === String(tokens.length - 1) && row[4] === 'target' && row[7] === ' Mary')!;
    expect(Number(mary[9])).toBe(r.body.targets[0].logit[4][tokens.length - 1]);
  });

  it('without targets: applyLn false equals the library; targets is empty', async () => {
    const r = await post(api('/api/logit-lens'), { prompt: [50256, 10, 20, 30], applyLn: false, topK: 2 });
    const lib = await logitLens(ref, [50256, 10, 20, 30], { applyLn: false, topK: 2 });
    expect(r.body.labels).toEqual(['0_pre', '1_pre', 'final_post']);
    expect(r.body.targets).toEqual([]);
    expect(maxAbsDiff(r.body.top.flat(2).map((c: { prob: number }) => c.prob), lib.topProbs.data)).toBeLessThan(TOL);
  });
});

describe('POST /api/ablate', () => {
  it('head + neuron + position, mean over reference prompts, logit_diff: clean and ablated equal the library\'s', async () => {
    const reference = ['The cat sat on the mat', 'A completely different sentence here'];
    const body = {
      prompt: IOI, mode: 'mean', reference,
      ablations: [{ kind: 'head', layer: 0, head: 1 }, { kind: 'neuron', layer: 1, neuron: 5 }, { kind: 'position', layer: 1, position: 3 }],
      metric: { kind: 'logit_diff', correct: ' Mary', incorrect: ' John' },
    };
    const r = await post(api('/api/ablate'), body);
    expect(r.status, JSON.stringify(r.body)).toBe(200);
    AblateResponse.parse(r.body);
    const tokens = ref.toTokens(IOI);
    const specs = await ablationSpecs(ref, tokens, { heads: [{ layer: 0, head: 1 }], neurons: [{ layer: 1, neuron: 5 }], positions: [{ layer: 1, pos: 3 }] }, { kind: 'mean', reference });
    const opts = { correct: ref.toSingleToken(' Mary'), incorrect: ref.toSingleToken(' John') };
    const clean = logitDiff(await ref.forward(tokens), opts);
    const ablated = logitDiff(await ref.forward(tokens, { interventions: specs }), opts);
    expect(Math.abs(r.body.clean - clean)).toBeLessThan(TOL);
    expect(Math.abs(r.body.ablated - ablated)).toBeLessThan(TOL);
    expect(Math.abs(r.body.delta - (ablated - clean))).toBeLessThan(TOL);
    expect(Math.abs(ablated - clean)).toBeGreaterThan(1e-4); // the ablation does something
    expect(r.body.metric).toMatchObject({ kind: 'logit_diff', tokens: [opts.correct, opts.incorrect], position: tokens[0].length - 1 });
    const rows = await csv('/api/ablate', body);
    expect(rows[0]).toEqual(['metric', 'clean', 'ablated', 'delta']);
    expect(rows.length).toBe(2);
    expect(Number(rows[1][2])).toBe(r.body.ablated);
  });

  it('zero ablation with the loss metric, and resample with the prob metric, equal the library\'s', async () => {
    const tokens = ref.toTokens(IOI);
    const loss = await post(api('/api/ablate'), { prompt: IOI, ablations: [{ kind: 'head', layer: 1, head: 2 }], metric: { kind: 'loss' } });
    const zSpecs = await ablationSpecs(ref, tokens, { heads: [{ layer: 1, head: 2 }] }, { kind: 'zero' });
    expect(Math.abs(loss.body.clean - lmCrossEntropyLoss(await ref.forward(tokens), tokens))).toBeLessThan(TOL);
    expect(Math.abs(loss.body.ablated - lmCrossEntropyLoss(await ref.forward(tokens, { interventions: zSpecs }), tokens))).toBeLessThan(TOL);

    const reference = [IOI_CORRUPT, 'When Anna and Kate went to the park, Kate gave a ball to'];
    const prob = await post(api('/api/ablate'), {
      prompt: IOI, mode: 'resample', reference, seed: 4, ablations: [{ kind: 'head', layer: 0, head: 3 }], metric: { kind: 'prob', token: ' Mary', position: -1 },
    });
    expect(prob.status, JSON.stringify(prob.body)).toBe(200);
    const rSpecs = await ablationSpecs(ref, tokens, { heads: [{ layer: 0, head: 3 }] }, { kind: 'resample', reference, seed: 4 });
    const mary = ref.toSingleToken(' Mary');
    const p = (logits: Tensor) => logits.index(0, 0).index(0, tokens[0].length - 1).softmax(-1).data[mary];
    expect(Math.abs(prob.body.clean - p(await ref.forward(tokens)))).toBeLessThan(1e-6);
    expect(Math.abs(prob.body.ablated - p(await ref.forward(tokens, { interventions: rSpecs })))).toBeLessThan(1e-6);
  });

  it('bad input → 400 naming the field', async () => {
    const base = { prompt: IOI, ablations: [{ kind: 'head', layer: 0, head: 0 }], metric: { kind: 'loss' } };
    expect400(await post(api('/api/ablate'), { ...base, ablations: [{ kind: 'head', layer: 2, head: 0 }] }), 'ablations[0].layer: 2 is out of range', 'n_layers = 2');
    expect400(await post(api('/api/ablate'), { ...base, ablations: [{ kind: 'neuron', layer: 0, neuron: 64 }] }), 'ablations[0].neuron', 'd_mlp = 64');
    expect400(await post(api('/api/ablate'), { ...base, ablations: [{ kind: 'position', layer: 0, position: 99 }] }), 'ablations[0].position');
    expect400(await post(api('/api/ablate'), { ...base, ablations: [{ kind: 'mlp', layer: 0 }] }), 'ablations[0]');
    expect400(await post(api('/api/ablate'), { ...base, metric: { kind: 'logit_diff', correct: ' Maryland is', incorrect: ' John' } }), 'metric.correct', 'not a single token');
    expect400(await post(api('/api/ablate'), { ...base, mode: 'resample', reference: ['too short'] }), 'reference: resample needs reference prompts');
    expect400(await post(api('/api/ablate'), { ...base, mode: 'median' }), 'mode');
  });
});

describe('POST /api/ablate/sweep', () => {
  it('the [layer][head] grid equals headAblationSweep; progress per pass over SSE; CSV one row per head', async () => {
    const body = { prompt: IOI, layers: [1], metric: { kind: 'logit_diff', correct: ' Mary', incorrect: ' John' }, chunkSize: 1 };
    const r = await post(api('/api/ablate/sweep'), body);
    expect(r.status, JSON.stringify(r.body)).toBe(200);
    AblateSweepResponse.parse(r.body);
    const tokens = ref.toTokens(IOI);
    const opts = { correct: ref.toSingleToken(' Mary'), incorrect: ref.toSingleToken(' John') };
    const heads = [0, 1, 2, 3].map((head) => ({ layer: 1, head }));
    const lib = await headAblationSweep(ref, tokens, (l) => logitDiff(l, opts), { heads });
    const clean = logitDiff(await ref.forward(tokens), opts);
    expect(r.body.layers).toEqual([1]);
    expect(r.body.heads).toEqual([0, 1, 2, 3]);
    expect(Math.abs(r.body.clean - clean)).toBeLessThan(TOL);
    expect(maxAbsDiff(r.body.values[0], lib.index(0, 1).data)).toBeLessThan(TOL);
    expect(maxAbsDiff(r.body.delta[0], Array.from(lib.index(0, 1).data, (v) => v - clean))).toBeLessThan(TOL);

    const res = await fetch(api('/api/ablate/sweep'), { method: 'POST', headers: { 'content-type': 'application/json', accept: 'text/event-stream' }, body: JSON.stringify(body) });
    const events = await readSse(res);
    expect(events[0]).toMatchObject({ event: 'job', data: { kind: 'ablateSweep' } });
    const progress = events.filter((e) => e.event === 'progress');
    expect(progress.length).toBeGreaterThanOrEqual(1);
    expect(progress.at(-1)!.data).toMatchObject({ done: 4, total: 4, message: 'heads' });
    expect(events.at(-1)).toEqual({ event: 'result', data: r.body });

    const rows = await csv('/api/ablate/sweep', { ...body, layers: undefined });
    expect(rows[0]).toEqual(['layer', 'head', 'value', 'delta']);
    expect(rows.length).toBe(1 + 8);
    expect(rows[1 + 4 + 2].slice(0, 2)).toEqual(['1', '2']);
    expect(Math.abs(Number(rows[1 + 4 + 2][2]) - lib.get(1, 2))).toBeLessThan(TOL);
  });

  it('mean ablation over a reference with the loss metric equals the library; bad layers → 400', async () => {
    const reference = ['The cat sat on the mat', IOI_CORRUPT];
    const r = await post(api('/api/ablate/sweep'), { prompt: IOI, mode: 'mean', reference, metric: { kind: 'loss' } });
    const tokens = ref.toTokens(IOI);
    const lib = await headAblationSweep(ref, tokens, (l) => lmCrossEntropyLoss(l, tokens), { kind: 'mean', reference });
    expect(maxAbsDiff(r.body.values.flat(), lib.data)).toBeLessThan(TOL);
    expect400(await post(api('/api/ablate/sweep'), { prompt: IOI, metric: { kind: 'loss' }, layers: [0, 7] }), 'layers[1]: 7 is out of range');
    expect400(await post(api('/api/ablate/sweep'), { prompt: IOI, metric: { kind: 'loss' }, layers: [0, 0] }), 'layers: each layer may be listed once');
    expect400(await post(api('/api/ablate/sweep'), { prompt: IOI, metric: { kind: 'prob' } }), 'metric');
  });
});

describe('POST /api/patch', () => {
  it('every kind equals the library\'s getActPatch* with TL\'s normalisation; CSV one row per patch', async () => {
    const body = { clean: IOI, corrupted: IOI_CORRUPT, metric: { kind: 'logit_diff', correct: ' Mary', incorrect: ' John' } };
    const r = await post(api('/api/patch'), body);
    expect(r.status, JSON.stringify(r.body)).toBe(200);
    PatchResponse.parse(r.body);
    const clean = ref.toTokens(IOI);
    const corrupted = ref.toTokens(IOI_CORRUPT);
    const opts = { correct: ref.toSingleToken(' Mary'), incorrect: ref.toSingleToken(' John') };
    const names = [0, 1].flatMap((l) => ['hook_resid_pre', 'hook_attn_out', 'hook_mlp_out', 'attn.hook_z'].map((a) => `blocks.${l}.${a}` as HookName));
    const [cleanLogits, cache] = await ref.runWithCache(clean, { namesFilter: names });
    const cleanValue = logitDiff(cleanLogits, opts);
    const corruptedValue = logitDiff(await ref.forward(corrupted), opts);
    expect(Math.abs(r.body.clean - cleanValue)).toBeLessThan(TOL);
    expect(Math.abs(r.body.corrupted - corruptedValue)).toBeLessThan(TOL);
    const metric = normalisedMetric((l) => logitDiff(l, opts), cleanValue, corruptedValue);
    const fns = [getActPatchResidPre, getActPatchAttnOut, getActPatchMlpOut, getActPatchAttnHeadOutAllPos, getActPatchAttnHeadOutByPos];
    expect(r.body.results.map((x: { kind: string }) => x.kind)).toEqual(['resid_pre', 'attn_out', 'mlp_out', 'head_out_all_pos', 'head_out_by_pos']);
    expect(r.body.results.map((x: { dims: string[] }) => x.dims.join(','))).toEqual(['layer,pos', 'layer,pos', 'layer,pos', 'layer,head', 'layer,pos,head']);
    const pos = clean[0].length;
    for (const [i, fn] of fns.entries()) {
      const lib = await fn(ref, corrupted, cache, metric);
      expect(flat(r.body.results[i].values).length).toBe(lib.data.length);
      expect(maxAbsDiff(flat(r.body.results[i].values), lib.data)).toBeLessThan(TOL);
    }
    // Normalisation invariant: patching layer 0's resid_pre where both prompts have the same token changes nothing → 0 (the corrupted run)
    const same = clean[0].flatMap((t, p) => (t === corrupted[0][p] ? [p] : []));
    expect(same.length).toBeGreaterThan(5);
    for (const p of same) expect(Math.abs(r.body.results[0].values[0][p])).toBeLessThan(1e-4);
    const rows = await csv('/api/patch', { ...body, kinds: ['head_out_all_pos', 'resid_pre'] });
    expect(rows[0]).toEqual(['kind', 'layer', 'pos', 'head', 'value']);
    expect(rows.length).toBe(1 + 2 * 4 + 2 * pos);
    expect(rows[1].slice(0, 4)).toEqual(['head_out_all_pos', '0', '', '0']);
    expect(Number(rows[1][4])).toBe(r.body.results[3].values[0][0]);
  });

  it('prompts of different token lengths → 400 stating both; a bad kind → 400', async () => {
    const r = await post(api('/api/patch'), { clean: IOI, corrupted: 'When Paul went', metric: { kind: 'logit_diff', correct: ' Mary', incorrect: ' John' } });
    expect400(r, 'corrupted: the clean prompt has 15 tokens and the corrupted prompt 4');
    expect400(await post(api('/api/patch'), { clean: IOI, corrupted: IOI_CORRUPT, metric: { kind: 'logit_diff', correct: ' Mary', incorrect: ' John' }, kinds: ['q'] }), 'kinds[0]');
    expect400(await post(api('/api/patch'), { clean: IOI, corrupted: IOI, metric: { kind: 'logit_diff', correct: ' Mary', incorrect: ' John' } }), 'metric: the clean and corrupted runs give');
  });
});

describe('POST /api/heads/detect', () => {
  it('scores on a prompt equal detectHead for each kind; CSV one row per kind and head', async () => {
    const prompt = 'the cat sat on the mat and the cat sat on the mat';
    const r = await post(api('/api/heads/detect'), { prompt });
    expect(r.status, JSON.stringify(r.body)).toBe(200);
    HeadsDetectResponse.parse(r.body);
    const tokens = ref.toTokens(prompt)[0];
    expect(r.body.tokens).toEqual([tokens]);
    expect(r.body.lossByPosition).toBeNull();
    for (const [i, name] of (['previous_token_head', 'duplicate_token_head', 'induction_head'] as const).entries()) {
      expect(r.body.scores[i].kind).toBe(name.replace('_head', ''));
      expect(maxAbsDiff(r.body.scores[i].values.flat(), (await detectHead(ref, tokens, name)).data)).toBeLessThan(TOL);
    }
    const rows = await csv('/api/heads/detect', { prompt, kinds: ['induction'] });
    expect(rows[0]).toEqual(['kind', 'layer', 'head', 'position', 'value']);
    expect(rows.length).toBe(1 + 8);
  });

  it('repeated random tokens: scores averaged over the batch and loss by position equal the library\'s', async () => {
    const repeated = { seqLen: 10, batch: 2, seed: 3 };
    const r = await post(api('/api/heads/detect'), { repeated, kinds: ['previous_token', 'induction'] });
    expect(r.status, JSON.stringify(r.body)).toBe(200);
    const tokens = generateRepeatedTokens(ref.cfg, repeated);
    expect(r.body.tokens).toEqual(tokens);
    expect(maxAbsDiff(r.body.scores[1].values.flat(), (await detectHead(ref, tokens, 'induction_head')).data)).toBeLessThan(TOL);
    const loss = await lossByPosition(ref, tokens);
    expect(maxAbsDiff(r.body.lossByPosition.loss, loss.data)).toBeLessThan(TOL);
    const mean = (xs: ArrayLike<number>) => Array.from(xs).reduce((a, b) => a + b, 0) / xs.length;
    expect(Math.abs(r.body.lossByPosition.firstRepeat - mean(loss.data.subarray(0, 10)))).toBeLessThan(TOL);
    expect(Math.abs(r.body.lossByPosition.secondRepeat - mean(loss.data.subarray(10, 20)))).toBeLessThan(TOL);
    const rows = await csv('/api/heads/detect', { repeated, kinds: ['previous_token'] });
    expect(rows.length).toBe(1 + 8 + 20);
    expect(rows.at(-1)!.slice(0, 4)).toEqual(['loss', '', '', '19']);
  });

  it('bad input → 400 naming the field', async () => {
    expect400(await post(api('/api/heads/detect'), { prompt: 'x y', repeated: { seqLen: 3 } }), 'prompt: give exactly one of prompt and repeated');
    expect400(await post(api('/api/heads/detect'), {}), 'give exactly one of prompt and repeated');
    expect400(await post(api('/api/heads/detect'), { repeated: { seqLen: 40 } }), 'repeated.seqLen', 'n_ctx = 64');
    expect400(await post(api('/api/heads/detect'), { prompt: 'x y', kinds: ['copying'] }), 'kinds[0]');
  });
});

describe('POST /api/ioi', () => {
  it('a generated dataset: per-prompt logit difference, accuracy and head attribution equal ioiDataset + ioiHeadAttribution', async () => {
    const r = await post(api('/api/ioi'), { n: 6, seed: 2 });
    expect(r.status, JSON.stringify(r.body)).toBe(200);
    IoiResponse.parse(r.body);
    const ds = ioiDataset(ref.tokenizer!, { n: 6, seed: 2, order: 'mixed' });
    const dla = await ioiHeadAttribution(ref, ds);
    expect(r.body.prompts.map((p: { text: string; io: string; s: string }) => [p.text, p.io, p.s])).toEqual(ds.prompts.map((p) => [p.prompt, p.io, p.s]));
    expect(maxAbsDiff(r.body.prompts.map((p: { logitDiff: number }) => p.logitDiff), dla.logitDiff.data)).toBeLessThan(TOL);
    expect(Math.abs(r.body.meanLogitDiff - dla.mean.logitDiff)).toBeLessThan(TOL);
    expect(r.body.accuracy).toBe(Array.from(dla.logitDiff.data).filter((d) => d > 0).length / 6);
    expect(maxAbsDiff(r.body.headAttribution.flat(), dla.mean.heads.data)).toBeLessThan(TOL);
    const rows = await csv('/api/ioi', { n: 6, seed: 2 });
    expect(rows[0]).toEqual(['kind', 'index', 'text', 'io', 's', 'layer', 'head', 'value']);
    expect(rows.length).toBe(1 + 6 + 8);
  });

  it('given prompts (different lengths) equal directLogitAttribution; a multi-token name → 400 naming it', async () => {
    const prompts = [{ text: IOI, io: 'Mary', s: 'John' }, { text: 'When Tom and Anna went to the park, Anna gave a ball to', io: 'Tom', s: 'Anna' }, { text: 'Then Lisa and Paul talked, Paul thanked', io: 'Lisa', s: 'Paul' }];
    const r = await post(api('/api/ioi'), { prompts });
    expect(r.status, JSON.stringify(r.body)).toBe(200);
    const { tokens, attentionMask } = ref.tokenizer!.toTokens(prompts.map((p) => p.text), { prependBos: true, paddingSide: 'right' });
    const dla = await directLogitAttribution(ref, tokens, {
      correct: prompts.map((p) => ref.toSingleToken(` ${p.io}`)), incorrect: prompts.map((p) => ref.toSingleToken(` ${p.s}`)),
      positions: attentionMask.map((row) => row.reduce((a, b) => a + b, 0) - 1), attentionMask,
    });
    expect(maxAbsDiff(r.body.prompts.map((p: { logitDiff: number }) => p.logitDiff), dla.logitDiff.data)).toBeLessThan(TOL);
    expect(maxAbsDiff(r.body.headAttribution.flat(), dla.mean.heads.data)).toBeLessThan(TOL);
    expect400(await post(api('/api/ioi'), { prompts: [{ text: IOI, io: 'Maryanne Smithers', s: 'John' }] }), 'prompts[0].io', 'single tokens');
    expect400(await post(api('/api/ioi'), { n: 0 }), 'n:');
  });
});

describe('POST /api/circuits/*', () => {
  it('composition (K), copying, positional and top-copied equal the circuits library; CSV row counts', async () => {
    const comp = await post(api('/api/circuits/composition'), { mode: 'K', baselineSamples: 20, seed: 1 });
    expect(comp.status, JSON.stringify(comp.body)).toBe(200);
    CompositionResponse.parse(comp.body);
    expect(maxAbsDiff(flat(comp.body.scores), (await allCompositionScores(ref, 'K')).data)).toBeLessThan(TOL);
    const base = compositionBaseline(ref, 'K', { samples: 20, seed: 1 });
    expect(comp.body.baseline).toEqual({ mean: base.mean, std: base.std, samples: 20 });
    expect((await csv('/api/circuits/composition', { mode: 'V', baselineSamples: 2 })).length).toBe(1 + 8 * 8);

    const cop = await post(api('/api/circuits/copying'), {});
    CopyingResponse.parse(cop.body);
    expect(maxAbsDiff(cop.body.scores.flat(), (await copyingScores(ref)).data)).toBeLessThan(TOL);
    expect((await csv('/api/circuits/copying', {}))[0]).toEqual(['layer', 'head', 'score']);

    const posn = await post(api('/api/circuits/positional'), { layer: 1, head: 2, nPos: 16 });
    PositionalResponse.parse(posn.body);
    expect(maxAbsDiff(posn.body.pattern.flat(), positionalPattern(ref, 1, 2, { nPos: 16 }).data)).toBeLessThan(TOL);
    expect(Math.abs(posn.body.previousTokenScore - previousTokenScoreFromWeights(ref, 1, 2, { nPos: 16 }))).toBeLessThan(TOL);
    expect(maxAbsDiff(posn.body.previousTokenScores.flat(), previousTokenScoresFromWeights(ref, { nPos: 16 }).data)).toBeLessThan(TOL);
    expect((await csv('/api/circuits/positional', { layer: 0, head: 0, nPos: 5 })).length).toBe(1 + 25);

    const top = await post(api('/api/circuits/top-copied'), { layer: 0, head: 3, tokens: [' Mary', 50], k: 4 });
    TopCopiedResponse.parse(top.body);
    const lib = topCopiedTokens(ref, 0, 3, [ref.toSingleToken(' Mary'), 50], 4);
    expect(top.body.rows.map((x: { token: number }) => x.token)).toEqual([ref.toSingleToken(' Mary'), 50]);
    top.body.rows.forEach((row: { top: { token: number; value: number; str: string }[] }, i: number) => {
      expect(row.top.map((t) => t.token)).toEqual(lib[i].ids);
      expect(maxAbsDiff(row.top.map((t) => t.value), lib[i].values)).toBeLessThan(TOL);
      expect(row.top[0].str).toBe(ref.toStrTokens([lib[i].ids[0]])[0]);
    });
    const rows = await csv('/api/circuits/top-copied', { layer: 0, head: 3, tokens: [' Mary', 50], k: 4 });
    expect(rows[0]).toEqual(['source_token', 'source_str', 'rank', 'token', 'str', 'value']);
    expect(rows.length).toBe(1 + 2 * 4);
  });

  it('pastMlp0 (composition, copying, top-copied) equals the library read past block 0\'s MLP over embeddingTokenSet', async () => {
    const tokens = embeddingTokenSet(ref);
    const M0 = await mlpLinearization(ref, 0, blockZeroMlpInputs(ref, tokens));
    const comp = await post(api('/api/circuits/composition'), { mode: 'K', baselineSamples: 20, seed: 1, pastMlp0: true });
    expect(comp.status, JSON.stringify(comp.body)).toBe(200);
    CompositionResponse.parse(comp.body);
    expect(comp.body.pastMlp0).toBe(true);
    const lib = await allCompositionScores(ref, 'K', { outputMaps: [M0] });
    expect(maxAbsDiff(flat(comp.body.scores), lib.data)).toBeLessThan(TOL);
    expect(maxAbsDiff(lib.data, (await allCompositionScores(ref, 'K')).data)).toBeGreaterThan(1e-3); // the map really changes the scores
    const base = compositionBaseline(ref, 'K', { samples: 20, seed: 1, outputMap: M0 });
    expect(comp.body.baseline).toEqual({ mean: base.mean, std: base.std, samples: 20 });

    const cop = await post(api('/api/circuits/copying'), { pastMlp0: true });
    CopyingResponse.parse(cop.body);
    expect(cop.body.tokens).toBe(tokens.length);
    const emb = await effectiveEmbedding(ref, tokens);
    expect(maxAbsDiff(cop.body.scores.flat(), (await copyingScores(ref, { embedding: emb })).data)).toBeLessThan(TOL);

    const ids = [ref.toSingleToken(' Mary'), 50];
    const top = await post(api('/api/circuits/top-copied'), { layer: 1, head: 1, tokens: [' Mary', 50], k: 4, pastMlp0: true });
    TopCopiedResponse.parse(top.body);
    const want = topCopiedTokens(ref, 1, 1, ids, 4, { embedding: await effectiveEmbedding(ref, ids) });
    top.body.rows.forEach((row: { top: { token: number; value: number }[] }, i: number) => {
      expect(row.top.map((t) => t.token)).toEqual(want[i].ids);
      expect(maxAbsDiff(row.top.map((t) => t.value), want[i].values)).toBeLessThan(TOL);
    });
    expect400(await post(api('/api/circuits/copying'), { pastMlp0: 'yes' }), 'pastMlp0');
  });

  it('bad input → 400 naming the field', async () => {
    expect400(await post(api('/api/circuits/composition'), { mode: 'X' }), 'mode');
    expect400(await post(api('/api/circuits/positional'), { layer: 0, head: 4 }), 'head: 4 is out of range', 'n_heads = 4');
    expect400(await post(api('/api/circuits/positional'), { layer: 0, head: 0, nPos: 65 }), 'nPos: 65 exceeds', 'n_ctx = 64');
    expect400(await post(api('/api/circuits/top-copied'), { layer: 0, head: 0, tokens: [50257] }), 'tokens[0]: token id 50257 is out of range');
    expect400(await post(api('/api/circuits/copying'), { extra: 1 }), "unknown field(s) 'extra'");
    expect400(await post(api('/api/circuits/copying'), ''), 'the request body is empty');
    expect400(await post(api('/api/ioi'), ''), 'the request body is empty');
  });
});
