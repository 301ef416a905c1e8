/** Writes an experiment: result.json (the full result), and per figure its table as CSV and the figure as HTML, PNG and SVG. */
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { tableToCsv } from '../hooks/figures/index.ts';
import { stringifyJson } from '../services/common/nonFinite.ts';
import type { Experiment } from './commands.ts';
import { figureHtml } from './html.ts';
import type { Progress } from './progress.ts';

export const FORMATS = ['json', 'csv', 'html', 'png', 'svg'] as const;
export type Format = (typeof FORMATS)[number];

/** Writes the files; returns their paths in the order written. */
export async function writeExperiment(outDir: string, exp: Experiment, formats: readonly Format[], progress?: Progress): Promise<string[]> {
  await mkdir(outDir, { recursive: true });
  const files: string[] = [];
  const put = async (name: string, content: string | Buffer) => {
    const path = join(outDir, name);
    await writeFile(path, content);
    files.push(path);
  };
  const want = new Set(formats);
  if (want.has('json')) await put('result.json', `${stringifyJson(exp.result)}\n`);
  for (const fig of exp.figures) {
    if (want.has('csv')) await put(`${fig.name}.csv`, tableToCsv(fig.table));
    if (want.has('html')) await put(`${fig.name}.html`, figureHtml(fig));
  }
  const images = (['png', 'svg'] as const).filter((f) => want.has(f));
  if (images.length > 0 && exp.figures.length > 0) {
    const { openRenderer } = await import('./render.ts'); // playwright-core only when images are asked for
    const renderer = await openRenderer();
    try {
      let done = 0;
      const total = exp.figures.length * images.length;
      for (const fig of exp.figures) {
        for (const f of images) {
          await put(`${fig.name}.${f}`, await renderer.render(fig, f));
          progress?.update(++done, total, `${fig.name}.${f}`);
        }
      }
    } finally {
      await renderer.close();
    }
  }
  progress?.finish();
  return files;
}
