/**
 * The analyses a dataset experiment can run, in ONE table: name → the experiment's options (zod), the server's
 * request for one item (validated with the service's own schema), the service's handler that runs it (the same
 * code as the API and the CLI), the numbers averaged over items, and the figures of the average.
 */
import { z } from 'zod';
import type { DatasetItem } from '../hooks/experiments/datasets.ts';
import type { NumericTree, TreeAggregate } from '../hooks/experiments/aggregate.ts';
import {
  ablationResultFigure, headGridFigure, ioiLogitDiffFigure, lossByPositionFigure, meanSeriesFigure, patchingFigure, saliencyFigure, type FigureSpec,
} from '../hooks/figures/index.ts';
import { fmt, num, tokenLabel } from '../hooks/figures/common.ts';
import { lensRowLabel } from '../hooks/figures/logitLens.ts';
import { CLI_LIMITS } from '../services/limits.ts';
import { ablate, type AblateResult } from '../services/analysis/ablate.ts';
import { ablateSweep, type AblateSweepResult } from '../services/analysis/ablateSweep.ts';
import { attributionPatch } from '../services/analysis/attributionPatch.ts';
import { headsDetect, type HeadsDetectResult } from '../services/analysis/headsDetect.ts';
import { ioi, type IoiResult } from '../services/analysis/ioi.ts';
import { logitLens, type LogitLensResult } from '../services/analysis/logitLens.ts';
import { patch, type PatchResult } from '../services/analysis/patch.ts';
import { saliency, type SaliencyResult } from '../services/analysis/saliency.ts';
import { featureAblate, type FeatureAblateResult } from '../services/saes/featureAblate.ts';
import { UserError, type JobHandler } from '../services/context.ts';

type Grid = (number | string)[][];

/** The per-run aggregate the figures are drawn from (what aggregate.json holds besides the experiment). */
export interface AggregateView extends TreeAggregate {
  /** Axis labels and other descriptions, from the first item's result. */
  axes: Record<string, unknown>;
  /** Top-level scalar values of every item, in item order, and the items (for per-item figures). */
  perItem: { item: DatasetItem; scalars: Record<string, number> }[];
}

export interface BatchAnalysis<O = never, R = never> {
  summary: string;
  /** The experiment's `analysis` fields besides `kind`. */
  options: z.ZodObject;
  /** Whether items with `repeated` are passed as they are (else they become token prompts before `request`). */
  readsRepeated?: boolean;
  /** The server's request for one item; a field the item lacks is an ItemFieldError. */
  request(o: O, item: DatasetItem): Record<string, unknown>;
  /** The server's request schema (the CLI's limits). */
  schema: z.ZodType;
  run: JobHandler<never, R>;
  /** The numbers averaged over items (every item must give the same structure). */
  values(r: R, o: O): NumericTree;
  /** Axis labels for the figures, from the first item's result. */
  axes(r: R, o: O): Record<string, unknown>;
  figures(a: AggregateView, o: O): FigureSpec[];
}

/** An item lacks a field the analysis reads. */
export class ItemFieldError extends Error {}

function need<T>(item: DatasetItem, field: keyof DatasetItem, why: string): T {
  const v = item[field];
  if (v === undefined) throw new ItemFieldError(`the item has no '${field}' (${why})`);
  return v as T;
}

const TokenSpec = z.union([z.string().min(1), z.number().int().min(0)], {
  error: 'a token is a string that is exactly one token (e.g. " Mary", with its leading space) or a token id (integer ≥ 0)',
});
const Position = z.number().int().optional().describe('position read (negative counts from the end; default -1, the last)');

