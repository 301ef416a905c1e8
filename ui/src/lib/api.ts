/**
 * The one API client of the dashboard. Request and response types come from the services' zod schemas through the
 * registry (ServiceRequest / ServiceResponse: type-only imports, no server code is bundled). Job endpoints are read as
 * Server-Sent Events so long runs report progress and can be cancelled (DELETE /api/jobs/:id and abort).
 */
import type { z } from 'zod';
import type { ProgressEvent } from '../../../hooks/loading/progress.ts';
import type { ServiceKind, ServicePath, ServiceRequest, ServiceResponse } from '../../../services/registry.ts';
import type { ExperimentResponse, ExperimentsResponse } from '../../../server/routes/experiments.ts';
import type { LoadBody, ModelResponse, ModelsResponse } from '../../../server/routes/models.ts';

export type Models = z.infer<typeof ModelsResponse>;
export type ModelInfo = z.infer<typeof ModelResponse>;
export type LoadRequest = z.input<typeof LoadBody>;
export type TokenizeRequest = ServiceRequest<'tokenize'>;
export type TokenizeResult = ServiceResponse<'tokenize'>;
export type ForwardRequest = ServiceRequest<'forward'>;
export type ForwardResult = ServiceResponse<'forward'>;
export type AttentionRequest = ServiceRequest<'attention'>;
export type AttentionResult = ServiceResponse<'attention'>;
export type LogitLensRequest = ServiceRequest<'logitLens'>;
export type LogitLensResult = ServiceResponse<'logitLens'>;
export type AblateRequest = ServiceRequest<'ablate'>;
export type AblateResult = ServiceResponse<'ablate'>;
export type AblateSweepRequest = ServiceRequest<'ablateSweep'>;
export type AblateSweepResult = ServiceResponse<'ablateSweep'>;
export type AblationMetric = AblateRequest['metric'];
export type Ablation = AblateRequest['ablations'][number];
export type PatchRequest = ServiceRequest<'patch'>;
export type PatchResult = ServiceResponse<'patch'>;
export type SaliencyRequest = ServiceRequest<'saliency'>;
export type SaliencyResult = ServiceResponse<'saliency'>;
export type HeadsDetectRequest = ServiceRequest<'headsDetect'>;
export type HeadsDetectResult = ServiceResponse<'headsDetect'>;
export type IoiRequest = ServiceRequest<'ioi'>;
export type IoiResult = ServiceResponse<'ioi'>;
export type CompositionRequest = ServiceRequest<'composition'>;
export type CompositionResult = ServiceResponse<'composition'>;
export type CopyingRequest = ServiceRequest<'copying'>;
export type CopyingResult = ServiceResponse<'copying'>;
export type PositionalRequest = ServiceRequest<'positional'>;
export type PositionalResult = ServiceResponse<'positional'>;
export type TopCopiedRequest = ServiceRequest<'topCopied'>;
export type TopCopiedResult = ServiceResponse<'topCopied'>;
export type AttributionRequest = ServiceRequest<'attribution'>;
export type AttributionResult = ServiceResponse<'attribution'>;
export type GraphRequest = ServiceRequest<'graph'>;
export type GraphResult = ServiceResponse<'graph'>;
export type NeuronsTopRequest = ServiceRequest<'neuronsTop'>;
export type NeuronsTopResult = ServiceResponse<'neuronsTop'>;
export type NeuronActivationsRequest = ServiceRequest<'neuronActivations'>;
export type NeuronActivationsResult = ServiceResponse<'neuronActivations'>;
export type NeuronExamplesRequest = ServiceRequest<'neuronExamples'>;
export type NeuronExamplesResult = ServiceResponse<'neuronExamples'>;
export type NeuronOutputRequest = ServiceRequest<'neuronOutput'>;
export type NeuronOutputResult = ServiceResponse<'neuronOutput'>;
export type NeuronPatchRequest = ServiceRequest<'neuronPatch'>;
export type NeuronPatchResult = ServiceResponse<'neuronPatch'>;
export type LoadProgress = ProgressEvent;
export type ExperimentList = z.infer<typeof ExperimentsResponse>;
export type ExperimentDetail = z.infer<typeof ExperimentResponse>;
export type SaeList = ServiceResponse<'saeList'>;
export type SaeInfoResult = ServiceResponse<'saeLoad'>;
export type SaeLoadRequest = ServiceRequest<'saeLoad'>;
export type FeaturesRequest = ServiceRequest<'features'>;
export type FeaturesResult = ServiceResponse<'features'>;
export type FeatureRequest = ServiceRequest<'feature'>;
export type FeatureResult = ServiceResponse<'feature'>;
export type SteerRequest = ServiceRequest<'steer'>;
export type SteerResult = ServiceResponse<'steer'>;
export type FeatureAblateRequest = ServiceRequest<'featureAblate'>;
export type FeatureAblateResult = ServiceResponse<'featureAblate'>;
export type SaeEvalRequest = ServiceRequest<'saeEval'>;
export type SaeEvalResult = ServiceResponse<'saeEval'>;

