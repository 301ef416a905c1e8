/** The features' routes (services/registry.ts): each a queued model job answering JSON, CSV through its table, or SSE. */
import type { AnyService } from '../../services/service.ts';
import { DEFAULT_FORMATS } from '../../services/service.ts';
import type { Limits } from '../../services/limits.ts';
import { SERVICE_LIST } from '../../services/registry.ts';
import { UserError } from '../../services/context.ts';
import { HttpError, validationError } from '../errors.ts';
import { runJob } from '../jobRoute.ts';
import { defineRoute, type RouteDef } from '../routeTable.ts';
import type { JobKind } from '../worker/jobs.ts';

const NO_TABLE = () => ({ columns: [], rows: [] });

function serviceRoute(f: AnyService, limits: Limits): RouteDef {
  const { method = 'post', path, summary, description, formats = DEFAULT_FORMATS, fromUrl } = f.route;
  if (formats.includes('csv') && !f.table) throw new Error(`internal: service ${f.kind} answers CSV but has no table`);
  const schema = f.request(limits);
  return defineRoute({
    method, path, summary, formats: [...formats],
    description: typeof description === 'function' ? description(limits) : description,
    ...(method === 'post' ? { body: schema } : {}),
    response: f.response,
    handler: (ctx) => {
      let payload: unknown = ctx.body;
      if (method === 'get') {
        let input: unknown;
        try {
          input = fromUrl ? fromUrl(ctx.req.params as Record<string, string>, ctx.req.query) : {};
        } catch (e) {
          if (e instanceof UserError) throw new HttpError(e.status, e.message); // a bad path parameter
          throw e;
        }
        const r = schema.safeParse(input);
        if (!r.success) throw validationError(r.error, 'query');
        payload = r.data;
      }
      return runJob(ctx, f.kind as JobKind, payload as never, f.table ?? NO_TABLE);
    },
  });
}

export function serviceRoutes(limits: Limits): RouteDef[] {
  return SERVICE_LIST.map((f) => serviceRoute(f, limits));
}
