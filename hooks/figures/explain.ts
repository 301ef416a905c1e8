/**
 * Figures of the explanation endpoints: direct logit attribution (POST /api/attribution) as bars and a layers × heads
 * grid, the information-flow graph (POST /api/graph) drawn as layers over token positions, and neurons (POST
 * /api/neurons/*): top neurons as bars, a neuron's activation over a prompt and over its corpus examples as coloured
 * text, its output tokens through W_U. Titles and axes come from each answer's own parameters.
 */
import { pruneFlowGraph, type FlowGraph } from '../analysis/flowGraph.ts';
import { fmt, num, titleOf, tokenLabel } from './common.ts';
import { headGridFigure } from './heads.ts';
import type { TextFigure } from './text.ts';
import type { Cell, FigureSpec, Layout, Trace } from './types.ts';

type N = number | string;
const FONT = { family: 'system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", sans-serif', size: 11 };
const BLUE = '#2166ac';
const RED = '#b2182b';
const q = (s: string | null | undefined) => JSON.stringify(s ?? '∅');

// ───────────────────────────── attribution ─────────────────────────────

export interface AttributionData {
  tokens: number[];
  strTokens: string[] | null;
  position: number;
  target: { token: number; str: string | null };
  vs: { token: number; str: string | null } | null;
  total: N;
  scale: N;
  components: { label: string; kind: string; layer?: number; head?: number; neuron?: number; value: N; activation?: N }[];
}

/** "logit(" Mary") − logit(" John") at 14: " to"" — what an attribution explains. */
export function attributionSubject(r: Pick<AttributionData, 'target' | 'vs' | 'position' | 'strTokens' | 'tokens'>): string {
  const tok = r.strTokens?.[r.position] ?? String(r.tokens[r.position]);
  const logit = `logit(${q(r.target.str ?? String(r.target.token))})${r.vs ? ` − logit(${q(r.vs.str ?? String(r.vs.token))})` : ''}`;
  return `${logit} at ${r.position}: ${q(tok)}`;
}

/**
 * The terms of the total (every component but the neurons) as horizontal bars, the `limit` largest by |value| and the
 * rest summed into one bar; the total drawn as the last bar. The table holds every component (neurons too).
 */
export function attributionBarsFigure(r: AttributionData, limit = 24): FigureSpec {
  const terms = r.components.filter((c) => c.kind !== 'neuron').map((c) => ({ ...c, v: num(c.value) }));
  const shown = [...terms].sort((a, b) => Math.abs(b.v) - Math.abs(a.v)).slice(0, limit);
  const rest = terms.filter((c) => !shown.includes(c));
  const bars = shown.map((c) => ({ label: c.label, v: c.v }));
  if (rest.length) bars.push({ label: `other ${rest.length}`, v: rest.reduce((a, c) => a + c.v, 0) });
  const total = num(r.total);
  bars.push({ label: 'total', v: total });
  const t = titleOf(`Direct logit attribution of ${attributionSubject(r)}: total ${fmt(total)} (ln_final scale ${fmt(num(r.scale))})`, 13);
  const trace: Trace = {
    type: 'bar', orientation: 'h', y: bars.map((b) => b.label).reverse(), x: bars.map((b) => b.v).reverse(),
    marker: { color: bars.map((b) => (b.label === 'total' ? '#555555' : b.v >= 0 ? BLUE : RED)).reverse() },
    hovertemplate: '%{y}: %{x:.4f}<extra></extra>',
  };
  return {
    name: `attribution-pos${r.position}`,
    data: [trace],
    layout: {
      title: t.title, font: FONT, margin: { l: 90, r: 20, t: t.top, b: 46 },
      xaxis: { title: { text: 'direct contribution (logits)' }, zeroline: true, zerolinecolor: '#888', automargin: true },
      yaxis: { type: 'category', automargin: true, tickfont: { family: 'ui-monospace, "DejaVu Sans Mono", monospace', size: 11 } },
      bargap: 0.25,
    },
    table: {
      columns: ['label', 'kind', 'layer', 'head', 'neuron', 'value', 'activation', 'in_total'],
      rows: [
        ...r.components.map((c): Cell[] => [c.label, c.kind, c.layer ?? null, c.head ?? null, c.neuron ?? null, num(c.value), c.activation === undefined ? null : num(c.activation), c.kind !== 'neuron']),
        ['total', 'total', null, null, null, total, null, false],
      ],
    },
  };
}

