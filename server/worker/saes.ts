/** Job handlers of the SAE endpoints: the SAEs of the model, a prompt's features, a feature's page, steering, feature ablation, evaluation. */
import type { HookedTransformer } from '../../hooks/HookedTransformer.ts';
import { saeHook, type HookName, type ModelHookName } from '../../hooks/hookPoints.ts';
import { corpusContexts, DEFAULT_CORPUS, type CorpusSplit } from '../../hooks/sae/corpus.ts';
import type { Tensor } from '../../hooks/tensor.ts';
import { logitWeights } from '../../hooks/sae/dashboard.ts';
import { evaluateSae } from '../../hooks/sae/evaluate.ts';
import { ablateFeatures, steerFeatures } from '../../hooks/sae/features.ts';
import type {
  FeatureAblateRequest, FeatureAblateResult, FeatureResult, FeaturesRequest, FeaturesResult, SaeEvalRequest, SaeEvalResult, SaeInfoResult, SaeListResult,
  SaeLoadRequest, SteerRequest, SteerResult,
} from '../saeSchemas.ts';
import { buildMetric, preparePrompt } from '../../services/common/requests.ts';
import { checkMemory, engineBytesPerToken, F32 } from '../../services/common/budget.ts';
import { UserError, type JobContext, type JobHandler } from '../../services/context.ts';
import type { SaeStore } from '../../services/saes/store.ts';

/** The model thread's SAE store (made when the model loaded). */
function store(ctx: JobContext): SaeStore {
  if (!ctx.saes) throw new UserError('SAEs are not available here', 500);
  return ctx.saes;
}

const strOf = (model: HookedTransformer, id: number): string | null => (model.tokenizer ? model.tokenizer.decode([id]) : null);

export const saeList: JobHandler<Record<string, never>, SaeListResult> = async (_model, _p, ctx) => ({ saes: await store(ctx).list() });

export const saeLoad: JobHandler<SaeLoadRequest, SaeInfoResult> = async (_model, p, ctx) => {
  const saes = store(ctx);
  if (p.name !== undefined) {
    if (p.name.includes('/')) throw new UserError(`name: '${p.name}' is a hub name; load hub SAEs with repo and subfolder`);
    await saes.get(p.name);
    return saes.info(p.name, 'local');
  }
  const name = await saes.loadHub(p.repo!, p.subfolder, p.revision, (e) => {
    if (e.status === 'progress') ctx.progress(e.loaded, e.total ?? e.loaded, `${e.file}`);
  });
  return saes.info(name, 'hub');
};

export const features: JobHandler<FeaturesRequest, FeaturesResult> = async (model, p, ctx) => {
  const sae = await store(ctx).fitting(p.sae);
  const { tokens } = preparePrompt(model, p.prompt, p);
  const pos = tokens[0].length;
  const { d_sae } = sae.cfg;
  checkMemory(ctx, [
    { what: `features ${pos} × ${d_sae} floats`, bytes: pos * d_sae * F32 * 2 },
    { what: `onnxruntime working memory for ${pos} tokens`, bytes: pos * engineBytesPerToken(model.cfg, pos) },
  ], 'use a shorter prompt');
  ctx.checkCancelled();
  const acts = saeHook(sae.cfg.hook_name as ModelHookName, 'hook_sae_acts_post');
  const [, cache] = await model.runWithCacheWithSaes(tokens, { saes: sae, useErrorTerm: true, namesFilter: [acts as HookName], returnType: 'none' });
  const a = cache.get(acts).data; // [1, pos, d_sae]
  const perToken: FeaturesResult['perToken'] = [];
  const l0: number[] = [];
  const best = new Map<number, { maxAct: number; position: number; positions: number }>();
  for (let q = 0; q < pos; q++) {
    const row = a.subarray(q * d_sae, (q + 1) * d_sae);
    const active: { feature: number; act: number }[] = [];
    for (let f = 0; f < d_sae; f++) {
      if (row[f] <= 0) continue;
      active.push({ feature: f, act: row[f] });
      const b = best.get(f);
      if (!b) best.set(f, { maxAct: row[f], position: q, positions: 1 });
      else {
        b.positions++;
        if (row[f] > b.maxAct) { b.maxAct = row[f]; b.position = q; }
      }
    }
    active.sort((x, y) => y.act - x.act);
    perToken.push(active.slice(0, p.topK));
    l0.push(active.length);
  }
  const topFeatures = [...best].map(([feature, b]) => ({ feature, ...b })).sort((x, y) => y.maxAct - x.maxAct).slice(0, 64);
  return {
    sae: p.sae,
    tokens: tokens[0],
    strTokens: model.tokenizer ? model.tokenizer.toStrTokens(tokens[0]) : null,
    perToken,
    l0,
    topFeatures,
  };
};

