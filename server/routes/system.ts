/** GET /api/health (never touches a model runner), GET /api/jobs, DELETE /api/jobs/:id. */
import { z } from 'zod';
import type { Table } from '../csv.ts';
import { notFound } from '../errors.ts';
import { RECENT_JOBS, type CancelOutcome, type JobSummary } from '../host/ModelRunner.ts';
import { defineRoute, type RouteDef } from '../routeTable.ts';

const startedAt = Date.now();

export const HealthResponse = z.object({
  status: z.literal('ok'),
  uptimeS: z.number(),
  model: z.string().nullable(),
  modelState: z.enum(['ready', 'restarting', 'failed', 'closed']).nullable(),
  loading: z.string().nullable(),
  jobs: z.object({ running: z.number().int(), queued: z.number().int() }),
  runner: z.object({
    pid: z.number().int().nullable().describe('process id of the active model\'s runner (null while it restarts)'),
    rssBytes: z.number().int().nullable().describe('resident memory of the runner after its last job (or after loading)'),
    restarts: z.number().int().describe('runner restarts since the model was loaded: crashes, kills that stopped a cancelled job, recycling'),
    lastRestart: z.object({ reason: z.string(), at: z.string() }).nullable(),
    lastJob: z.object({ before: z.number().int(), peak: z.number().int().nullable(), after: z.number().int() }).nullable()
      .describe('the runner\'s RSS (bytes) before, at the peak of and after its last job (after a full garbage collection)'),
  }).nullable().describe('the active model\'s runner process (null without a model)'),
});
type Health = z.infer<typeof HealthResponse>;

const JobSchema = z.object({
  id: z.string(), kind: z.string(), model: z.string(), state: z.enum(['queued', 'running']), createdAt: z.string(),
  startedAt: z.string().nullable(), progress: z.object({ done: z.number(), total: z.number(), message: z.string().optional() }).nullable(),
});
export const JobsResponse = z.object({ jobs: z.array(JobSchema) });
export const CancelResponse = z.object({
  id: z.string(),
  outcome: z.enum(['cancelled', 'finished']),
  how: z.enum(['flag', 'terminated', 'dequeued']).nullable(),
  stoppedInMs: z.number(),
});

const jobsTable = (r: { jobs: JobSummary[] }): Table => ({
  columns: ['id', 'kind', 'model', 'state', 'created_at', 'started_at', 'done', 'total'],
  rows: r.jobs.map((j) => [j.id, j.kind, j.model, j.state, j.createdAt, j.startedAt, j.progress?.done ?? null, j.progress?.total ?? null]),
});

export function systemRoutes(): RouteDef[] {
  return [
    defineRoute({
      method: 'get', path: '/api/health', formats: ['json', 'csv'], response: HealthResponse,
      summary: 'Liveness and queue state (answers at once, even while a long job runs)',
      handler: (ctx) => {
        const active = ctx.host.active;
        const jobs = ctx.host.jobs();
        const result: Health = {
          status: 'ok',
          uptimeS: (Date.now() - startedAt) / 1000,
          model: active?.name ?? null,
          modelState: active?.state ?? null,
          loading: ctx.host.loading?.name ?? null,
          jobs: { running: jobs.filter((j) => j.state === 'running').length, queued: jobs.filter((j) => j.state === 'queued').length },
          runner: active?.health ?? null,
        };
        ctx.send(result, (h) => ({ columns: ['key', 'value'], rows: Object.entries(h).map(([k, v]) => [k, typeof v === 'object' && v !== null ? JSON.stringify(v) : v]) }));
      },
    }),
    defineRoute({
      method: 'get', path: '/api/jobs', formats: ['json', 'csv'], response: JobsResponse,
      summary: 'Running and queued jobs of every loaded model, with progress',
      handler: (ctx) => ctx.send({ jobs: ctx.host.jobs() }, jobsTable),
    }),
    defineRoute({
      method: 'delete', path: '/api/jobs/:id', formats: ['json', 'csv'], response: CancelResponse,
      summary: 'Cancel a job; answers once it has stopped (a running job stops within cancelGraceMs, by default 1 s, else its runner process is killed and restarted). ' +
        `A job that has already ended (one of the last ${RECENT_JOBS} of its model) answers how it ended (outcome finished or cancelled, how null); an unknown id is a 404`,
      handler: async (ctx) => {
        const id = String(ctx.req.params.id);
        const pending = ctx.host.cancel(id);
        if (!pending) throw notFound(`no running, queued or recently ended job ${JSON.stringify(id)}; see GET /api/jobs`);
        const outcome: CancelOutcome = await pending;
        ctx.send(outcome, (o) => ({ columns: Object.keys(o), rows: [Object.values(o)] }));
      },
    }),
  ];
}
