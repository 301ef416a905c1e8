/** A route is data: method, path, summary, zod body schema, response schema, formats and a handler. Mounting and the OpenAPI document both read it. */
import type { Request, Response, Router } from 'express';
import type { Logger } from 'pino';
import type { z } from 'zod';
import type { ServerConfig } from './config.ts';
import { sendResult, type Table } from './csv.ts';
import { HttpError, validationError } from './errors.ts';
import type { ModelHost } from './host/ModelHost.ts';

export interface RouteContext<B> {
  req: Request;
  res: Response;
  /** The request body as parsed by the route's schema (undefined without one). */
  body: B;
  host: ModelHost;
  config: ServerConfig;
  log: Logger;
  /** Sends `result` as JSON, or as CSV through `table` when asked (?format=csv or Accept: text/csv). */
  send<R>(result: R, table: (r: R) => Table): void;
}

export interface RouteDef<S extends z.ZodType | undefined = z.ZodType | undefined> {
  method: 'get' | 'post' | 'delete';
  /** Express path ('/api/jobs/:id'). */
  path: string;
  summary: string;
  description?: string;
  body?: S;
  /** Schema of the JSON answer (documentation; tests check answers against it). */
  response?: z.ZodType;
  /** What the answer can be: 'json' always; 'csv' via ?format=csv; 'sse' via Accept: text/event-stream or ?stream=1. */
  formats: ('json' | 'csv' | 'sse')[];
  handler: (ctx: RouteContext<S extends z.ZodType ? z.infer<S> : undefined>) => Promise<void> | void;
}

/** Keeps S for type inference at the definition site. */
export function defineRoute<S extends z.ZodType | undefined>(def: RouteDef<S>): RouteDef {
  return def as unknown as RouteDef;
}

export interface RouteDeps {
  host: ModelHost;
  config: ServerConfig;
  log: Logger;
}

function parseBody(schema: z.ZodType, req: Request): unknown {
  if (req.body === undefined) {
    throw new HttpError(415, 'the request body must be JSON: send it with Content-Type: application/json');
  }
  // express.json reads a zero-byte body as {}, which would run an endpoint whose fields all have defaults.
  if (req.get('content-length') === '0') throw new HttpError(400, 'the request body is empty; send a JSON object ({} for all defaults)');
  const r = schema.safeParse(req.body);
  if (!r.success) throw validationError(r.error);
  return r.data;
}

export function mountRoutes(router: Router, routes: readonly RouteDef[], deps: RouteDeps): void {
  for (const def of routes) {
    router[def.method](def.path, async (req, res) => {
      const body = def.body ? parseBody(def.body, req) : undefined;
      await def.handler({
        req, res, body: body as never, ...deps,
        send: (result, table) => {
          if (!def.formats.includes('csv') && req.query.format === 'csv') throw new HttpError(406, `${def.method.toUpperCase()} ${def.path} answers JSON only`);
          sendResult(req, res, result, table, deps.config.limits.maxResponseBytes);
        },
      });
    });
  }
}
