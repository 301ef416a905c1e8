/** IOI figures from POST /api/ioi (logit difference per prompt, per-head direct logit attribution) and POST /api/patch (activation patching). */
import { colorbar, DIVERGING, finiteOrNull, fmt, headLabel, heatmapLayout, indexAxis, maxAbs, num, positionLabels, titleOf, tokenLabel } from './common.ts';
import { headGridFigure } from './heads.ts';
import type { Cell, FigureSpec, Trace } from './types.ts';

export interface IoiData {
  prompts: { text: string; io: string; s: string; logitDiff: number | string }[];
  meanLogitDiff: number | string;
  accuracy: number | string;
  layers: number[];
  heads: number[];
  headAttribution: (number | string)[][];
}

/** One bar per prompt (IO − S logit difference), blue when the model prefers the indirect object. */
export function ioiLogitDiffFigure(r: IoiData): FigureSpec {
  const y = r.prompts.map((p) => num(p.logitDiff));
  const trace: Trace = {
    type: 'bar', x: r.prompts.map((_p, i) => i), y, marker: { color: y.map((v) => (v > 0 ? '#2166ac' : '#b2182b')) },
    customdata: r.prompts.map((p) => `${tokenLabel(p.text)}<br>IO ${tokenLabel(p.io)} · S ${tokenLabel(p.s)}`),
    hovertemplate: '%{customdata}<br>logit diff %{y:.3f}<extra>prompt %{x}</extra>',
  };
  const title = titleOf(`IO − S logit difference per prompt (mean ${fmt(num(r.meanLogitDiff))}, accuracy ${(num(r.accuracy) * 100).toFixed(0)}%)`, 13);
  return {
    name: 'ioi-logit-diff',
    data: [trace],
    layout: {
      title: title.title,
      margin: { l: 60, r: 20, t: title.top, b: 50 },
      font: { size: 11 },
      xaxis: { title: { text: 'prompt' }, tickmode: 'linear', dtick: r.prompts.length > 30 ? 5 : 1, automargin: true },
      yaxis: { title: { text: 'logit(IO) − logit(S)' }, zeroline: true, automargin: true },
    },
    table: { columns: ['prompt', 'text', 'io', 's', 'logit_diff'], rows: r.prompts.map((p, i) => [i, p.text, p.io, p.s, num(p.logitDiff)]) },
  };
}

export function ioiAttributionFigure(r: IoiData): FigureSpec {
  return headGridFigure({ layers: r.layers, heads: r.heads, values: r.headAttribution }, {
    title: 'Direct logit attribution of IO − S per head (mean over prompts)', valueName: 'attribution', scale: 'diverging', name: 'ioi-head-attribution',
  });
}

export interface PatchData {
  cleanStrTokens: string[] | null;
  cleanTokens: number[];
  metric: { label: string };
  clean: number | string;
  corrupted: number | string;
  results: { kind: string; dims: ('layer' | 'pos' | 'head')[]; values: (number | string)[][] | (number | string)[][][] }[];
  /** How the values were made: activation patching (default), or its linear estimate by attribution patching (the same units). */
  method?: 'activation' | 'attribution';
}

const PATCH_TITLES: Record<string, string> = {
  resid_pre: 'Patching the residual stream (resid_pre)',
  attn_out: 'Patching attention outputs (attn_out)',
  mlp_out: 'Patching MLP outputs (mlp_out)',
  head_out_all_pos: 'Patching head outputs (all positions)',
  head_out_by_pos: 'Patching head outputs by position',
};

/** One patching result as a heatmap of the normalised metric (1 = clean, 0 = corrupted); [layer][pos][head] becomes rows L{l}H{h} × positions. */
export function patchingFigure(r: PatchData, index: number): FigureSpec {
  const res = r.results[index];
  if (!res) throw new Error(`patchingFigure: result ${index} is not in the answer (${r.results.length} results)`);
  const strTokens = r.cleanStrTokens ?? r.cleanTokens.map(String);
  const pos = positionLabels(strTokens);
  const dims = res.dims.join(',');
  let z: (number | null)[][];
  let rows: string[];
  let cols: string[];
  let xTitle: string;
  let yTitle: string;
  const table: Cell[][] = [];
  if (dims === 'layer,pos') {
    const v = res.values as (number | string)[][];
    z = v.map((row) => row.map(finiteOrNull));
    rows = v.map((_r, l) => `L${l}`);
    cols = pos;
    xTitle = 'position';
    yTitle = 'layer';
    z.forEach((row, l) => row.forEach((x, p) => table.push([res.kind, l, p, null, strTokens[p], x])));
  } else if (dims === 'layer,head') {
    const v = res.values as (number | string)[][];
    z = v.map((row) => row.map(finiteOrNull));
    rows = v.map((_r, l) => `L${l}`);
    cols = (v[0] ?? []).map((_x, h) => `H${h}`);
    xTitle = 'head';
    yTitle = 'layer';
    z.forEach((row, l) => row.forEach((x, h) => table.push([res.kind, l, null, h, null, x])));
  } else if (dims === 'layer,pos,head') {
    const v = res.values as (number | string)[][][];
    const nh = v[0]?.[0]?.length ?? 0;
    z = [];
    rows = [];
    v.forEach((byPos, l) => {
      for (let h = 0; h < nh; h++) {
        rows.push(headLabel(l, h));
        z.push(byPos.map((heads) => finiteOrNull(heads[h])));
      }
      byPos.forEach((heads, p) => heads.forEach((x, h) => table.push([res.kind, l, p, h, strTokens[p], finiteOrNull(x)])));
    });
    cols = pos;
    xTitle = 'position';
    yTitle = 'head';
  } else throw new Error(`patchingFigure: unexpected dims [${dims}]`);
  const lim = Math.max(1, maxAbs(z));
  const trace: Trace = {
    type: 'heatmap', z, colorscale: DIVERGING, zmid: 0, zmin: -lim, zmax: lim, colorbar: colorbar('normalised logit diff'),
    customdata: z.map((row, i) => row.map((_x, j) => `${rows[i]} · ${cols[j]}`)), hovertemplate: '%{customdata}<br>%{z:.3f}<extra></extra>', xgap: 1, ygap: 1,
  };
  const attribution = r.method === 'attribution';
  const what = PATCH_TITLES[res.kind] ?? res.kind;
  return {
    name: `${attribution ? 'attr-' : ''}patch-${res.kind}`,
    data: [trace],
    layout: heatmapLayout(`${attribution ? `${what}, estimated by attribution patching` : what}: ${tokenLabel(r.metric.label)}, normalised (clean ${fmt(num(r.clean))} = 1, corrupted ${fmt(num(r.corrupted))} = 0)`, {
      xaxis: indexAxis(cols, xTitle),
      yaxis: indexAxis(rows, yTitle, { reversed: true }),
    }),
    table: { columns: ['kind', 'layer', 'pos', 'head', 'token', 'normalised_metric'], rows: table },
  };
}