/** A metric whose tokens default to the item's `correct` / `incorrect`. */
const BatchMetric = z.discriminatedUnion('kind', [
  z.strictObject({ kind: z.literal('logit_diff'), correct: TokenSpec.optional(), incorrect: TokenSpec.optional(), position: Position }),
  z.strictObject({ kind: z.literal('loss') }),
  z.strictObject({ kind: z.literal('prob'), token: TokenSpec.optional(), position: Position }),
], { error: "metric must be {kind: 'logit_diff', correct?, incorrect?, position?}, {kind: 'loss'} or {kind: 'prob', token?, position?} (tokens default to the item's correct / incorrect)" });
type BatchMetricSpec = z.infer<typeof BatchMetric>;
const LogitDiffMetric = z.strictObject({ kind: z.literal('logit_diff'), correct: TokenSpec.optional(), incorrect: TokenSpec.optional(), position: Position });

function itemMetric(m: BatchMetricSpec, item: DatasetItem): Record<string, unknown> {
  if (m.kind === 'logit_diff') {
    return {
      ...m,
      correct: m.correct ?? need(item, 'correct', 'the metric names no correct token'),
      incorrect: m.incorrect ?? need(item, 'incorrect', 'the metric names no incorrect token'),
    };
  }
  if (m.kind === 'prob') return { ...m, token: m.token ?? need(item, 'correct', 'the metric names no token') };
  return m;
}

/** The metric's label for figures: the tokens when the experiment names them, the item's roles otherwise. */
function metricLabel(m: BatchMetricSpec): string {
  const t = (v: string | number | undefined, role: string) => (v === undefined ? role : typeof v === 'number' ? `#${v}` : JSON.stringify(v));
  const at = 'position' in m && m.position !== undefined ? ` @ pos ${m.position}` : '';
  if (m.kind === 'logit_diff') return `logit(${t(m.correct, 'correct')}) − logit(${t(m.incorrect, 'incorrect')})${at}`;
  if (m.kind === 'prob') return `P(${t(m.token, 'correct')})${at}`;
  return 'mean next-token loss';
}

const prompt = (item: DatasetItem) => need<string | number[]>(item, 'prompt', 'the analysis reads a prompt');
const asGrid = (t: NumericTree) => t as Grid;
const asTree = (t: NumericTree) => t as Record<string, NumericTree>;
const grids = (a: AggregateView) => ({ mean: asTree(a.mean), stderr: asTree(a.stderr) });

/** A layers × heads heatmap of a mean, its standard error (and more) as table columns. */
function meanHeadGrid(a: AggregateView, values: Grid, stderr: Grid, o: { name: string; title: string; valueName: string; scale: 'diverging' | 'sequential'; zmin?: number; zmax?: number; extra?: { column: string; values: Grid }[] }) {
  return headGridFigure(
    { layers: a.axes.layers as number[], heads: a.axes.heads as number[], values },
    {
      title: `${o.title} (mean over ${a.n} items)`, valueName: o.valueName, scale: o.scale, zmin: o.zmin, zmax: o.zmax, name: o.name,
      extra: [{ column: `${o.valueName}_stderr`, values: stderr }, ...(o.extra ?? [])],
    },
  );
}

/** position `p` (negative counts from the end) of `n` positions. */
function resolvePosition(p: number, n: number): number {
  const q = p < 0 ? p + n : p;
  if (q < 0 || q >= n) throw new UserError(`position: ${p} is out of range for a prompt of ${n} tokens (allowed ${-n}..${n - 1})`);
  return q;
}

// ───────────────────────────── logit lens ─────────────────────────────

const lensShape = logitLens.request(CLI_LIMITS).shape;
const lensOptions = z.strictObject({
  prependBos: lensShape.prependBos, inclMid: lensShape.inclMid, applyLn: lensShape.applyLn, topK: lensShape.topK,
  targets: lensShape.targets.describe("tokens to track (default the item's correct and incorrect tokens)"),
  position: z.number().int().default(-1).describe('the position the aggregate reads (negative counts from the end; default -1)'),
});
type LensOptions = z.infer<typeof lensOptions>;

