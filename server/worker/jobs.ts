/** The job kinds a model worker runs, by name. To add one: write a JobHandler and list it here (see server/API.md, "Adding an endpoint"). */
import type { JobHandler } from './context.ts';
import { ablate, ablateSweep, attributionPatch, composition, copying, headsDetect, ioi, logitLens, patch, positional, saliency, topCopied } from './analysis.ts';
import { attribution, graph, neuronActivationsJob, neuronExamples, neuronOutput, neuronPatch, neuronsTop } from './explain.ts';
import { activations, attention, forward, tokenize } from './inference.ts';
import { feature, featureAblate, features, saeEval, saeList, saeLoad, steer } from './saes.ts';

export const JOBS = {
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
  composition,
  copying,
  positional,
  topCopied,
  attribution,
  graph,
  neuronsTop,
  neuronActivations: neuronActivationsJob,
  neuronExamples,
  neuronOutput,
  neuronPatch,
  saeList,
  saeLoad,
  features,
  feature,
  steer,
  featureAblate,
  saeEval,
} satisfies Record<string, JobHandler<never, unknown>>;

export type JobKind = keyof typeof JOBS;
export type JobPayload<K extends JobKind> = Parameters<(typeof JOBS)[K]>[1];
export type JobResult<K extends JobKind> = Awaited<ReturnType<(typeof JOBS)[K]>>;
