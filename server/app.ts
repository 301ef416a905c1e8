/**
 * Builds the Express app (no listening here): helmet, the Host/Origin guard, JSON bodies with a size limit, the /api
 * routes, OpenAPI, JSON 404 and errors.
 */
import express, { type Express } from 'express';
import helmet from 'helmet';
import pino, { type Logger } from 'pino';
import type { ServerConfig } from './config.ts';
import { errorHandler, notFoundHandler } from './errors.ts';
import type { ModelHost } from './host/ModelHost.ts';
import { nonFiniteReplacer } from '../services/common/nonFinite.ts';
import { originGuard } from './originGuard.ts';
import { openApiDocument } from './openapi.ts';
import { defineRoute, mountRoutes, type RouteDef } from './routeTable.ts';
import { experimentRoutes } from './routes/experiments.ts';
import { serviceRoutes } from './routes/services.ts';
import { modelRoutes } from './routes/models.ts';
import { systemRoutes } from './routes/system.ts';

export const API_VERSION = '0.1.0';

/** Every route of the API, in documentation order (the analysis routes join this list). */
export function apiRoutes(config: ServerConfig): RouteDef[] {
  return [
    ...systemRoutes(), ...modelRoutes(), ...serviceRoutes(config.limits), ...experimentRoutes(),
  ];
}

export interface AppOptions {
  log?: Logger;
  /** The built dashboard (ui/dist) to serve at / (index.html for every non-/api GET); none: API only. */
  staticDir?: string;
}

export function createApp(config: ServerConfig, host: ModelHost, opts: AppOptions = {}): Express {
  const log = opts.log ?? pino({ level: config.logLevel });
  const app = express();
  app.disable('x-powered-by');
  app.set('json replacer', nonFiniteReplacer);
  app.set('query parser', 'simple');
  app.use(helmet());
  app.use(originGuard(config));
  app.use(express.json({ limit: config.limits.maxBodyBytes, strict: true }));

  const routes = apiRoutes(config);
  const openapi = openApiDocument(
    [
      ...routes,
      defineRoute({ method: 'get', path: '/api/openapi.json', formats: ['json'], summary: 'This OpenAPI document', handler: () => {} }),
    ],
    API_VERSION,
  );
  const router = express.Router();
  router.get('/api/openapi.json', (_req, res) => {
    res.json(openapi);
  });
  mountRoutes(router, routes, { host, config, log });
  app.use(router);
  if (opts.staticDir) {
    const dir = opts.staticDir;
    app.use(express.static(dir, { index: 'index.html' }));
    app.get(/^(?!\/api\/).*/, (_req, res) => res.sendFile('index.html', { root: dir }));
  }
  app.use(notFoundHandler);
  app.use(errorHandler(log, host.redact));
  return app;
}