/** An error answer of the server: its HTTP status and its message (shown as is). */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly details?: { path: string; message: string }[],
  ) {
    super(message);
    this.name = 'ApiError';
  }
}

/** A run stopped by the user (not an error to display as one). */
export class CancelledError extends Error {
  constructor() {
    super('cancelled');
    this.name = 'CancelledError';
  }
}

async function errorOf(res: Response): Promise<ApiError> {
  const text = await res.text();
  try {
    const body = JSON.parse(text) as { error?: string; details?: { path: string; message: string }[] };
    return new ApiError(res.status, body.error ?? text, body.details);
  } catch {
    return new ApiError(res.status, text || res.statusText);
  }
}

async function call<T>(method: 'GET' | 'POST' | 'DELETE', path: string, body?: unknown, signal?: AbortSignal): Promise<T> {
  const res = await fetch(path, {
    method,
    headers: body === undefined ? { accept: 'application/json' } : { 'content-type': 'application/json', accept: 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
    signal,
  });
  if (!res.ok) throw await errorOf(res);
  return (await res.json()) as T;
}

/** Reads an SSE response incrementally, calling `on(event, data)` per frame. */
async function readEvents(res: Response, on: (event: string, data: unknown) => void): Promise<void> {
  if (!res.body) throw new ApiError(res.status, 'the server sent an empty stream');
  const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
  let buf = '';
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buf += value;
    let cut: number;
    while ((cut = buf.indexOf('\n\n')) >= 0) {
      const frame = buf.slice(0, cut);
      buf = buf.slice(cut + 2);
      let event = 'message';
      const data: string[] = [];
      for (const line of frame.split('\n')) {
        if (line.startsWith('event: ')) event = line.slice(7);
        else if (line.startsWith('data: ')) data.push(line.slice(6));
      }
      if (data.length) on(event, JSON.parse(data.join('\n')));
    }
  }
}

export interface JobProgress {
  done: number;
  total: number;
  message?: string;
}

/** A running job: its result, its id once the server named it, and a cancel that stops it on the server. */
export interface Job<T> {
  readonly result: Promise<T>;
  readonly id: string | null;
  cancel(): Promise<void>;
}

/** POSTs `body` to a job endpoint as SSE; `onProgress` gets the server's progress events. */
export function startJob<T>(path: string, body: unknown, onProgress?: (p: JobProgress) => void): Job<T> {
  const abort = new AbortController();
  let id: string | null = null;
  let cancelled = false;
  let settled = false; // the stream delivered its last event: nothing is left to cancel on the server
  const result = (async (): Promise<T> => {
    let res: Response;
    try {
      res = await fetch(path, {
        method: 'POST',
        headers: { 'content-type': 'application/json', accept: 'text/event-stream' },
        body: JSON.stringify(body),
        signal: abort.signal,
      });
    } catch (e) {
      if (cancelled) throw new CancelledError();
      throw e;
    }
    if (!res.ok) throw await errorOf(res);
    if (!(res.headers.get('content-type') ?? '').includes('text/event-stream')) return (await res.json()) as T;
    const box: { out: { ok: true; value: T } | { ok: false; error: Error } | null } = { out: null };
    try {
      await readEvents(res, (event, data) => {
        if (event === 'job') id = (data as { id: string }).id;
        else if (event === 'progress') onProgress?.(data as JobProgress);
        else if (event === 'result') box.out = { ok: true, value: data as T };
        else if (event === 'error') {
          const e = data as { status: number; error: string };
          box.out = { ok: false, error: new ApiError(e.status, e.error) };
        } else if (event === 'cancelled') box.out = { ok: false, error: new CancelledError() };
        if (box.out !== null) settled = true;
      });
    } catch (e) {
      if (cancelled) throw new CancelledError();
      throw e;
    }
    const o = box.out;
    if (o === null) throw cancelled ? new CancelledError() : new ApiError(0, 'the server closed the stream without a result');
    if (!o.ok) throw o.error;
    return o.value;
  })();
  return {
    result,
    get id() {
      return id;
    },
    async cancel() {
      cancelled = true;
      if (id !== null && !settled) {
        try {
          await call('DELETE', `/api/jobs/${encodeURIComponent(id)}`); // a job that ended meanwhile answers 'finished'
        } catch {
          // the abort below ends the stream either way
        }
      }
      abort.abort();
    },
  };
}