const logitLensAnalysis: BatchAnalysis<LensOptions, LogitLensResult> = {
  summary: "the logit lens of every item: the top token's and the tracked tokens' probability by layer at one position",
  options: lensOptions,
  request: (o, item) => {
    const fromItem = [item.correct, item.incorrect].filter((t) => t !== undefined);
    const targets = o.targets ?? (fromItem.length ? fromItem : undefined);
    return { prompt: prompt(item), prependBos: o.prependBos, inclMid: o.inclMid, applyLn: o.applyLn, topK: o.topK, ...(targets ? { targets } : {}) };
  },
  schema: logitLens.request(CLI_LIMITS),
  run: logitLens.handler as JobHandler<never, LogitLensResult>,
  values: (r, o) => {
    const p = resolvePosition(o.position, r.positions.length);
    return {
      topProb: r.top.map((row) => row[p][0].prob),
      targets: r.targets.map((t) => ({ prob: t.prob.map((row) => row[p]), logit: t.logit.map((row) => row[p]), rank: t.rank.map((row) => row[p]) })),
    };
  },
  axes: (r, o) => ({
    labels: r.labels,
    targets: o.targets ? r.targets.map((t) => t.str ?? `#${t.token}`) : ['correct', 'incorrect'].slice(0, r.targets.length),
    position: o.position,
  }),
  figures: (a) => {
    const { mean, stderr } = grids(a);
    const x = (a.axes.labels as string[]).map(lensRowLabel);
    const names = a.axes.targets as string[];
    const targets = (t: NumericTree) => t as { prob: (number | string)[]; logit: (number | string)[] }[];
    const at = `at position ${a.axes.position as number}`;
    const prob = meanSeriesFigure({
      name: 'logit-lens-prob-by-layer', title: `Logit lens: probability ${at}`, x, xTitle: 'residual stream', yTitle: 'probability', n: a.n,
      series: [
        { name: 'top-1 token', mean: mean.topProb as (number | string)[], stderr: stderr.topProb as (number | string)[] },
        ...targets(mean.targets).map((t, i) => ({ name: tokenLabel(names[i]), mean: t.prob, stderr: targets(stderr.targets)[i].prob })),
      ],
    });
    if (names.length === 0) return [prob];
    const logit = meanSeriesFigure({
      name: 'logit-lens-logit-by-layer', title: `Logit lens: logit ${at}`, x, xTitle: 'residual stream', yTitle: 'logit', n: a.n,
      series: targets(mean.targets).map((t, i) => ({ name: tokenLabel(names[i]), mean: t.logit, stderr: targets(stderr.targets)[i].logit })),
    });
    return [prob, logit];
  },
};

// ───────────────────────────── head detection ─────────────────────────────

const headsShape = headsDetect.request(CLI_LIMITS).shape;
const headsOptions = z.strictObject({ prependBos: headsShape.prependBos, kinds: headsShape.kinds });
type HeadsOptions = z.infer<typeof headsOptions>;

const headsAnalysis: BatchAnalysis<HeadsOptions, HeadsDetectResult> = {
  summary: 'previous-token, duplicate-token and induction scores of every head (and, on repeated tokens, the loss by position)',
  options: headsOptions,
  readsRepeated: true,
  request: (o, item) => (item.repeated
    ? { repeated: { seqLen: item.repeated.seqLen, batch: 1, seed: item.repeated.seed }, kinds: o.kinds }
    : { prompt: prompt(item), prependBos: o.prependBos, kinds: o.kinds }),
  schema: headsDetect.request(CLI_LIMITS),
  run: headsDetect.handler as JobHandler<never, HeadsDetectResult>,
  values: (r) => ({
    scores: Object.fromEntries(r.scores.map((s) => [s.kind, s.values])),
    ...(r.lossByPosition ? { loss: r.lossByPosition.loss, firstRepeat: r.lossByPosition.firstRepeat, secondRepeat: r.lossByPosition.secondRepeat } : {}),
  }),
  axes: (r) => ({ layers: r.layers, heads: r.heads, kinds: r.scores.map((s) => s.kind) }),
  figures: (a) => {
    const { mean, stderr } = grids(a);
    const titles: Record<string, string> = { previous_token: 'Previous-token score', duplicate_token: 'Duplicate-token score', induction: 'Induction score' };
    const figures = (a.axes.kinds as string[]).map((kind) => meanHeadGrid(a, asGrid(asTree(mean.scores)[kind]), asGrid(asTree(stderr.scores)[kind]), {
      name: `head-scores-${kind}`, title: titles[kind], valueName: 'score', scale: 'sequential', zmin: 0, zmax: 1,
    }));
    if (mean.loss !== undefined) {
      const fig = lossByPositionFigure({
        layers: [], heads: [], scores: [],
        lossByPosition: { loss: mean.loss as (number | string)[], firstRepeat: mean.firstRepeat as number, secondRepeat: mean.secondRepeat as number },
      });
      figures.push({ ...fig, layout: { ...fig.layout, title: { ...(fig.layout.title as object), text: `Loss by position on repeated random tokens (mean over ${a.n} items)` } } });
    }
    return figures;
  },
};