/** GET /api/features/:id: the feature's dashboard from the file beside the SAE, with its logit weights computed when there is no file. */
export const feature: JobHandler<{ sae: string; feature: number }, FeatureResult> = async (model, p, ctx) => {
  const saes = store(ctx);
  const sae = await saes.get(p.sae);
  if (!Number.isInteger(p.feature) || p.feature < 0 || p.feature >= sae.cfg.d_sae) {
    throw new UserError(`feature ${p.feature} is not a feature of ${p.sae}; allowed 0…${sae.cfg.d_sae - 1}`, 404);
  }
  const dash = await saes.dashboardsOf(p.sae, sae);
  const str = (id: number) => dash?.tokenStrings[id] ?? strOf(model, id);
  if (dash) {
    const d = dash.features[p.feature];
    return {
      sae: p.sae, feature: p.feature, density: d.density, maxAct: d.maxAct, meanAct: d.meanAct,
      top: d.top.map((t) => ({ ...t, strTokens: t.tokens.map((id) => str(id) ?? String(id)) })),
      histogram: d.histogram,
      logits: { top: d.logits.top.map((l) => ({ ...l, str: str(l.token) })), bottom: d.logits.bottom.map((l) => ({ ...l, str: str(l.token) })) },
      corpus: { name: dash.corpus.name, split: dash.corpus.split, tokens: dash.corpus.tokens },
    };
  }
  ctx.checkCancelled();
  if (sae.cfg.d_in !== model.cfg.d_model) throw new UserError(`feature: ${p.sae} has no dashboards file, and its logit weights need d_in = d_model (${sae.cfg.d_in} ≠ ${model.cfg.d_model})`, 404);
  // Without dashboards: the logit weights of this feature alone, and the density sparsity.safetensors gives.
  const [one] = await logitWeights(model, sae, 10, { features: [p.feature] });
  return {
    sae: p.sae, feature: p.feature,
    density: sae.logSparsity ? 10 ** sae.logSparsity[p.feature] : null, maxAct: null, meanAct: null, top: [], histogram: null,
    logits: { top: one.top.map((l) => ({ ...l, str: strOf(model, l.token) })), bottom: one.bottom.map((l) => ({ ...l, str: strOf(model, l.token) })) },
    corpus: null,
  };
};

export const steer: JobHandler<SteerRequest, SteerResult> = async (model, p, ctx) => {
  const sae = await store(ctx).fitting(p.sae);
  if (!model.tokenizer) throw new UserError('steering continues text: this model was loaded without tokenizer files');
  p.features.forEach((f, i) => {
    if (f.feature >= sae.cfg.d_sae) throw new UserError(`features[${i}].feature: ${f.feature} is not a feature of ${p.sae}; allowed 0…${sae.cfg.d_sae - 1}`);
  });
  const { tokens } = preparePrompt(model, p.prompt, p);
  const pos = tokens[0].length;
  if (pos + p.maxNewTokens - 1 > model.cfg.n_ctx) throw new UserError(`maxNewTokens: a prompt of ${pos} tokens leaves room for at most ${model.cfg.n_ctx - pos + 1} new tokens (n_ctx ${model.cfg.n_ctx})`);
  const spec = steerFeatures(sae, p.features, { nHeads: model.cfg.n_heads });
  const opts = {
    maxNewTokens: p.maxNewTokens, doSample: p.temperature > 0, temperature: p.temperature, topK: p.topK, seed: p.seed, freqPenalty: p.freqPenalty,
    stopAtEos: false, returnType: 'tokens' as const,
  };
  const run = async (steered: boolean, offset: number) => {
    let done = 0;
    const out = await model.generate(tokens, {
      ...opts, ...(steered ? { interventions: [spec] } : {}),
      onStep: () => {
        ctx.progress(offset + ++done, 2 * p.maxNewTokens, steered ? 'steered' : 'unsteered');
        ctx.checkCancelled();
      },
    });
    const fresh = (out as number[][])[0].slice(pos);
    return { text: model.tokenizer!.decode(fresh), tokens: fresh, strTokens: model.tokenizer!.toStrTokens(fresh) };
  };
  const steered = await run(true, 0);
  const unsteered = await run(false, p.maxNewTokens);
  return { sae: p.sae, hookName: sae.cfg.hook_name, prompt: p.prompt, features: p.features, steered, unsteered };
};