/** Every head's direct attribution as a layers × heads grid (diverging around 0). */
export function attributionHeadsFigure(r: AttributionData): FigureSpec {
  const heads = r.components.filter((c) => c.kind === 'head');
  const layers = [...new Set(heads.map((c) => c.layer!))].sort((a, b) => a - b);
  const hs = [...new Set(heads.map((c) => c.head!))].sort((a, b) => a - b);
  const values = layers.map((l) => hs.map((h) => heads.find((c) => c.layer === l && c.head === h)!.value));
  return headGridFigure({ layers, heads: hs, values }, {
    title: `Direct logit attribution per head of ${attributionSubject(r)}`, valueName: 'attribution', scale: 'diverging', name: `attribution-heads-pos${r.position}`,
  });
}

// ───────────────────────────── information-flow graph ─────────────────────────────

export interface GraphData extends Omit<FlowGraph, 'edges'> {
  edges: { from: string; to: string; kind: FlowGraph['edges'][number]['kind']; weight: N }[];
  tokens: number[];
  strTokens: string[] | null;
  prediction: { token: number; str: string | null; prob: N }[];
}

/** A node's place: x = its token position (heads spread around it), y = its depth (embedding 0, layer l's attention 3l + 1.5 …). */
function nodeXY(n: FlowGraph['nodes'][number], nHeads: number): [number, number] {
  const l = n.layer ?? 0;
  switch (n.kind) {
    case 'embed': return [n.position, 0];
    case 'head': return [n.position + (nHeads > 1 ? ((n.head! / (nHeads - 1)) - 0.5) * 0.7 : 0), 3 * l + 1];
    case 'resid_mid': return [n.position, 3 * l + 2];
    case 'mlp': return [n.position + 0.3, 3 * l + 2.5];
    case 'resid_post': return [n.position, 3 * l + 3];
  }
}

const NODE_COLOURS: Record<string, string> = { embed: '#444444', head: '#e6550d', resid_mid: '#6baed6', mlp: '#31a354', resid_post: '#2166ac' };
const EDGE_COLOURS: Record<string, string> = { residual: '#9ecae1', attention: '#fdae6b', head: '#e6550d', mlp: '#74c476' };
const NODE_NAMES: Record<string, string> = { embed: 'embedding', head: 'attention head', resid_mid: 'after attention', mlp: 'MLP', resid_post: 'after the layer' };

/** What a click on a graph node opens: a head's attention pattern, an MLP's neurons, or nothing. */
export type GraphNodeRef = { kind: 'head'; layer: number; head: number; position: number } | { kind: 'mlp'; layer: number; position: number } | null;

/**
 * The graph pruned at `threshold` (≥ the answer's own), drawn as in the LLM Transparency Tool: token positions across,
 * depth upwards (embeddings at the bottom, the prediction at the top); edges drawn wider the more they weigh; heads
 * as orange points between layers, MLPs green, residual stream blue. Each node's customdata is its id.
 */
