/** A figure as a self-contained HTML page: plotly.js inlined from node_modules (no CDN), the figure spec as JSON. */
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import type { FigureSpec } from '../hooks/figures/index.ts';

let plotlySource: string | null = null;

/** plotly.js-dist-min's bundle, read once. */
export function plotlyJs(): string {
  if (plotlySource === null) {
    const path = createRequire(import.meta.url).resolve('plotly.js-dist-min/plotly.min.js');
    plotlySource = readFileSync(path, 'utf8').replace(/<\/script/gi, '<\\/script');
  }
  return plotlySource;
}

/** JSON safe inside a <script> element (no `</script>`, no HTML comment openers, no line separators). */
export function scriptJson(value: unknown): string {
  return JSON.stringify(value, (_k, v: unknown) => (typeof v === 'number' && !Number.isFinite(v) ? null : v))
    .replace(/</g, '\\u003c').replace(/\u2028/g, '\\u2028').replace(/\u2029/g, '\\u2029');
}

const escapeHtml = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');

export function figureHtml(fig: FigureSpec, title = fig.name): string {
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${escapeHtml(title)}</title>
<style>html,body{margin:0;background:#fff}#plot{width:100vw;height:100vh}</style>
<script>${plotlyJs()}</script>
</head>
<body>
<div id="plot"></div>
<script>
const figure = ${scriptJson({ data: fig.data, layout: fig.layout })};
Plotly.newPlot('plot', figure.data, figure.layout, { responsive: true, displaylogo: false });
</script>
</body>
</html>
`;
}