export const featureAblate: JobHandler<FeatureAblateRequest, FeatureAblateResult> = async (model, p, ctx) => {
  const sae = await store(ctx).fitting(p.sae);
  const { tokens } = preparePrompt(model, p.prompt, p);
  const pos = tokens[0].length;
  p.features.forEach((f, i) => {
    if (f >= sae.cfg.d_sae) throw new UserError(`features[${i}]: ${f} is not a feature of ${p.sae}; allowed 0…${sae.cfg.d_sae - 1}`);
  });
  (p.positions ?? []).forEach((q, i) => {
    if (q < -pos || q >= pos) throw new UserError(`positions[${i}]: ${q} is out of range for a prompt of ${pos} tokens (allowed ${-pos}..${pos - 1})`);
  });
  const metric = buildMetric(model, p.metric, tokens);
  const fn = metric.fn as (logits: Tensor) => number; // a positioned metric reads full logits when called directly
  checkMemory(ctx, [
    { what: `logits ${pos} × ${model.cfg.d_vocab} floats`, bytes: pos * model.cfg.d_vocab * F32 },
    { what: `onnxruntime working memory for ${pos} tokens`, bytes: pos * engineBytesPerToken(model.cfg, pos) },
  ], 'use a shorter prompt');
  ctx.checkCancelled();
  const clean = fn(await model.runWithSaes(tokens, { saes: sae, useErrorTerm: true }));
  ctx.progress(1, 3, 'runs');
  ctx.checkCancelled();
  const spliced = fn(await model.runWithSaes(tokens, { saes: sae }));
  ctx.progress(2, 3, 'runs');
  ctx.checkCancelled();
  const ablated = fn(await model.runWithSaes(tokens, { saes: sae, useErrorTerm: true, interventions: [ablateFeatures(sae, p.features, p.positions ? { positions: p.positions } : {})] }));
  ctx.progress(3, 3, 'runs');
  return {
    sae: p.sae, tokens: tokens[0], strTokens: model.tokenizer ? model.tokenizer.toStrTokens(tokens[0]) : null, metric: metric.echo,
    clean, spliced, ablated, delta: ablated - clean,
  };
};

export const saeEval: JobHandler<SaeEvalRequest, SaeEvalResult> = async (model, p, ctx) => {
  const sae = await store(ctx).fitting(p.sae);
  if (!model.tokenizer) throw new UserError('evaluation reads text: this model was loaded without tokenizer files');
  const contextSize = Math.min(p.contextSize ?? sae.cfg.context_size ?? 128, model.cfg.n_ctx);
  const batch = 8;
  checkMemory(ctx, [
    { what: `features ${batch} × ${contextSize} × ${sae.cfg.d_sae} floats`, bytes: batch * contextSize * sae.cfg.d_sae * F32 * 2 },
    { what: `logits ${batch} × ${contextSize} × ${model.cfg.d_vocab} floats`, bytes: batch * contextSize * model.cfg.d_vocab * F32 },
    { what: `onnxruntime working memory for ${batch * contextSize} tokens`, bytes: batch * contextSize * engineBytesPerToken(model.cfg, contextSize) },
  ], 'ask for a smaller contextSize');
  const r = await evaluateSae(model, sae, corpusContexts(DEFAULT_CORPUS, model.tokenizer, { contextSize, split: p.split as CorpusSplit }), {
    maxTokens: p.tokens,
    batchSize: batch,
    onProgress: (done) => {
      ctx.progress(Math.min(done, p.tokens), p.tokens, 'tokens');
      ctx.checkCancelled();
    },
  });
  const { featureDensity: _density, ...metrics } = r;
  return { sae: p.sae, corpus: { name: 'tinyshakespeare', split: p.split, contextSize }, ...metrics };
};
