/**
 * The job kinds a model worker runs, by name: every feature's handler (services/registry.ts), and the handlers not yet
 * moved into a service module.
 */
import type { JobHandler } from '../../services/context.ts';
import { SERVICE_LIST, type ServiceKind, type ServicePayload, type ServiceResult } from '../../services/registry.ts';
import { ablate, ablateSweep, attributionPatch, headsDetect, ioi, logitLens, patch, saliency } from './analysis.ts';
import { activations, attention, forward, tokenize } from './inference.ts';

const LEGACY_JOBS = {
  tokenize,
  forward,
  attention,
  activations,
  logitLens,
  ablate,
  ablateSweep,
  patch,
  attributionPatch,
  saliency,
  headsDetect,
  ioi,
} satisfies Record<string, JobHandler<never, unknown>>;
type LegacyKind = keyof typeof LEGACY_JOBS;

export const JOBS: Record<string, JobHandler<never, unknown>> = {
  ...LEGACY_JOBS,
  ...Object.fromEntries(SERVICE_LIST.map((f) => [f.kind, f.handler as JobHandler<never, unknown>])),
};

export type JobKind = LegacyKind | ServiceKind;
export type JobPayload<K extends JobKind> = K extends ServiceKind ? ServicePayload<K> : K extends LegacyKind ? Parameters<(typeof LEGACY_JOBS)[K]>[1] : never;
export type JobResult<K extends JobKind> = K extends ServiceKind ? ServiceResult<K> : K extends LegacyKind ? Awaited<ReturnType<(typeof LEGACY_JOBS)[K]>> : never;