export function flowGraphFigure(g: GraphData, threshold: number, opts: { nLayers: number; nHeads: number }): FigureSpec {
  const p = pruneFlowGraph({ ...g, edges: g.edges.map((e) => ({ ...e, weight: num(e.weight) })) }, threshold);
  const byId = new Map(p.nodes.map((n) => [n.id, n]));
  const tokens = g.strTokens ?? g.tokens.map(String);
  // Edges binned by kind and width (Plotly draws one width per trace).
  const widths = [1, 2, 3.5, 5.5];
  const bin = (w: number) => (w > 0.5 ? 3 : w > 0.25 ? 2 : w > 0.1 ? 1 : 0);
  const traces: Trace[] = [];
  for (const kind of ['residual', 'attention', 'head', 'mlp'] as const) {
    let named = false; // one legend entry per kind
    for (let b = 0; b < widths.length; b++) {
      const xs: (number | null)[] = [];
      const ys: (number | null)[] = [];
      for (const e of p.edges) {
        if (e.kind !== kind || bin(e.weight) !== b) continue;
        const [x0, y0] = nodeXY(byId.get(e.from)!, opts.nHeads);
        const [x1, y1] = nodeXY(byId.get(e.to)!, opts.nHeads);
        xs.push(x0, x1, null);
        ys.push(y0, y1, null);
      }
      if (xs.length) {
        traces.push({
          type: 'scatter', mode: 'lines', x: xs, y: ys, hoverinfo: 'skip', showlegend: !named,
          name: `${kind} edge`, legendgroup: kind, line: { color: EDGE_COLOURS[kind], width: widths[b] },
        });
        named = true;
      }
    }
  }
  for (const kind of ['embed', 'head', 'resid_mid', 'mlp', 'resid_post'] as const) {
    const nodes = p.nodes.filter((n) => n.kind === kind);
    if (!nodes.length) continue;
    const xy = nodes.map((n) => nodeXY(n, opts.nHeads));
    traces.push({
      type: 'scatter', mode: 'markers', name: NODE_NAMES[kind], x: xy.map((c) => c[0]), y: xy.map((c) => c[1]),
      marker: { color: NODE_COLOURS[kind], size: kind === 'head' || kind === 'mlp' ? 9 : 7, symbol: kind === 'mlp' ? 'square' : kind === 'head' ? 'diamond' : 'circle', line: { width: 0 } },
      customdata: nodes.map((n) => n.id),
      text: nodes.map((n) => `${n.id} · ${NODE_NAMES[n.kind]}${n.layer !== undefined ? ` · layer ${n.layer}` : ''}${n.head !== undefined ? ` head ${n.head}` : ''} · token ${n.position}: ${tokenLabel(tokens[n.position])}`
        + (n.kind === 'head' || n.kind === 'mlp' ? '<br>click to open' : '')),
      hovertemplate: '%{text}<extra></extra>',
    });
  }
  const best = g.prediction[0];
  const predicted = best ? `; the model predicts ${tokenLabel(q(best.str ?? String(best.token)))} (p ${fmt(num(best.prob))})` : '';
  const t = titleOf(`Information flow into the prediction at ${g.position}: ${tokenLabel(q(tokens[g.position]))} — edges above ${threshold} (${p.edges.length} edges, ${p.nodes.length} nodes)${predicted}`, 13);
  const n = tokens.length;
  const layerTicks = Array.from({ length: opts.nLayers }, (_v, l) => [3 * l + 1, 3 * l + 3]).flat();
  const layout: Layout = {
    title: t.title, font: FONT, margin: { l: 70, r: 150, t: t.top, b: 60 }, paper_bgcolor: '#ffffff', plot_bgcolor: '#ffffff',
    hovermode: 'closest',
    legend: { x: 1.01, xanchor: 'left', y: 1, yanchor: 'top', font: { size: 10 } },
    xaxis: {
      title: { text: 'token' }, tickmode: 'array', tickvals: Array.from({ length: n }, (_v, i) => i), ticktext: tokens.map((s, i) => `${i}: ${tokenLabel(s)}`),
      range: [-0.7, n - 0.3], showgrid: false, zeroline: false, automargin: true, tickangle: n > 8 ? -45 : 0,
    },
    yaxis: {
      title: { text: 'layer' }, tickmode: 'array', tickvals: [0, ...layerTicks], ticktext: ['embed', ...layerTicks.map((v) => `L${Math.floor((v - 1) / 3)} ${v % 3 === 1 ? 'heads' : 'out'}`)],
      range: [-0.6, 3 * opts.nLayers + 0.6], showgrid: true, gridcolor: '#f0f0f0', zeroline: false,
    },
  };
  const table: Cell[][] = p.edges.map((e) => [e.from, e.to, e.kind, e.weight]);
  return { name: `graph-pos${g.position}-t${threshold}`, data: traces, layout, table: { columns: ['from', 'to', 'kind', 'weight'], rows: table } };
}

/** What a graph node id opens (heads and MLPs), or null. */
export function graphNodeRef(id: string): GraphNodeRef {
  let m = /^H(\d+)\.(\d+)_(\d+)$/.exec(id);
  if (m) return { kind: 'head', layer: Number(m[1]), head: Number(m[2]), position: Number(m[3]) };
  m = /^M(\d+)_(\d+)$/.exec(id);
  if (m) return { kind: 'mlp', layer: Number(m[1]), position: Number(m[2]) };
  return null;
}

/**
 * How much of the prediction reaches each input token through the graph's routes: the output holds 1, and each node
 * passes what it holds down its incoming edges in proportion to their weights (normalised over the node's kept
 * incoming edges, so a head passes its share on to the tokens it read). At threshold 0 every route ends at an
 * embedding and the shares sum to 1; pruned, a node whose own incoming edges are all below the threshold keeps what
 * it holds: that is `unresolved` (shares + unresolved = 1).
 */
