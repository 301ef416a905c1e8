/** Rich output for the notebooks: a figure spec (hooks/figures) or a small table as a Jupyter MIME bundle (Plotly JSON + self-contained HTML). */
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import type { FigureSpec } from '../../hooks/figures/index.ts';

export type MimeBundle = Record<string, unknown>;

interface DenoJupyter {
  display(bundle: MimeBundle, opts: { raw: true }): Promise<void>;
}

/**
 * Sends a MIME bundle to the notebook with Deno's `Deno.jupyter.display`, awaited, so the output is on its way before
 * the cell finishes (a cell's last value is sent later, and a headless runner can miss a large one). Outside a Deno
 * kernel (tsx, node) it prints the bundle's text/plain.
 */
export async function display(bundle: MimeBundle): Promise<void> {
  const jupyter = (globalThis as { Deno?: { jupyter?: DenoJupyter } }).Deno?.jupyter;
  if (jupyter) {
    await jupyter.display(bundle, { raw: true });
    // Deno's kernel can report the cell idle before its IOPub sender has sent a display, and a headless runner
    // (nbclient) then drops it: give the sender time, more for large bundles (plotly.js itself is 3.5 MB).
    const bytes = Object.values(bundle).reduce<number>((n, v) => n + (typeof v === 'string' ? v.length : JSON.stringify(v).length), 0);
    await new Promise((resolve) => setTimeout(resolve, 30 + Math.ceil(bytes / 5_000)));
  }
  else console.log(String(bundle['text/plain'] ?? ''));
}

let plotlySource: string | null = null;
function plotlyJs(): string {
  if (plotlySource === null) {
    const path = createRequire(import.meta.url).resolve('plotly.js-dist-min/plotly.min.js');
    plotlySource = readFileSync(path, 'utf8').replace(/<\/script/gi, '<\\/script');
  }
  return plotlySource;
}

/** JSON safe inside <script> (no `</script>`, no line separators). */
function scriptJson(value: unknown): string {
  return JSON.stringify(value).replace(/</g, '\\u003c').replace(/\u2028/g, '\\u2028').replace(/\u2029/g, '\\u2029');
}

const escapeHtml = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

let plotCount = 0;

/**
 * Loads plotly.js into the page once (inlined from node_modules, no CDN), so that the HTML of later `plot`s can draw.
 * Front ends that render `application/vnd.plotly.v1+json` (VS Code, JupyterLab with plotly's extension) need no setup.
 */
export function setupPlotly(): Promise<void> {
  // Classic Notebook has require.js: hide `define` so the bundle sets window.Plotly.
  const html = `<script>(function(){var d=window.define;window.define=undefined;${plotlyJs()}\nwindow.define=d;})();</script><span style="color:#888">plotly.js loaded</span>`;
  return display({ 'text/html': html, 'text/plain': 'plotly.js loaded' });
}

/** A figure as output: Plotly's MIME type, and HTML that draws it with the page's plotly.js (see setupPlotly). */
export function plot(fig: FigureSpec, opts: { height?: number } = {}): Promise<void> {
  const id = `lensboard-plot-${Date.now().toString(36)}-${plotCount++}`;
  const height = opts.height ?? (Number(fig.layout.height) || 460);
  const figure = { data: fig.data, layout: { ...fig.layout, height } };
  const html = `<div id="${id}" style="width:100%;height:${height}px"></div>
<script>(function(){var f=${scriptJson(figure)};function draw(){window.Plotly.newPlot(${JSON.stringify(id)},f.data,f.layout,{responsive:true,displaylogo:false});}
if(window.Plotly){draw();}else{var t=setInterval(function(){if(window.Plotly){clearInterval(t);draw();}},100);}})();</script>`;
  return display({
    'application/vnd.plotly.v1+json': figure,
    'text/html': html,
    'text/plain': `[figure ${fig.name}: ${fig.table.rows.length} values]`,
  });
}

/** A small table (rows of cells) as HTML and plain text. */
export function table(columns: string[], rows: (string | number | null)[][]): Promise<void> {
  const fmt = (v: string | number | null) => (v === null ? '' : typeof v === 'number' ? (Number.isInteger(v) ? String(v) : v.toFixed(4)) : v);
  const html = `<table><thead><tr>${columns.map((c) => `<th>${escapeHtml(c)}</th>`).join('')}</tr></thead><tbody>${rows
    .map((r) => `<tr>${r.map((v) => `<td>${escapeHtml(fmt(v))}</td>`).join('')}</tr>`).join('')}</tbody></table>`;
  const widths = columns.map((c, i) => Math.max(c.length, ...rows.map((r) => fmt(r[i]).length)));
  const line = (cells: string[]) => cells.map((c, i) => c.padEnd(widths[i])).join('  ').trimEnd();
  const text = [line(columns), ...rows.map((r) => line(r.map(fmt)))].join('\n');
  return display({ 'text/html': html, 'text/plain': text });
}
