/** CLI flags and request fill-ins that several services' commands share (cli/commands.ts's combined commands too). */
import type { CliFlag } from '../service.ts';

export const PREPEND_BOS_FLAG: CliFlag = { flag: 'no-prepend-bos', type: 'bool', negate: true, path: 'prependBos', help: 'do not prepend <|endoftext|> to text prompts' };
export const SEED_FLAG: CliFlag = { flag: 'seed', type: 'int', path: 'seed', help: 'random seed (default 0)' };
export const CHUNK_FLAG: CliFlag = { flag: 'chunk-size', type: 'int', path: 'chunkSize', help: 'variants per batched forward pass (default 32)' };

/** The metric's token and position flags; `kinds` names the metric kinds that read a position. */
export const metricFlags = (kinds: string): CliFlag[] => [
  { flag: 'correct', type: 'token', path: 'metric.correct', help: 'logit_diff: the token counted positively (e.g. " Mary", or an id)' },
  { flag: 'incorrect', type: 'token', path: 'metric.incorrect', help: 'logit_diff: the token subtracted' },
  { flag: 'position', type: 'int', path: 'metric.position', help: `position the metric reads (${kinds}; negative counts from the end; default -1)` },
];

/** Metric kind from the flags given: --correct/--incorrect → logit_diff, --token → prob, nothing → `fallback` (loss) or left out. */
export function inferMetric(req: Record<string, unknown>, fallback: 'loss' | null): void {
  const m = req.metric as Record<string, unknown> | undefined;
  if (m === undefined) {
    if (fallback) req.metric = { kind: fallback };
    return;
  }
  if (m.kind !== undefined) return;
  if ('correct' in m || 'incorrect' in m) m.kind = 'logit_diff';
  else if ('token' in m) m.kind = 'prob';
}