// ───────────────────────────── ablation ─────────────────────────────

const ablateOptions = ablate.request(CLI_LIMITS).omit({ prompt: true }).extend({ metric: BatchMetric });
type AblateOptions = z.infer<typeof ablateOptions>;

/** "L1H2, L0 neuron 5, L2 pos 3" */
function ablationSetLabel(o: AblateOptions): string {
  return o.ablations.map((x) => (x.kind === 'head' ? `L${x.layer}H${x.head}` : x.kind === 'neuron' ? `L${x.layer} neuron ${x.neuron}` : `L${x.layer} pos ${x.position}`)).join(', ');
}

const ablateAnalysis: BatchAnalysis<AblateOptions, AblateResult> = {
  summary: 'the metric with a set of heads / neurons / positions ablated together, and without',
  options: ablateOptions,
  request: (o, item) => ({ ...o, prompt: prompt(item), metric: itemMetric(o.metric, item) }),
  schema: ablate.request(CLI_LIMITS),
  run: ablate.handler as JobHandler<never, AblateResult>,
  values: (r) => ({ clean: r.clean, ablated: r.ablated, delta: r.delta }),
  axes: () => ({}),
  figures: (a, o) => {
    const { mean } = grids(a);
    const fig = ablationResultFigure(
      { metric: { kind: o.metric.kind, label: `mean ${metricLabel(o.metric)}` }, clean: mean.clean as number, ablated: mean.ablated as number, delta: mean.delta as number },
      `${ablationSetLabel(o)} (${o.mode}, ${a.n} items)`,
    );
    return [fig];
  },
};

// ───────────────────────────── ablation sweep ─────────────────────────────

const sweepOptions = ablateSweep.request(CLI_LIMITS).omit({ prompt: true }).extend({ metric: BatchMetric });
type SweepOptions = z.infer<typeof sweepOptions>;

const sweepAnalysis: BatchAnalysis<SweepOptions, AblateSweepResult> = {
  summary: 'the ablation sweep of every item: the metric with each head ablated alone',
  options: sweepOptions,
  request: (o, item) => ({ ...o, prompt: prompt(item), metric: itemMetric(o.metric, item) }),
  schema: ablateSweep.request(CLI_LIMITS),
  run: ablateSweep.handler as JobHandler<never, AblateSweepResult>,
  values: (r) => ({ clean: r.clean, values: r.values, delta: r.delta }),
  axes: (r) => ({ layers: r.layers, heads: r.heads }),
  figures: (a, o) => {
    const { mean, stderr } = grids(a);
    return [meanHeadGrid(a, asGrid(mean.delta), asGrid(stderr.delta), {
      name: `ablation-sweep-${o.metric.kind}`, valueName: 'delta', scale: 'diverging', extra: [{ column: 'ablated', values: asGrid(mean.values) }],
      title: `Δ ${tokenLabel(metricLabel(o.metric))} when one head is ${o.mode}-ablated (clean ${fmt(num(mean.clean as number))})`,
    })];
  },
};

// ───────────────────────────── activation patching ─────────────────────────────

const patchOptions = patch.request(CLI_LIMITS).omit({ clean: true, corrupted: true }).extend({ metric: LogitDiffMetric });
type PatchOptions = z.infer<typeof patchOptions>;

