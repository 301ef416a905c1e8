/** Ablation figures from POST /api/ablate/sweep (layers × heads change of the metric) and POST /api/ablate (clean vs ablated). */
import { fmt, num, titleOf, tokenLabel } from './common.ts';
import { headGridFigure } from './heads.ts';
import type { FigureSpec, Trace } from './types.ts';

export interface MetricEchoData {
  kind: 'logit_diff' | 'loss' | 'prob' | 'logprob';
  label: string;
}

export interface AblateSweepData {
  metric: MetricEchoData;
  layers: number[];
  heads: number[];
  clean: number | string;
  values: (number | string)[][];
  delta: (number | string)[][];
}

export interface AblateData {
  metric: MetricEchoData;
  clean: number | string;
  ablated: number | string;
  delta: number | string;
}

/** The change of the metric when each head is ablated alone (diverging around 0); `selected` heads outlined. */
export function ablationSweepFigure(r: AblateSweepData, opts: { mode?: string; selected?: { layer: number; head: number }[] } = {}): FigureSpec {
  return headGridFigure(
    { layers: r.layers, heads: r.heads, values: r.delta },
    {
      title: `Δ ${tokenLabel(r.metric.label)} when one head is ${opts.mode ?? 'zero'}-ablated (clean ${fmt(num(r.clean))})`,
      valueName: 'delta', scale: 'diverging', selected: opts.selected, name: `ablation-sweep-${r.metric.kind}`,
      extra: [{ column: 'ablated', values: r.values }],
    },
  );
}

/** Clean vs ablated metric of one run with a set of ablations. */
export function ablationResultFigure(r: AblateData, setLabel: string): FigureSpec {
  const clean = num(r.clean);
  const ablated = num(r.ablated);
  const trace: Trace = {
    type: 'bar', orientation: 'h', y: ['clean', 'ablated'], x: [clean, ablated], marker: { color: ['#4d4d4d', '#d6604d'] },
    text: [fmt(clean), fmt(ablated)], textposition: 'auto', hovertemplate: '%{y}: %{x:.4g}<extra></extra>',
  };
  const title = titleOf(`${tokenLabel(r.metric.label)} with ${tokenLabel(setLabel)} ablated: Δ ${fmt(num(r.delta))}`, 13);
  return {
    name: `ablation-${r.metric.kind}`,
    data: [trace],
    layout: {
      title: title.title,
      margin: { l: 70, r: 20, t: title.top, b: 40 },
      xaxis: { title: { text: tokenLabel(r.metric.label) }, zeroline: true, automargin: true },
      yaxis: { autorange: 'reversed', automargin: true },
      font: { size: 11 },
    },
    table: { columns: ['run', 'metric', 'value'], rows: [['clean', r.metric.label, clean], ['ablated', r.metric.label, ablated]] },
  };
}
