/**
 * Every service, in the API's documentation order. The server's routes and OpenAPI document (server/routes/services.ts),
 * the runner's job table (server/worker/jobs.ts), the CLI's commands (cli/commands.ts) and the dashboard client's types
 * (ui/src/lib/api.ts) are derived from this list: adding a service is its module and one line here.
 */
import type { z } from 'zod';
import type { AnyService } from './service.ts';
// inference
import { tokenize } from './inference/tokenize.ts';
import { forward } from './inference/forward.ts';
import { attention } from './inference/attention.ts';
import { activations } from './inference/activations.ts';
// analysis
import { logitLens } from './analysis/logitLens.ts';
import { ablate } from './analysis/ablate.ts';
import { ablateSweep } from './analysis/ablateSweep.ts';
import { patch } from './analysis/patch.ts';
import { attributionPatch } from './analysis/attributionPatch.ts';
import { saliency } from './analysis/saliency.ts';
import { headsDetect } from './analysis/headsDetect.ts';
import { ioi } from './analysis/ioi.ts';
// circuits
import { composition } from './circuits/composition.ts';
import { copying } from './circuits/copying.ts';
import { positional } from './circuits/positional.ts';
import { topCopied } from './circuits/topCopied.ts';
// explain
import { attribution } from './explain/attribution.ts';
import { graph } from './explain/graph.ts';
import { neuronsTop } from './explain/neuronsTop.ts';
import { neuronActivations } from './explain/neuronActivations.ts';
import { neuronExamples } from './explain/neuronExamples.ts';
import { neuronOutput } from './explain/neuronOutput.ts';
import { neuronPatch } from './explain/neuronPatch.ts';
// SAEs
import { saeList } from './saes/saeList.ts';
import { saeLoad } from './saes/saeLoad.ts';
import { saeEval } from './saes/saeEval.ts';
import { features } from './saes/features.ts';
import { feature } from './saes/feature.ts';
import { featureAblate } from './saes/featureAblate.ts';
import { steer } from './saes/steer.ts';

export const SERVICE_LIST = [
  // inference
  tokenize,
  forward,
  attention,
  activations,
  // analysis
  logitLens,
  ablate,
  ablateSweep,
  patch,
  attributionPatch,
  saliency,
  headsDetect,
  ioi,
  // circuits
  composition,
  copying,
  positional,
  topCopied,
  // explain
  attribution, graph, neuronsTop, neuronActivations, neuronExamples, neuronOutput, neuronPatch,
  // SAEs
  saeList, saeLoad, saeEval, features, feature, featureAblate, steer,
] as const satisfies readonly AnyService[];

type Services = typeof SERVICE_LIST;
/** Service by kind (types only: the client's types and the job table's payload and result types). */
export type ServicesByKind = { [F in Services[number] as F['kind']]: F };
export type ServiceKind = keyof ServicesByKind;

export const SERVICES = Object.fromEntries(SERVICE_LIST.map((f) => [f.kind, f])) as unknown as ServicesByKind;

/** What a client sends (defaults not yet applied) and what it gets back (JSON: non-finite numbers as strings). */
export type ServiceRequest<K extends ServiceKind> = z.input<ReturnType<ServicesByKind[K]['request']>>;
export type ServiceResponse<K extends ServiceKind> = z.infer<ServicesByKind[K]['response']>;
/** What the handler gets (defaults applied) and returns. */
export type ServicePayload<K extends ServiceKind> = z.output<ReturnType<ServicesByKind[K]['request']>>;
export type ServiceResult<K extends ServiceKind> = Awaited<ReturnType<ServicesByKind[K]['handler']>>;
/** The route path of a service (a literal type: the client's paths are checked against it). */
export type ServicePath<K extends ServiceKind> = ServicesByKind[K]['route']['path'];