/** Activation patching, or its first-order estimate by attribution patching: the same request, answer and figures. */
const patchingAnalysis = (method: 'activation' | 'attribution'): BatchAnalysis<PatchOptions, PatchResult> => ({
  summary: method === 'activation'
    ? "activation patching of every item's prompt (clean) and its corrupted prompt: the normalised logit difference per patched slice"
    : "attribution patching (one forward and backward pass of the corrupted prompt) of every item: patch's estimate, in patch's units",
  options: patchOptions,
  request: (o, item) => ({
    ...o, clean: prompt(item), corrupted: need(item, 'corrupted', 'patching reads a corrupted prompt'), metric: itemMetric(o.metric, item),
  }),
  schema: patch.request(CLI_LIMITS),
  run: (method === 'activation' ? patch.handler : attributionPatch.handler) as JobHandler<never, PatchResult>,
  values: (r) => ({ clean: r.clean, corrupted: r.corrupted, results: Object.fromEntries(r.results.map((x) => [x.kind, x.values as NumericTree])) }),
  axes: (r) => ({ kinds: r.results.map((x) => x.kind), dims: r.results.map((x) => x.dims), cleanStrTokens: r.cleanStrTokens, cleanTokens: r.cleanTokens }),
  figures: (a, o) => {
    const { mean } = grids(a);
    const kinds = a.axes.kinds as PatchResult['results'][number]['kind'][];
    const dims = a.axes.dims as PatchResult['results'][number]['dims'][];
    const data = {
      cleanStrTokens: a.axes.cleanStrTokens as string[] | null, cleanTokens: a.axes.cleanTokens as number[],
      metric: { label: `mean ${metricLabel(o.metric)}` }, clean: mean.clean as number, corrupted: mean.corrupted as number,
      results: kinds.map((kind, i) => ({ kind, dims: dims[i], values: asTree(mean.results)[kind] as Grid })), method,
    };
    return kinds.map((_k, i) => {
      const fig = patchingFigure(data, i);
      const title = fig.layout.title as { text: string };
      return { ...fig, layout: { ...fig.layout, title: { ...title, text: `${title.text}, mean over ${a.n} items (positions: the first item's tokens)` } } };
    });
  },
});

// ───────────────────────────── input saliency ─────────────────────────────

const saliencyOptions = saliency.request(CLI_LIMITS).omit({ prompt: true }).extend({ metric: BatchMetric });
type SaliencyOptions = z.infer<typeof saliencyOptions>;

const saliencyAnalysis: BatchAnalysis<SaliencyOptions, SaliencyResult> = {
  summary: "input saliency of every item's prompt (gradient × input or integrated gradients of the metric): each token's score",
  options: saliencyOptions,
  request: (o, item) => ({ ...o, prompt: prompt(item), metric: itemMetric(o.metric, item) }),
  schema: saliency.request(CLI_LIMITS),
  run: saliency.handler as JobHandler<never, SaliencyResult>,
  values: (r) => ({ value: r.value, ...(r.baselineValue === null ? {} : { baselineValue: r.baselineValue }), scores: r.scores }),
  axes: (r) => ({ tokens: r.tokens, strTokens: r.strTokens, method: r.method }),
  figures: (a, o) => {
    const { mean } = grids(a);
    const fig = saliencyFigure({
      tokens: a.axes.tokens as number[], strTokens: a.axes.strTokens as string[] | null, method: a.axes.method as string, scores: mean.scores as (number | string)[],
    });
    const title = fig.layout.title as { text: string };
    return [{ ...fig, layout: { ...fig.layout, title: { ...title, text: `${title.text} of ${tokenLabel(metricLabel(o.metric))}, mean over ${a.n} items (positions: the first item's tokens)` } } }];
  },
};

// ───────────────────────────── SAE feature ablation ─────────────────────────────

const featureAblateOptions = featureAblate.request(CLI_LIMITS).omit({ prompt: true }).extend({ metric: BatchMetric });
type FeatureAblateOptions = z.infer<typeof featureAblateOptions>;