export function graphTokenShares(g: Pick<FlowGraph, 'output' | 'nodes' | 'edges'>, nTokens: number, nHeads: number): { shares: number[]; unresolved: number } {
  const byId = new Map(g.nodes.map((n) => [n.id, n]));
  const into = new Map<string, FlowGraph['edges']>();
  for (const e of g.edges) (into.get(e.to) ?? into.set(e.to, []).get(e.to)!).push(e);
  const held = new Map<string, number>([[g.output, 1]]);
  let unresolved = 0;
  // Deepest first: every node is done before the nodes it reads from (a node's depth is below its targets').
  const order = [...g.nodes].sort((a, b) => nodeXY(b, nHeads)[1] - nodeXY(a, nHeads)[1]);
  for (const n of order) {
    const h = held.get(n.id) ?? 0;
    if (h === 0 || n.kind === 'embed') continue;
    const ins = (into.get(n.id) ?? []).filter((e) => byId.has(e.from));
    const total = ins.reduce((a, e) => a + e.weight, 0);
    if (total <= 0) {
      unresolved += h;
      continue;
    }
    for (const e of ins) held.set(e.from, (held.get(e.from) ?? 0) + (h * e.weight) / total);
  }
  return { shares: Array.from({ length: nTokens }, (_v, t) => held.get(`X0_${t}`) ?? 0), unresolved };
}

/** The prompt's tokens coloured by graphTokenShares of the graph pruned at `threshold`. */
export function graphTokensFigure(g: GraphData, threshold: number, opts: { nHeads: number }): TextFigure {
  const p = pruneFlowGraph({ ...g, edges: g.edges.map((e) => ({ ...e, weight: num(e.weight) })) }, threshold);
  const tokens = g.strTokens ?? g.tokens.map(String);
  const { shares, unresolved } = graphTokenShares(p, tokens.length, opts.nHeads);
  const values = shares.map((v, i) => (i <= g.position ? v : null));
  const rest = unresolved > 5e-4 ? `; ${(unresolved * 100).toFixed(1)} % stops at representations whose own routes are below it` : '';
  let max = 1e-9;
  for (const v of values) if (v !== null) max = Math.max(max, v);
  return {
    name: `graph-tokens-pos${g.position}-t${threshold}`,
    title: `Share of the prediction at ${g.position}: ${q(tokens[g.position])} that reaches each token through the routes above ${threshold}${rest}`,
    tokens, values, valueName: 'share', scale: 'linear', max, marked: g.position,
    hover: values.map((v, i) => (v === null ? `${i}: ${JSON.stringify(tokens[i])} — after the predicting position` : `${i}: ${JSON.stringify(tokens[i])}: ${(v * 100).toFixed(1)} % of the prediction`)),
    table: { columns: ['pos', 'token', 'share'], rows: values.map((v, i): Cell[] => [i, tokens[i], v]) },
  };
}

// ───────────────────────────── neurons ─────────────────────────────

const neuronLabel = (layer: number, neuron: number) => `L${layer}N${neuron}`;

export interface NeuronsTopData {
  tokens: number[];
  strTokens: string[] | null;
  byActivation: { layer: number; neuron: number; activation: N; position: number }[];
  byAttribution: {
    position: number;
    target: { token: number; str: string | null };
    vs: { token: number; str: string | null } | null;
    total: N;
    neurons: { layer: number; neuron: number; value: N; activation: N }[];
  } | null;
}

