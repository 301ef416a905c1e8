/**
 * Runs a model job for a request: queued on the active model; a client that disconnects cancels it. With
 * `Accept: text/event-stream` (or ?stream=1) the answer is SSE — `job` {id}, `progress` {done, total}, then
 * `result` or `error` / `cancelled` — otherwise the result as JSON or CSV once the job is done.
 */
import { answerTooLarge, resultFormat, type Table } from './csv.ts';
import { stringifyJson } from '../services/common/nonFinite.ts';
import { CancelledError, HttpError } from './errors.ts';
import type { RouteContext } from './routeTable.ts';
import { SseStream, wantsStream } from './sse.ts';
import type { JobKind, JobPayload, JobResult } from './worker/jobs.ts';

export async function runJob<K extends JobKind>(
  ctx: RouteContext<unknown>,
  kind: K,
  payload: JobPayload<K>,
  table: (r: JobResult<K>) => Table,
): Promise<void> {
  const { req, res, host } = ctx;
  const stream = wantsStream(req);
  if (!stream) resultFormat(req); // a bad ?format= is refused before the job is queued
  const job = host.require().submit(kind, payload, { endpoint: `${req.method} ${req.path}` });
  res.setHeader('X-Job-Id', job.id);
  res.on('close', () => {
    if (!res.writableEnded) void host.cancel(job.id);
  });
  if (!stream) {
    const result = await job.result;
    ctx.send(result, table);
    return;
  }
  const sse = new SseStream(res);
  sse.send('job', { id: job.id, kind });
  job.onProgress((p) => sse.send('progress', p));
  try {
    const json = stringifyJson(await job.result);
    const bytes = Buffer.byteLength(json);
    const max = ctx.config.limits.maxResponseBytes;
    if (bytes > max) throw answerTooLarge(bytes, max, 'JSON');
    sse.sendJson('result', json);
  } catch (e) {
    if (e instanceof CancelledError) sse.send('cancelled', { id: job.id });
    else if (e instanceof HttpError) sse.send('error', { status: e.status, error: e.message });
    else {
      ctx.log.error({ err: e, jobId: job.id }, 'job failed');
      sse.send('error', { status: 500, error: `internal error: ${host.redact((e as Error).message)}` });
    }
  }
  sse.end();
}