const featureAblateAnalysis: BatchAnalysis<FeatureAblateOptions, FeatureAblateResult> = {
  summary: "the metric with a set of an SAE's features ablated (the SAE spliced with its error term), and without; also with the SAE's reconstruction alone",
  options: featureAblateOptions,
  request: (o, item) => ({ ...o, prompt: prompt(item), metric: itemMetric(o.metric, item) }),
  schema: featureAblate.request(CLI_LIMITS),
  run: featureAblate.handler as JobHandler<never, FeatureAblateResult>,
  values: (r) => ({ clean: r.clean, spliced: r.spliced, ablated: r.ablated, delta: r.delta }),
  axes: () => ({}),
  figures: (a, o) => {
    const { mean } = grids(a);
    const fig = ablationResultFigure(
      { metric: { kind: o.metric.kind, label: `mean ${metricLabel(o.metric)}` }, clean: mean.clean as number, ablated: mean.ablated as number, delta: mean.delta as number },
      `${o.sae} features ${o.features.join(', ')}${o.positions ? ` at positions ${o.positions.join(', ')}` : ''} (${a.n} items)`,
    );
    return [{ ...fig, name: 'feature-ablation' }];
  },
};

// ───────────────────────────── IOI metrics ─────────────────────────────

const ioiOptions = z.strictObject({ prependBos: ioi.request(CLI_LIMITS).shape.prependBos });
type IoiOptions = z.infer<typeof ioiOptions>;

const ioiAnalysis: BatchAnalysis<IoiOptions, IoiResult> = {
  summary: "IOI metrics of every item: the IO − S logit difference and its direct attribution to each head",
  options: ioiOptions,
  request: (o, item) => {
    const text = prompt(item);
    if (typeof text !== 'string') throw new ItemFieldError("IOI metrics read a text prompt; this item's prompt is token ids");
    return {
      prompts: [{ text, io: need<string>(item, 'io', 'IOI metrics read the indirect object'), s: need<string>(item, 's', 'IOI metrics read the subject') }],
      ...(o.prependBos !== undefined ? { prependBos: o.prependBos } : {}),
    };
  },
  schema: ioi.request(CLI_LIMITS),
  run: ioi.handler as JobHandler<never, IoiResult>,
  values: (r) => ({ logitDiff: r.prompts[0].logitDiff, accuracy: r.accuracy, headAttribution: r.headAttribution }),
  axes: (r) => ({ layers: r.layers, heads: r.heads }),
  figures: (a) => {
    const { mean, stderr } = grids(a);
    const perPrompt = ioiLogitDiffFigure({
      prompts: a.perItem.map(({ item, scalars }) => ({ text: String(item.prompt), io: item.io ?? '', s: item.s ?? '', logitDiff: scalars.logitDiff })),
      meanLogitDiff: mean.logitDiff as number, accuracy: mean.accuracy as number, layers: [], heads: [], headAttribution: [],
    });
    const attribution = meanHeadGrid(a, asGrid(mean.headAttribution), asGrid(stderr.headAttribution), {
      name: 'ioi-head-attribution', title: 'Direct logit attribution of IO − S per head', valueName: 'attribution', scale: 'diverging',
    });
    return [perPrompt, attribution];
  },
};

/** The options of an experiment's `analysis` (its fields without `kind`), as the table's functions take them. */
export function analysisOptions(spec: { kind: string } & Record<string, unknown>): Record<string, unknown> {
  const { kind: _kind, ...options } = spec;
  return options;
}

export const ANALYSES = {
  'logit-lens': logitLensAnalysis,
  heads: headsAnalysis,
  ablate: ablateAnalysis,
  sweep: sweepAnalysis,
  patch: patchingAnalysis('activation'),
  'attribution-patch': patchingAnalysis('attribution'),
  saliency: saliencyAnalysis,
  'feature-ablate': featureAblateAnalysis,
  ioi: ioiAnalysis,
} as unknown as Record<string, BatchAnalysis<Record<string, unknown>, unknown>>;
