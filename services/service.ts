/**
 * A service: one thing a loaded model can be asked (an analysis, a circuits read, an SAE query, …), declared once in
 * its own module — its request and response schemas, its handler (run on the model), its table (the CSV answer), its
 * figures and, where it has one, its CLI command. The registry (`registry.ts`) lists the services; the server's
 * routes and OpenAPI document, the runner's job table, the CLI's commands and the dashboard client's types are all
 * derived from it. ("Service", not "feature": in this codebase a feature is an SAE's.)
 */
import type { z } from 'zod';
import type { FigureSpec } from '../hooks/figures/types.ts';
import type { Table } from '../hooks/figures/types.ts';
import type { JobHandler } from './context.ts';
import type { Limits } from './limits.ts';

/** What an HTTP answer can be: 'json' always; 'csv' via ?format=csv; 'sse' via Accept: text/event-stream or ?stream=1. */
export type Format = 'json' | 'csv' | 'sse';

export interface ServiceRoute<P extends string = string> {
  /** 'post' (the default): the request is the JSON body; 'get': it is built from the URL by `fromUrl`. */
  method?: 'post' | 'get';
  /** Express path, e.g. '/api/circuits/copying' or '/api/features/:id'. */
  path: P;
  summary: string;
  /** Longer text for the OpenAPI document (may state the limits). */
  description?: string | ((limits: Limits) => string);
  /** Default ['json', 'csv', 'sse']. */
  formats?: readonly Format[];
  /**
   * A GET route's request, from the path parameters and the query string (validated by the feature's `request`; its
   * errors name the query). It may throw a UserError for a bad path parameter (→ that status and message).
   */
  fromUrl?: (params: Record<string, string>, query: Record<string, unknown>) => unknown;
}

/** A command-line flag of a service's CLI command: its text converted by `type` and written at the request field `path`. */
export interface CliFlag {
  /** Flag name without the dashes, e.g. `top-k`. */
  flag: string;
  type: 'string' | 'int' | 'bool' | 'list' | 'intList' | 'token';
  /** Field path the value is written to, e.g. `topK`, `metric.correct`, `repeated.seqLen`. */
  path: string;
  /** Repeatable: the values are collected into an array. */
  multiple?: boolean;
  /** A boolean switch that sets the field to false (e.g. --no-apply-ln → applyLn: false). */
  negate?: boolean;
  help: string;
}

export interface ServiceCli {
  /** The command's name (`lens <command>`). */
  command: string;
  summary: string;
  flags: CliFlag[];
  /** Fills fields the flags imply (e.g. the metric kind from --correct/--incorrect) before validation. */
  prepare?: (request: Record<string, unknown>) => void;
  /** The command's request schema where it differs from the route's (e.g. --sae also takes a directory); default `request`. */
  request?: (limits: Limits) => z.ZodType;
}

export interface Service<K extends string = string, Q extends z.ZodType = z.ZodType, S extends z.ZodType = z.ZodType, R = unknown, P extends string = string> {
  /** The job kind: the runner's job table key and the client's method name. */
  kind: K;
  route: ServiceRoute<P>;
  /** The request schema, built from the limits (the server's or the CLI's). */
  request: (limits: Limits) => Q;
  /** The schema of the JSON answer (documentation and the client's types; tests check answers against it). */
  response: S;
  handler: JobHandler<z.output<Q>, R>;
  /** The answer as one table (CSV); required when the route answers CSV. */
  table?: (result: R) => Table;
  /** The figures of an answer (the CLI writes them; the dashboard draws the same figure builders). */
  figures?: (result: R, request: z.output<Q>) => FigureSpec[];
  /** A CLI command that runs this service on its own. */
  cli?: ServiceCli;
}

/** Declares a service, keeping its kind and path as literal types (the client's types are checked against them). */
export function defineService<const K extends string, Q extends z.ZodType, S extends z.ZodType, R, const P extends string>(s: Service<K, Q, S, R, P>): Service<K, Q, S, R, P> {
  return s;
}

/** Any service (the registry's element type). */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type AnyService = Service<string, any, any, any, string>;

export const DEFAULT_FORMATS: readonly Format[] = ['json', 'csv', 'sse'];