/** A GET as a Job (no progress; cancel aborts the request). */
function getJob<T>(path: string): Job<T> {
  const abort = new AbortController();
  const result = call<T>('GET', path, undefined, abort.signal).catch((e: unknown) => {
    if (abort.signal.aborted) throw new CancelledError();
    throw e;
  });
  return { result, id: null, cancel: async () => abort.abort() };
}

/** Loads a model (SSE): download progress events, then the model's summary. */
export async function loadModel(body: LoadRequest, onProgress: (e: LoadProgress) => void, signal?: AbortSignal): Promise<ModelInfo> {
  const res = await fetch('/api/models/load', {
    method: 'POST',
    headers: { 'content-type': 'application/json', accept: 'text/event-stream' },
    body: JSON.stringify(body),
    signal,
  });
  if (!res.ok) throw await errorOf(res);
  let info: ModelInfo | null = null;
  let error: ApiError | null = null;
  await readEvents(res, (event, data) => {
    if (event === 'progress') onProgress(data as LoadProgress);
    else if (event === 'loaded') info = data as ModelInfo;
    else if (event === 'error') error = new ApiError((data as { status: number }).status, (data as { error: string }).error);
  });
  if (error) throw error;
  if (!info) throw new ApiError(0, 'the model load ended without an answer');
  return info;
}

/** A feature's job endpoint (services/registry.ts): its request and answer types, and its path checked against the feature's route. */
function serviceJob<K extends ServiceKind>(_kind: K, path: ServicePath<K>) {
  return (body: ServiceRequest<K>, onProgress?: (p: JobProgress) => void) => startJob<ServiceResponse<K>>(path, body, onProgress);
}

export const api = {
  models: (signal?: AbortSignal) => call<Models>('GET', '/api/models', undefined, signal),
  model: (signal?: AbortSignal) => call<ModelInfo>('GET', '/api/model', undefined, signal),
  tokenize: (body: TokenizeRequest, signal?: AbortSignal) => call<TokenizeResult>('POST', '/api/tokenize' satisfies ServicePath<'tokenize'>, body, signal),
  forward: serviceJob('forward', '/api/forward'),
  attention: serviceJob('attention', '/api/attention'),
  logitLens: serviceJob('logitLens', '/api/logit-lens'),
  ablate: serviceJob('ablate', '/api/ablate'),
  ablateSweep: serviceJob('ablateSweep', '/api/ablate/sweep'),
  patch: serviceJob('patch', '/api/patch'),
  attributionPatch: serviceJob('attributionPatch', '/api/attribution-patch'),
  saliency: serviceJob('saliency', '/api/saliency'),
  detectHeads: serviceJob('headsDetect', '/api/heads/detect'),
  ioi: serviceJob('ioi', '/api/ioi'),
  composition: serviceJob('composition', '/api/circuits/composition'),
  copying: serviceJob('copying', '/api/circuits/copying'),
  positional: serviceJob('positional', '/api/circuits/positional'),
  topCopied: serviceJob('topCopied', '/api/circuits/top-copied'),
  attribution: serviceJob('attribution', '/api/attribution'),
  graph: serviceJob('graph', '/api/graph'),
  neuronsTop: serviceJob('neuronsTop', '/api/neurons/top'),
  neuronActivations: serviceJob('neuronActivations', '/api/neurons/activations'),
  neuronExamples: serviceJob('neuronExamples', '/api/neurons/examples'),
  neuronOutput: serviceJob('neuronOutput', '/api/neurons/output'),
  neuronPatch: serviceJob('neuronPatch', '/api/neurons/patch'),
  experiments: (signal?: AbortSignal) => call<ExperimentList>('GET', '/api/experiments', undefined, signal),
  experiment: (id: string, signal?: AbortSignal) => call<ExperimentDetail>('GET', `/api/experiments/${encodeURIComponent(id)}`, undefined, signal),
  saes: (signal?: AbortSignal) => call<SaeList>('GET', '/api/saes', undefined, signal),
  saeLoad: serviceJob('saeLoad', '/api/saes/load'),
  saeEval: serviceJob('saeEval', '/api/saes/eval'),
  features: serviceJob('features', '/api/features'),
  feature: (body: FeatureRequest) => getJob<FeatureResult>(`/api/features/${body.feature}?sae=${encodeURIComponent(body.sae)}`),
  featureAblate: serviceJob('featureAblate', '/api/features/ablate'),
  steer: serviceJob('steer', '/api/steer'),
};
