/** SAE figures, shared by the dashboard's Features view and the CLI: feature density histogram, a feature's activation histogram and logit weights, a prompt's features. */
import { fmt, num, titleOf, tokenLabel } from './common.ts';
import type { FigureSpec, Trace } from './types.ts';

type N = number | string;

export interface DensityHistogramData {
  edges: N[];
  counts: number[];
  dead: number;
}

/** How many features fire at each log10 density (SAELens's feature density histogram); dead features counted in the title. */
export function featureDensityFigure(h: DensityHistogramData, label = 'SAE'): FigureSpec {
  const edges = h.edges.map(num);
  const centres = h.counts.map((_, i) => (edges[i] + edges[i + 1]) / 2);
  const total = h.counts.reduce((a, b) => a + b, 0) + h.dead;
  const trace: Trace = {
    type: 'bar', x: centres, y: h.counts, width: edges[1] - edges[0], marker: { color: '#4393c3' },
    hovertemplate: 'log10 density %{x:.2f}: %{y} features<extra></extra>',
  };
  const title = titleOf(`${tokenLabel(label)}: feature density (${total} features, ${h.dead} dead)`, 13);
  return {
    name: 'feature-density',
    data: [trace],
    layout: {
      title: title.title, margin: { l: 60, r: 20, t: title.top, b: 50 }, bargap: 0.05, font: { size: 11 },
      xaxis: { title: { text: 'log10(fraction of tokens a feature fires on)' }, automargin: true },
      yaxis: { title: { text: 'features' }, automargin: true },
    },
    table: { columns: ['log10_density_from', 'log10_density_to', 'features'], rows: [...h.counts.map((c, i) => [edges[i], edges[i + 1], c]), ['dead', 'dead', h.dead]] },
  };
}

export interface FeaturePageData {
  feature: number;
  histogram: { edges: N[]; counts: number[] } | null;
  logits: { top: { token: number; str: string | null; value: N }[]; bottom: { token: number; str: string | null; value: N }[] };
}

/** The feature's non-zero activations in bins from 0 to its maximum. */
export function featureActivationFigure(f: FeaturePageData): FigureSpec {
  const edges = (f.histogram?.edges ?? []).map(num);
  const counts = f.histogram?.counts ?? [];
  const trace: Trace = {
    type: 'bar', x: counts.map((_, i) => (edges[i] + edges[i + 1]) / 2), y: counts, width: edges.length > 1 ? edges[1] - edges[0] : 1,
    marker: { color: '#f4a582' }, hovertemplate: 'activation ≈ %{x:.3g}: %{y}<extra></extra>',
  };
  const title = titleOf(`Feature ${f.feature}: activations where it fires`, 13);
  return {
    name: `feature-${f.feature}-activations`,
    data: [trace],
    layout: {
      title: title.title, margin: { l: 55, r: 15, t: title.top, b: 45 }, bargap: 0.05, font: { size: 11 },
      xaxis: { title: { text: 'activation' }, automargin: true }, yaxis: { title: { text: 'tokens (sampled)' }, automargin: true },
    },
    table: { columns: ['activation_from', 'activation_to', 'count'], rows: counts.map((c, i) => [edges[i], edges[i + 1], c]) },
  };
}

/** The tokens W_dec[f] · W_U promotes most (right, red) and suppresses most (left, blue). */
export function featureLogitsFigure(f: FeaturePageData): FigureSpec {
  const rows = [...f.logits.bottom.slice().reverse(), ...f.logits.top.slice().reverse()];
  const label = (r: { token: number; str: string | null }) => `${tokenLabel(r.str ?? `#${r.token}`)} `;
  const trace: Trace = {
    type: 'bar', orientation: 'h', y: rows.map((r, i) => `${label(r)}\u200b${i}`), x: rows.map((r) => num(r.value)),
    marker: { color: rows.map((r) => (num(r.value) >= 0 ? '#d6604d' : '#4393c3')) },
    // Values inside the bars (a short bar's label would spill over the token labels of the bottom rows), hidden where they do not fit.
    text: rows.map((r) => fmt(num(r.value))), textposition: 'inside', insidetextanchor: 'end', hovertemplate: '%{y}: %{x:.4g}<extra></extra>',
  };
  const title = titleOf(`Feature ${f.feature}: logit weights (W_dec[f] · W_U)`, 13);
  return {
    name: `feature-${f.feature}-logits`,
    data: [trace],
    layout: {
      title: title.title, margin: { l: 90, r: 15, t: title.top, b: 40 }, font: { size: 11 }, showlegend: false, uniformtext: { mode: 'hide', minsize: 8 },
      xaxis: { title: { text: 'logit weight' }, zeroline: true, automargin: true },
      yaxis: { automargin: true, tickvals: rows.map((r, i) => `${label(r)}\u200b${i}`), ticktext: rows.map(label) },
    },
    table: { columns: ['kind', 'rank', 'token', 'str', 'value'], rows: [...f.logits.top.map((r, k) => ['top', k, r.token, r.str, num(r.value)]), ...f.logits.bottom.map((r, k) => ['bottom', k, r.token, r.str, num(r.value)])] },
  };
}

export interface PromptFeaturesData {
  tokens: number[];
  strTokens: string[] | null;
  perToken: { feature: number; act: N }[][];
  topFeatures: { feature: number; maxAct: N }[];
}

/** Positions × the prompt's strongest features: each feature's activation at each token (0 where it is not among that token's listed features). */
export function promptFeaturesFigure(r: PromptFeaturesData, maxFeatures = 16): FigureSpec {
  const features = r.topFeatures.slice(0, maxFeatures).map((f) => f.feature);
  const labels = r.tokens.map((t, p) => `${p}: ${tokenLabel(r.strTokens?.[p] ?? `#${t}`)}`);
  const z = features.map((f) => r.perToken.map((list) => num(list.find((x) => x.feature === f)?.act ?? 0)));
  const trace: Trace = {
    type: 'heatmap', z, x: labels, y: features.map((f) => `F${f}`), colorscale: 'Reds', zmin: 0,
    hovertemplate: '%{y} at %{x}: %{z:.3g}<extra></extra>', colorbar: { title: { text: 'activation' } },
  };
  const title = titleOf('The prompt\'s strongest features at each token', 13);
  return {
    name: 'prompt-features',
    data: [trace],
    layout: { title: title.title, margin: { l: 60, r: 20, t: title.top, b: 80 }, font: { size: 11 }, xaxis: { tickangle: -45, automargin: true }, yaxis: { autorange: 'reversed', automargin: true } },
    table: { columns: ['feature', 'position', 'act'], rows: features.flatMap((f, i) => r.tokens.map((_, p) => [f, p, z[i][p]])) },
  };
}
