/** The server's configuration: command-line flags and LENSBOARD_* environment variables, validated once with zod. */
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { z } from 'zod';
import { DEVICES } from '../hooks/devices.ts';
import { LimitsSchema } from '../services/limits.ts';

const MiB = 2 ** 20;

/** <package root>/models: the built-in model root, which holds `embedded` (the default model). */
export const PACKAGE_MODELS_DIR = fileURLToPath(new URL('../models/', import.meta.url));


export const ServerConfigSchema = z.strictObject({
  /** Model to load at start-up: a hub id / official name, or a directory name under a model root. */
  model: z.string().min(1).default('embedded'),
  device: z.enum(DEVICES).default('cpu'),
  port: z.number().int().min(0).max(65535).default(7860),
  host: z.string().min(1).default('127.0.0.1'),
  /** Directories whose sub-directories are loadable models (the package's models/ always comes first). */
  modelRoots: z.array(z.string().min(1)).default([]),
  /** onnxruntime intra-op threads per model (0: one per core). */
  threads: z.number().int().min(0).default(0),
  /** Hugging Face hub cache (default: $HF_HUB_CACHE, $HF_HOME/hub, ~/.cache/huggingface/hub). */
  hfCacheDir: z.string().min(1).optional(),
  /** Hub URL (default $HF_ENDPOINT or https://huggingface.co). */
  hubEndpoint: z.string().url().optional(),
  /** Never contact the hub: only cached hub models load. */
  offline: z.boolean().default(false),
  logLevel: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  /**
   * Host names (and IP literals) the server answers besides localhost, 127.0.0.1, [::1] and --host; '*' turns the Host
   * check off. Requests naming any other Host get 403 (a DNS-rebinding page cannot use the API).
   */
  allowedHosts: z.array(z.string().min(1).max(253)).default([]),
  /** A model runner whose RSS after a job exceeds its RSS after loading by more than this (bytes) is restarted. */
  recycleRssBytes: z.number().int().min(0).default(1024 * MiB),
  /** A folder of dataset-experiment output folders (lensboard batch --out) the dashboard shows. */
  experimentsDir: z.string().min(1).optional(),
  /** What Lensboard computes once per model and keeps (the neurons' corpus examples); default ~/.cache/lensboard. */
  cacheDir: z.string().min(1).optional(),
  limits: LimitsSchema.default(LimitsSchema.parse({})),
});
export type ServerConfig = z.infer<typeof ServerConfigSchema>;
export type ServerConfigInput = z.input<typeof ServerConfigSchema>;

/** Validates a config object (fills defaults); throws an Error listing every bad field. */
export function validateConfig(input: ServerConfigInput): ServerConfig {
  const r = ServerConfigSchema.safeParse(input);
  if (!r.success) {
    const lines = r.error.issues.map((i) => `  ${i.path.join('.') || '(config)'}: ${i.message}`);
    throw new Error(`invalid server configuration:\n${lines.join('\n')}`);
  }
  return r.data;
}

const USAGE = `Usage: npm start -- [--model NAME_OR_DIR] [--device cpu|cuda|webgpu|auto] [--port 7860] [--host 127.0.0.1]
                    [--models-dir DIR]... [--threads N] [--offline] [--log-level info] [--allowed-hosts NAME,...]
                    [--max-job-memory SIZE] [--recycle-rss SIZE] [--experiments-dir DIR] [--cache-dir DIR]
                    (SIZE: bytes, or with a unit: 512M, 6G, 1.5GiB)
Environment: LENSBOARD_MODEL, LENSBOARD_DEVICE, LENSBOARD_PORT, LENSBOARD_HOST, LENSBOARD_MODELS_DIR (':'-separated),
             LENSBOARD_THREADS, LENSBOARD_LOG_LEVEL, LENSBOARD_ALLOWED_HOSTS (','-separated), LENSBOARD_MAX_JOB_MEMORY,
             LENSBOARD_RECYCLE_RSS, LENSBOARD_EXPERIMENTS_DIR, LENSBOARD_CACHE_DIR, HF_HUB_CACHE, HF_ENDPOINT, HF_HUB_OFFLINE. Flags win over env.`;

