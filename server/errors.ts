/** Typed HTTP errors, zod issues as one readable message, and the one error middleware (JSON `{ error, details? }`). */
import type { ErrorRequestHandler, RequestHandler } from 'express';
import type { Logger } from 'pino';
import type { z } from 'zod';

export interface ErrorDetail {
  /** Dotted path of the offending field ('' for the body itself). */
  path: string;
  message: string;
}

export class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly details?: ErrorDetail[],
    /** Extra response headers (Retry-After on 429 and 503). */
    readonly headers?: Record<string, string>,
  ) {
    super(message);
    this.name = 'HttpError';
  }
}

export const badRequest = (message: string, details?: ErrorDetail[]) => new HttpError(400, message, details);
export const notFound = (message: string) => new HttpError(404, message);
export const conflict = (message: string) => new HttpError(409, message);
/** 503; with `retryAfterS`, a Retry-After header (the condition is expected to pass: a model loading or restarting). */
export const unavailable = (message: string, retryAfterS?: number) =>
  new HttpError(503, message, undefined, retryAfterS === undefined ? undefined : { 'Retry-After': String(retryAfterS) });
/** 429 with Retry-After: the job queue is full. */
export const tooManyRequests = (message: string, retryAfterS: number) =>
  new HttpError(429, message, undefined, { 'Retry-After': String(retryAfterS) });

/** A job that was cancelled (by DELETE /api/jobs/:id, a client disconnect or shutdown). */
export class CancelledError extends Error {
  constructor(
    readonly jobId: string,
    reason?: string,
  ) {
    super(`job ${jobId} was cancelled${reason ? `: ${reason}` : ''}`);
    this.name = 'CancelledError';
  }
}

function pathOf(path: readonly PropertyKey[]): string {
  return path.map((p) => (typeof p === 'number' ? `[${p}]` : `.${String(p)}`)).join('').replace(/^\./, '');
}

/** zod issues → details (unrecognized keys named, unions explained by their own message). */
export function zodDetails(error: z.ZodError): ErrorDetail[] {
  return error.issues.map((i) => {
    const path = pathOf(i.path);
    const message = i.code === 'unrecognized_keys' ? `unknown field(s) ${i.keys.map((k) => `'${k}'`).join(', ')}` : i.message;
    return { path, message };
  });
}

/** A 400 for a body that failed its schema: "invalid request body: prompt: …; topK: …". */
export function validationError(error: z.ZodError, where = 'request body'): HttpError {
  const details = zodDetails(error);
  const text = details.map((d) => (d.path ? `${d.path}: ${d.message}` : d.message)).join('; ');
  return badRequest(`invalid ${where}: ${text}`, details);
}

/** The JSON 404 for every unknown route. */
export const notFoundHandler: RequestHandler = (req, _res, next) => {
  next(notFound(`no route ${req.method} ${req.path}; see GET /api/openapi.json for the API`));
};

interface BodyParserError extends Error {
  type?: string;
  status?: number;
  limit?: number;
  length?: number;
}

/**
 * The one error middleware: HttpError → its status; body-parser errors → 400/413/415; anything else → 500 (logged).
 * `redact` takes absolute server paths out of the messages.
 */
export function errorHandler(log: Logger, redact: (message: string) => string = (m) => m): ErrorRequestHandler {
  return (err: unknown, req, res, _next) => {
    let status = 500;
    let body: { error: string; details?: ErrorDetail[] };
    const bp = err as BodyParserError;
    if (err instanceof HttpError) {
      status = err.status;
      body = err.details ? { error: err.message, details: err.details } : { error: err.message };
      if (err.headers && !res.headersSent) res.set(err.headers);
    } else if (err instanceof CancelledError) {
      status = 409; // cancelled by DELETE /api/jobs/:id while this client waited (a client that left gets nothing)
      body = { error: err.message };
    } else if (bp && typeof bp === 'object' && bp.type === 'entity.parse.failed') {
      status = 400;
      body = { error: `malformed JSON body: ${bp.message}` };
    } else if (bp && typeof bp === 'object' && bp.type === 'entity.too.large') {
      status = 413;
      body = {
        error: bp.length !== undefined
          ? `request body is ${bp.length} bytes; the limit is ${bp.limit} bytes`
          : `request body exceeds the limit of ${bp.limit} bytes`,
      };
    } else if (bp && typeof bp === 'object' && typeof bp.status === 'number' && bp.status >= 400 && bp.status < 500) {
      status = bp.status;
      body = { error: bp.message };
    } else {
      log.error({ err, method: req.method, url: req.originalUrl }, 'internal error');
      body = { error: `internal error: ${err instanceof Error ? err.message : String(err)}` };
    }
    if (res.headersSent) {
      res.end();
      return;
    }
    body.error = redact(body.error);
    res.status(status).json(body);
  };
}