/** The top neurons `by` activation (largest first) or by |direct attribution| as horizontal bars; customdata "layer.neuron". */
export function topNeuronsFigure(r: NeuronsTopData, by: 'activation' | 'attribution'): FigureSpec | null {
  const tokens = r.strTokens ?? r.tokens.map(String);
  let rows: { layer: number; neuron: number; v: number; hover: string }[];
  let title: string;
  let axis: string;
  if (by === 'activation') {
    rows = r.byActivation.map((n) => ({ layer: n.layer, neuron: n.neuron, v: num(n.activation), hover: `at ${n.position}: ${tokenLabel(q(tokens[n.position]))}` }));
    title = `Top ${rows.length} neurons by activation (mlp.hook_post, any position but the first)`;
    axis = 'activation';
  } else {
    const a = r.byAttribution;
    if (!a) return null;
    rows = a.neurons.map((n) => ({ layer: n.layer, neuron: n.neuron, v: num(n.value), hover: `activation ${fmt(num(n.activation))}` }));
    title = `Top ${rows.length} neurons by |direct logit attribution| to ${attributionSubject({ ...a, tokens: r.tokens, strTokens: r.strTokens })}`;
    axis = 'direct contribution (logits)';
  }
  const t = titleOf(title, 13);
  const labels = rows.map((n) => neuronLabel(n.layer, n.neuron));
  return {
    name: `neurons-top-${by}`,
    data: [{
      type: 'bar', orientation: 'h', y: [...labels].reverse(), x: rows.map((n) => n.v).reverse(),
      marker: { color: rows.map((n) => (n.v >= 0 ? BLUE : RED)).reverse() },
      customdata: rows.map((n) => `${n.layer}.${n.neuron}`).reverse(), text: rows.map((n) => n.hover).reverse(),
      hovertemplate: `%{y}: %{x:.4f} · %{text}<br>click to open<extra></extra>`,
    }],
    layout: {
      title: t.title, font: FONT, margin: { l: 80, r: 20, t: t.top, b: 46 },
      xaxis: { title: { text: axis }, zeroline: true, zerolinecolor: '#888', automargin: true },
      yaxis: { type: 'category', automargin: true, tickfont: { family: 'ui-monospace, "DejaVu Sans Mono", monospace', size: 11 } },
    },
    table: {
      columns: ['rank', 'layer', 'neuron', by === 'activation' ? 'activation' : 'attribution', 'position'],
      rows: rows.map((n, i): Cell[] => [i, n.layer, n.neuron, n.v, by === 'activation' ? r.byActivation[i].position : r.byAttribution!.position]),
    },
  };
}

function maxOf(values: readonly (number | null)[]): number {
  let m = 1e-9;
  for (const v of values) if (v !== null && Number.isFinite(v)) m = Math.max(m, v);
  return m;
}

/** A neuron's activation over a prompt as coloured text (negative activations, GELU's small dip, show as 0). */
export function neuronTextFigure(r: { tokens: number[]; strTokens: string[] | null; layer: number; neuron: number; activations: N[] }): TextFigure {
  const tokens = r.strTokens ?? r.tokens.map(String);
  const values = r.activations.map((a) => {
    const v = num(a);
    return Number.isFinite(v) ? v : null;
  });
  const nl = neuronLabel(r.layer, r.neuron);
  return {
    name: `neuron-${nl}-prompt`, title: `${nl}: activation (blocks.${r.layer}.mlp.hook_post[${r.neuron}]) on each token of the prompt`,
    tokens, values, valueName: 'activation', scale: 'linear', max: maxOf(values), marked: null,
    hover: values.map((v, i) => `${i}: ${JSON.stringify(tokens[i])}: activation ${v === null ? '—' : v.toFixed(4)}`),
    table: { columns: ['layer', 'neuron', 'pos', 'token', 'activation'], rows: values.map((v, i): Cell[] => [r.layer, r.neuron, i, tokens[i], v]) },
  };
}

export interface NeuronExamplesData {
  layer: number;
  neuron: number;
  corpus: { name: string; split: string; tokens: number; contexts: number; contextSize: number };
  density: N;
  examples: { context: number; position: number; value: N; start: number; tokens: number[]; strTokens: string[] | null; activations: N[] }[];
}

/**
 * The neuron's top corpus examples as coloured text, one line per example ("#1 · 3.21 │" then its window; the maximum
 * outlined), on one colour scale (the best example's maximum).
 */
export function neuronExamplesFigure(r: NeuronExamplesData): TextFigure {
  const tokens: string[] = [];
  const values: (number | null)[] = [];
  const hover: string[] = [];
  const rows: Cell[][] = [];
  let marked: number | null = null;
  r.examples.forEach((e, rank) => {
    tokens.push(`#${rank + 1} · ${fmt(num(e.value), 2)} │ `);
    values.push(null);
    hover.push(`example ${rank + 1}: context ${e.context}, its maximum ${fmt(num(e.value), 4)} at position ${e.position}`);
    const strs = e.strTokens ?? e.tokens.map(String);
    strs.forEach((s, i) => {
      const v = num(e.activations[i]);
      if (rank === 0 && e.start + i === e.position) marked = tokens.length;
      tokens.push(s.replace(/\r?\n/g, '↵'));
      values.push(Number.isFinite(v) ? v : null);
      hover.push(`example ${rank + 1}, context ${e.context}, position ${e.start + i}: ${JSON.stringify(s)}: activation ${fmt(v, 4)}`);
      rows.push([r.layer, r.neuron, rank, e.context, e.start + i, s, Number.isFinite(v) ? v : null, e.start + i === e.position]);
    });
    tokens.push('\n');
    values.push(null);
    hover.push('');
  });
  const nl = neuronLabel(r.layer, r.neuron);
  return {
    name: `neuron-${nl}-examples`,
    title: `${nl}: top ${r.examples.length} activating examples in ${r.corpus.name} (${r.corpus.split}: ${r.corpus.contexts} contexts of ${r.corpus.contextSize} tokens); active (> 0) on ${(num(r.density) * 100).toFixed(2)} % of tokens`,
    tokens, values, valueName: 'activation', scale: 'linear', max: maxOf(values), marked, hover,
    table: { columns: ['layer', 'neuron', 'rank', 'context', 'position', 'token', 'activation', 'is_max'], rows },
  };
}