function toInt(flag: string, v: string | undefined): number | undefined {
  if (v === undefined) return undefined;
  if (!/^\d+$/.test(v)) throw new Error(`${flag} must be a non-negative integer; got '${v}'\n${USAGE}`);
  return Number(v);
}

const UNITS: Record<string, number> = { '': 1, b: 1, k: 1024, kb: 1024, kib: 1024, m: MiB, mb: MiB, mib: MiB, g: 1024 * MiB, gb: 1024 * MiB, gib: 1024 * MiB };

/** '512M', '6G', '1.5GiB', '1048576' → bytes (units are powers of 1024). */
export function parseSize(flag: string, v: string | undefined): number | undefined {
  if (v === undefined) return undefined;
  const m = /^(\d+(?:\.\d+)?)\s*([a-z]*)$/i.exec(v.trim());
  const unit = m ? UNITS[m[2].toLowerCase()] : undefined;
  if (!m || unit === undefined) throw new Error(`${flag} must be a size in bytes or with a unit (K, M, G; e.g. 512M, 6G); got '${v}'\n${USAGE}`);
  return Math.floor(Number(m[1]) * unit);
}

/** Flags and environment → validated config. `--help` throws the usage text. */
export function parseConfig(argv: readonly string[], env: NodeJS.ProcessEnv): ServerConfig {
  let values;
  try {
    ({ values } = parseArgs({
      args: [...argv],
      options: {
        model: { type: 'string' },
        device: { type: 'string' },
        port: { type: 'string' },
        host: { type: 'string' },
        'models-dir': { type: 'string', multiple: true },
        threads: { type: 'string' },
        offline: { type: 'boolean' },
        'log-level': { type: 'string' },
        'allowed-hosts': { type: 'string', multiple: true },
        'max-job-memory': { type: 'string' },
        'recycle-rss': { type: 'string' },
        'experiments-dir': { type: 'string' },
        'cache-dir': { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
      strict: true,
      allowPositionals: false,
    }));
  } catch (e) {
    throw new Error(`${(e as Error).message}\n${USAGE}`);
  }
  if (values.help) throw new Error(USAGE);
  env = Object.fromEntries(Object.entries(env).filter(([, v]) => v !== '')); // an empty variable counts as unset
  const envRoots = env.LENSBOARD_MODELS_DIR ? env.LENSBOARD_MODELS_DIR.split(':').filter(Boolean) : [];
  const offlineEnv = ['1', 'ON', 'YES', 'TRUE'].includes((env.HF_HUB_OFFLINE ?? '').toUpperCase());
  const hostLists = values['allowed-hosts'] ?? (env.LENSBOARD_ALLOWED_HOSTS ? [env.LENSBOARD_ALLOWED_HOSTS] : []);
  const maxJobMemoryBytes = parseSize('--max-job-memory', values['max-job-memory'] ?? env.LENSBOARD_MAX_JOB_MEMORY);
  return validateConfig({
    model: values.model ?? env.LENSBOARD_MODEL,
    device: (values.device ?? env.LENSBOARD_DEVICE) as ServerConfigInput['device'],
    port: toInt('--port', values.port ?? env.LENSBOARD_PORT),
    host: values.host ?? env.LENSBOARD_HOST,
    modelRoots: values['models-dir'] ?? envRoots,
    threads: toInt('--threads', values.threads ?? env.LENSBOARD_THREADS),
    hfCacheDir: env.HF_HUB_CACHE,
    hubEndpoint: env.HF_ENDPOINT,
    offline: values.offline ?? offlineEnv,
    logLevel: (values['log-level'] ?? env.LENSBOARD_LOG_LEVEL) as ServerConfigInput['logLevel'],
    allowedHosts: hostLists.flatMap((l) => l.split(',')).map((h) => h.trim()).filter(Boolean),
    recycleRssBytes: parseSize('--recycle-rss', values['recycle-rss'] ?? env.LENSBOARD_RECYCLE_RSS),
    ...(maxJobMemoryBytes !== undefined ? { limits: { maxJobMemoryBytes } } : {}),
    experimentsDir: values['experiments-dir'] ?? env.LENSBOARD_EXPERIMENTS_DIR,
    cacheDir: values['cache-dir'] ?? env.LENSBOARD_CACHE_DIR,
  });
}
