/** `npm start`: parse and validate the config, load the start-up model, listen, log with pino, shut down gracefully on SIGINT/SIGTERM. */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import pino from 'pino';
import { DEFAULT_PROCESSING } from '../hooks/config.ts';
import { ttyProgressBar } from '../hooks/loading/progress.ts';
import { createApp } from './app.ts';
import { UI_DIST } from './buildUi.ts';
import { PACKAGE_MODELS_DIR, parseConfig, type ServerConfig } from './config.ts';
import { ModelHost } from './host/ModelHost.ts';

let config: ServerConfig;
try {
  config = parseConfig(process.argv.slice(2), process.env);
} catch (e) {
  console.error((e as Error).message);
  process.exit(2);
}

const log = pino({ level: config.logLevel });

if (config.model === 'embedded' && !existsSync(join(PACKAGE_MODELS_DIR, 'embedded', 'config.json'))) {
  log.fatal(
    `the default model models/embedded is missing (no ${join(PACKAGE_MODELS_DIR, 'embedded', 'config.json')}): ` +
      'build it first, or start with --model NAME (e.g. --model gpt2, or a directory under --models-dir)',
  );
  process.exit(1);
}

const host = await ModelHost.create(config, PACKAGE_MODELS_DIR, log).catch((e: Error) => {
  log.fatal(e.message);
  process.exit(1);
});

try {
  const source = await host.resolve(config.model);
  log.info({ model: config.model, source: source.kind, device: config.device }, 'loading model');
  const progress = process.stderr.isTTY
    ? ttyProgressBar(process.stderr)
    : (e: { status: string; file?: string }) => e.status === 'done' && log.info({ file: e.file }, 'model file ready');
  const info = await host.load(source, { name: config.model, processing: { ...DEFAULT_PROCESSING } }, progress);
  log.info({ model: info.name, device: info.device, n_layers: info.config.n_layers, d_model: info.config.d_model }, 'model loaded');
} catch (e) {
  log.fatal(`cannot load model ${JSON.stringify(config.model)}: ${(e as Error).message}`);
  await host.close();
  process.exit(1);
}

const staticDir = existsSync(join(UI_DIST, 'index.html')) ? UI_DIST : undefined;
const app = createApp(config, host, { log, staticDir });
const server = app.listen(config.port, config.host, (err?: Error) => {
  if (err) {
    log.fatal(`cannot listen on ${config.host}:${config.port}: ${err.message}`);
    process.exit(1);
  }
  const addr = server.address();
  const port = typeof addr === 'object' && addr ? addr.port : config.port;
  log.info({ url: `http://${config.host}:${port}/`, roots: host.roots, ui: staticDir ?? null }, 'Lensboard API listening');
});

// Responses in flight, so that shutdown can let the cancelled answers reach their clients before closing connections.
let inFlight = 0;
server.on('request', (_req, res) => {
  inFlight++;
  res.once('close', () => inFlight--);
});

/** Shutdown's deadline: the promise is an exit within 5 s, whatever the runners do. */
const SHUTDOWN_DEADLINE_MS = 4500;

let stopping = false;
async function shutdown(signal: string): Promise<void> {
  if (stopping) {
    log.warn(`${signal} again: exiting now`);
    host.kill();
    process.exit(1);
  }
  stopping = true;
  log.info({ signal }, 'shutting down: no new connections, cancelling jobs, stopping the model runners');
  const force = setTimeout(() => {
    host.kill();
    log.warn({ deadlineMs: SHUTDOWN_DEADLINE_MS }, 'shutdown deadline reached: model runners killed');
    log.info('stopped');
    process.exit(0);
  }, SHUTDOWN_DEADLINE_MS);
  force.unref();
  server.close();
  server.closeIdleConnections();
  await host.close('the server is shutting down'); // every job answers: 409 JSON, or an SSE `cancelled` event
  for (let waited = 0; inFlight > 0 && waited < 1000; waited += 10) await new Promise((r) => setTimeout(r, 10));
  server.closeAllConnections();
  log.info('stopped');
  process.exit(0);
}
process.on('SIGINT', () => void shutdown('SIGINT'));
process.on('SIGTERM', () => void shutdown('SIGTERM'));