export interface NeuronOutputData {
  layer: number;
  neuron: number;
  top: { token: number; str: string | null; value: N }[];
  bottom: { token: number; str: string | null; value: N }[];
}

/** The tokens one unit of the neuron's activation raises most (blue) and lowers most (red), through W_out[n] · W_U. */
export function neuronOutputFigure(r: NeuronOutputData): FigureSpec {
  const nl = neuronLabel(r.layer, r.neuron);
  const items = [...r.top.map((t) => ({ ...t, end: 'top' })), ...[...r.bottom].reverse().map((t) => ({ ...t, end: 'bottom' }))];
  const labels = items.map((t) => tokenLabel(q(t.str ?? String(t.token))));
  const ys = items.map((_t, i) => items.length - 1 - i); // numeric rows (a token can be at both ends of a tiny model), first at the top
  const t = titleOf(`${nl}: the tokens its output weights raise and lower most (W_out[${r.neuron}] · W_U, per unit of activation)`, 13);
  return {
    name: `neuron-${nl}-output`,
    data: [{
      type: 'bar', orientation: 'h', y: ys, x: items.map((x) => num(x.value)),
      marker: { color: items.map((x) => (x.end === 'top' ? BLUE : RED)) }, text: labels, textposition: 'none',
      hovertemplate: '%{text}: %{x:.4f}<extra></extra>',
    }],
    layout: {
      title: t.title, font: FONT, margin: { l: 110, r: 20, t: t.top, b: 46 },
      xaxis: { title: { text: 'logit change per unit of activation' }, zeroline: true, zerolinecolor: '#888', automargin: true },
      yaxis: {
        tickmode: 'array', tickvals: ys, ticktext: labels, range: [-0.5, items.length - 0.5], automargin: true,
        tickfont: { family: 'ui-monospace, "DejaVu Sans Mono", monospace', size: 11 },
      },
    },
    table: {
      columns: ['layer', 'neuron', 'end', 'rank', 'token', 'str', 'value'],
      rows: [...r.top.map((x, i): Cell[] => [r.layer, r.neuron, 'top', i, x.token, x.str, num(x.value)]), ...r.bottom.map((x, i): Cell[] => [r.layer, r.neuron, 'bottom', i, x.token, x.str, num(x.value)])],
    },
  };
}

/** An intervention on one neuron: the metric of the clean run and of the run with the neuron ablated or patched. */
export function neuronInterventionFigure(r: { layer: number; neuron: number; what: string; metricLabel: string; clean: N; changed: N }): FigureSpec {
  const nl = neuronLabel(r.layer, r.neuron);
  const clean = num(r.clean);
  const changed = num(r.changed);
  const t = titleOf(`${nl} ${r.what}: ${r.metricLabel} from ${fmt(clean)} to ${fmt(changed)} (change ${fmt(changed - clean)})`, 13);
  return {
    name: `neuron-${nl}-${r.what.split(' ')[0]}`,
    data: [{ type: 'bar', orientation: 'h', y: [r.what, 'clean'], x: [changed, clean], marker: { color: ['#e6550d', '#555555'] }, hovertemplate: '%{y}: %{x:.4f}<extra></extra>' }],
    layout: {
      title: t.title, font: FONT, margin: { l: 110, r: 20, t: t.top, b: 40 },
      xaxis: { title: { text: r.metricLabel }, zeroline: true, zerolinecolor: '#888', automargin: true }, yaxis: { type: 'category', automargin: true },
    },
    table: { columns: ['layer', 'neuron', 'run', 'metric', 'value'], rows: [[r.layer, r.neuron, 'clean', r.metricLabel, clean], [r.layer, r.neuron, r.what, r.metricLabel, changed]] },
  };
}
