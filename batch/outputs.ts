/**
 * The outputs of a finished experiment, from its shard files in shard order (so a local and a distributed run of
 * one experiment write the same bytes): items.jsonl (every item and its analysis result), aggregate.json (mean and
 * standard error of the analysis's numbers over items), figures.json (the figure specs, for the dashboard) and each
 * figure as CSV / HTML / PNG / SVG.
 */
import { open, rename, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { TreeStats, type NumericTree } from '../hooks/experiments/aggregate.ts';
import { writeExperiment, type Format } from '../cli/output.ts';
import type { Progress } from '../cli/progress.ts';
import { stringifyJson } from '../services/common/nonFinite.ts';
import { ANALYSES, analysisOptions, type AggregateView } from './analyses.ts';
import { BatchError } from './errors.ts';
import { writeFileAtomic, type ExperimentStore } from './store.ts';

/** What aggregate.json holds. */
export interface AggregateFile extends Omit<AggregateView, 'perItem'> {
  name: string;
  model: string;
  dataset: unknown;
  analysis: unknown;
  shardSize: number;
  shards: number;
}

/** Writes the outputs; returns the paths written. */
export async function writeOutputs(store: ExperimentStore, formats: readonly Format[], progress?: Progress): Promise<string[]> {
  const { spec, items, shards } = store.prepared;
  const analysis = ANALYSES[spec.analysis.kind];
  const options = analysisOptions(spec.analysis);
  const stats = new TreeStats();
  const perItem: AggregateView['perItem'] = [];
  let axes: Record<string, unknown> | null = null;

  const jsonl = join(store.dir, 'items.jsonl');
  const tmp = `${jsonl}.${process.pid}.tmp`;
  const fh = await open(tmp, 'w');
  let buffered: string[] = [];
  let size = 0;
  const flush = async () => {
    await fh.write(buffered.join(''));
    buffered = [];
    size = 0;
  };
  try {
    for (const s of shards) {
      const file = await store.readShard(s.index);
      for (let j = 0; j < file.results.length; j++) {
        const index = s.start + j;
        const result = file.results[j];
        const line = `${stringifyJson({ index, item: items[index], result })}\n`;
        buffered.push(line);
        size += line.length;
        if (size > 1 << 20) await flush();
        const values = analysis.values(result, options);
        axes ??= analysis.axes(result, options);
        try {
          stats.add(values, `item ${index}`);
        } catch (e) {
          throw new BatchError(`cannot average the items' results: ${(e as Error).message} (per-position results need prompts of one token length)`);
        }
        const scalars: Record<string, number> = {};
        if (typeof values === 'object' && !Array.isArray(values)) {
          for (const [k, v] of Object.entries(values)) if (typeof v === 'number') scalars[k] = v;
        }
        perItem.push({ item: items[index], scalars });
      }
    }
    await flush();
    await fh.close();
    await rename(tmp, jsonl);
  } catch (e) {
    await fh.close().catch(() => {});
    await unlink(tmp).catch(() => {});
    throw e;
  }

  const view: AggregateView = { ...stats.result(), axes: axes!, perItem };
  const aggregate: AggregateFile = {
    name: spec.name, model: spec.model, dataset: spec.dataset, analysis: spec.analysis, shardSize: spec.shardSize, shards: shards.length,
    n: view.n, axes: view.axes, mean: view.mean as NumericTree, stderr: view.stderr as NumericTree,
  };
  const figures = analysis.figures(view, options);
  const files = [jsonl];
  await writeFileAtomic(join(store.dir, 'aggregate.json'), `${stringifyJson(aggregate)}\n`);
  files.push(join(store.dir, 'aggregate.json'));
  await writeFileAtomic(join(store.dir, 'figures.json'), `${stringifyJson(figures)}\n`);
  files.push(join(store.dir, 'figures.json'));
  const figureFormats = formats.filter((f) => f !== 'json');
  if (figureFormats.length > 0) files.push(...(await writeExperiment(store.dir, { result: null, figures }, figureFormats, progress)));
  return files;
}
