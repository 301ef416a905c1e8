/**
 * One shard's work, the same wherever it runs (the local runner, a queue worker): each item through the analysis's
 * server job handler, the results as the shard file's text. Items run one at a time and depend on nothing but
 * themselves, so a shard gives the same bytes on any machine with the same model, device and thread count.
 */
import type { HookedTransformer } from '../hooks/HookedTransformer.ts';
import { generateRepeatedTokens } from '../hooks/analysis/induction.ts';
import type { DatasetItem } from '../hooks/experiments/datasets.ts';
import type { ShardRange } from '../hooks/experiments/shards.ts';
import { CLI_LIMITS } from '../services/limits.ts';
import { stringifyJson } from '../services/common/nonFinite.ts';
import { UserError, type JobContext } from '../services/context.ts';
import type { SaeStore } from '../services/saes/store.ts';
import { ANALYSES, analysisOptions, ItemFieldError } from './analyses.ts';
import { FORMAT_VERSION, type AnalysisSpec, type PreparedExperiment } from './experiment.ts';
import type { ShardFile } from './store.ts';

/** Everything a worker needs to run a shard (no files: the items travel with it). */
export interface ShardTask {
  v: number;
  fingerprint: string;
  /** The experiment's model, resolved by the worker (a name under models/, a hub name, or a path on the worker). */
  model: string;
  analysis: AnalysisSpec;
  shard: number;
  start: number;
  items: DatasetItem[];
}

export function shardTask(p: PreparedExperiment, s: ShardRange): ShardTask {
  return { v: FORMAT_VERSION, fingerprint: p.fingerprint, model: p.spec.model, analysis: p.spec.analysis, shard: s.index, start: s.start, items: p.items.slice(s.start, s.end) };
}

/** A repeated-token item as a token prompt (BOS + span + span from the model's pool), for analyses that read prompts. */
function withPrompt(model: HookedTransformer, item: DatasetItem): DatasetItem {
  if (!item.repeated || item.prompt !== undefined) return item;
  const { seqLen, seed } = item.repeated;
  try {
    return { ...item, prompt: generateRepeatedTokens(model.cfg, { seqLen, batch: 1, seed })[0] };
  } catch (e) {
    throw new UserError(`repeated.seqLen: ${(e as Error).message}`);
  }
}

/**
 * Runs the shard's items; `onItem(done, total)` after each. Returns the shard file's text. An item the analysis
 * refuses is a UserError naming the item (its index in the dataset). `saes` finds the SAEs that SAE analyses name
 * (under the model's saes/ folder, or org/repo/subfolder on the hub), as the server's model thread does.
 */
export async function runShard(model: HookedTransformer, task: ShardTask, onItem?: (done: number, total: number) => void, saes?: SaeStore): Promise<string> {
  const quiet: JobContext = { limits: CLI_LIMITS, progress: () => {}, checkCancelled: () => {}, ...(saes ? { saes } : {}) };
  if (task.v !== FORMAT_VERSION) throw new UserError(`shard format ${task.v}; this Lensboard reads format ${FORMAT_VERSION} (update every worker to one version)`);
  const analysis = ANALYSES[task.analysis.kind];
  if (!analysis) throw new UserError(`unknown analysis '${task.analysis.kind}'`);
  const options = analysisOptions(task.analysis);
  const results: unknown[] = [];
  for (let i = 0; i < task.items.length; i++) {
    const index = task.start + i;
    try {
      const item = analysis.readsRepeated ? task.items[i] : withPrompt(model, task.items[i]);
      const parsed = analysis.schema.safeParse(analysis.request(options, item));
      if (!parsed.success) {
        throw new UserError(parsed.error.issues.map((x) => `${x.path.join('.') || '(request)'}: ${x.message}`).join('; '));
      }
      results.push(await analysis.run(model, parsed.data as never, quiet));
    } catch (e) {
      if (e instanceof UserError || e instanceof ItemFieldError) throw new UserError(`item ${index}: ${e.message}`);
      throw e;
    }
    onItem?.(i + 1, task.items.length);
  }
  const file: ShardFile = { v: FORMAT_VERSION, fingerprint: task.fingerprint, shard: task.shard, start: task.start, results };
  return `${stringifyJson(file)}\n`;
}
