/** The `lensboard` CLI: runs an experiment described by flags and/or a JSON file and writes its results and figures. */
import { existsSync, readFileSync, statSync } from 'node:fs';
import { dirname, isAbsolute, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { z } from 'zod';
import { DEVICES } from '../hooks/devices.ts';
import { UserError, type JobContext } from '../services/context.ts';
import { BATCH_SUMMARY, WORKER_SUMMARY, batchCli } from './batch.ts';
import { COMMANDS as ANALYSIS_COMMANDS, CLI_LIMITS, type Command } from './commands.ts';
import { SAE_COMMANDS } from './saeCommands.ts';
import { SaeStore } from '../services/saes/store.ts';
import { UsageError } from './errors.ts';
import { flagHelp, parseFlags, type FlagDef } from './flags.ts';
import { loadModel, resolveModelArg } from './model.ts';
import { FORMATS, writeExperiment } from './output.ts';
import { progressBar } from './progress.ts';

const COMMON_FLAGS: FlagDef[] = [
  { flag: 'config', type: 'string', path: 'config', help: 'an experiment file (JSON): the same fields as the flags, in the API\'s names; flags win' },
  { flag: 'model', type: 'string', path: 'model', help: 'checkpoint directory, name under models/, or model name (default models/embedded)' },
  { flag: 'out', type: 'string', path: 'out', help: 'output directory (required, but for sae-dashboard)' },
  { flag: 'formats', type: 'list', path: 'formats', help: `files to write: ${FORMATS.join(',')} (default all)` },
  { flag: 'device', type: 'string', path: 'device', help: 'cpu | cuda | webgpu | auto (default cpu)' },
  { flag: 'threads', type: 'int', path: 'threads', help: 'onnxruntime threads (default 0: one per core)' },
  { flag: 'quiet', type: 'bool', path: 'quiet', help: 'no progress bar' },
];
const CLI_KEYS = new Set(['command', ...COMMON_FLAGS.map((f) => f.path)]);

const CliOptions = z.strictObject({
  command: z.string().optional(),
  config: z.string().optional(),
  model: z.string().min(1).optional(),
  out: z.string().min(1).optional(),
  formats: z.array(z.enum(FORMATS)).min(1).default([...FORMATS]),
  device: z.enum(DEVICES).default('cpu'),
  threads: z.number().int().min(0).default(0),
  quiet: z.boolean().default(false),
});

/** Every command: the analyses and the SAE commands. */
const COMMANDS: Record<string, Command> = { ...ANALYSIS_COMMANDS, ...SAE_COMMANDS };

export const USAGE = `Usage: npm run lens -- <command> [flags]      (or: lensboard <command> [flags])
Commands:
${Object.values(COMMANDS).map((c) => `  ${c.name.padEnd(11)} ${c.summary}`).join('\n')}
  ${'batch'.padEnd(11)} ${BATCH_SUMMARY}
  ${'worker'.padEnd(11)} ${WORKER_SUMMARY}
Run 'lensboard <command> --help' for its flags.`;

function commandUsage(name: string): string {
  const c = COMMANDS[name];
  return `Usage: lensboard ${name} [flags]\n${c.summary}\n\nFlags:\n${flagHelp(c.flags)}\n${flagHelp(COMMON_FLAGS)}`;
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** `over` merged into `base` (objects merged key by key; anything else replaced). */
function deepMerge(base: Record<string, unknown>, over: Record<string, unknown>): Record<string, unknown> {
  const out = { ...base };
  for (const [k, v] of Object.entries(over)) out[k] = isObject(v) && isObject(out[k]) ? deepMerge(out[k] as Record<string, unknown>, v) : v;
  return out;
}

function zodIssues(where: string, error: z.ZodError): string {
  const lines = error.issues.map((i) => `  ${i.path.length ? i.path.join('.') : '(top level)'}: ${i.message}`);
  return `${where}:\n${lines.join('\n')}`;
}

function readConfig(file: string): Record<string, unknown> {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    throw new UsageError(`--config: cannot read '${file}': ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (e) {
    throw new UsageError(`--config: '${file}' is not valid JSON: ${(e as Error).message}`);
  }
  if (!isObject(value)) throw new UsageError(`--config: '${file}' must hold a JSON object of experiment fields`);
  // Paths in the file are relative to the file.
  const base = dirname(resolve(file));
  if (typeof value.out === 'string' && !isAbsolute(value.out)) value.out = join(base, value.out);
  if (typeof value.model === 'string' && (value.model.startsWith('.') || value.model.includes('/')) && !isAbsolute(value.model)) {
    value.model = join(base, value.model);
  }
  return value;
}

/** Runs the CLI; returns the exit code (0 done, 1 failed while running, 2 bad command, flags or config). */
export async function main(argv: readonly string[]): Promise<number> {
  // `npm run lens` runs in the package root; relative paths mean the directory the user ran it from.
  if (process.env.npm_lifecycle_event === 'lens' && process.env.INIT_CWD) process.chdir(process.env.INIT_CWD);
  const [name, ...rest] = argv;
  if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
    (name === undefined ? process.stderr : process.stdout).write(`${USAGE}\n`);
    return name === undefined ? 2 : 0;
  }
  if (name === 'batch' || name === 'worker') return batchCli(name, rest);
  try {
    const cmd = COMMANDS[name];
    if (!cmd) throw new UsageError(`unknown command '${name}'; the commands are ${[...Object.keys(COMMANDS), 'batch', 'worker'].join(', ')}\n${USAGE}`);
    if (rest.includes('--help') || rest.includes('-h')) {
      process.stdout.write(`${commandUsage(name)}\n`);
      return 0;
    }
    const flags = parseFlags(rest, [...COMMON_FLAGS, ...cmd.flags], `Run 'lensboard ${name} --help' for its flags.`);
    const fromFile = typeof flags.config === 'string' ? readConfig(flags.config) : {};
    if (fromFile.command !== undefined && fromFile.command !== name) {
      throw new UsageError(`--config: the file is for the command '${String(fromFile.command)}', not '${name}'`);
    }
    const merged = deepMerge(fromFile, flags);
    const cliPart: Record<string, unknown> = {};
    const request: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(merged)) (CLI_KEYS.has(k) ? cliPart : request)[k] = v;
    const opts = CliOptions.safeParse(cliPart);
    if (!opts.success) throw new UsageError(zodIssues('invalid options', opts.error));
    cmd.prepare?.(request);
    const parsed = cmd.schema.safeParse(request);
    if (!parsed.success) throw new UsageError(`${zodIssues(`invalid ${name} experiment (fields of the flags / config file)`, parsed.error)}\nRun 'lensboard ${name} --help' for its flags.`);
    const { out, formats, device, threads, quiet } = opts.data;
    if (out === undefined && !cmd.outOptional) throw new UsageError('invalid options:\n  out: an output directory is required: pass --out DIR (or "out" in the config file)');
    const source = resolveModelArg(opts.data.model);

    const model = await loadModel(source, { device, threads });
    try {
      const bar = progressBar(name, { enabled: !quiet });
      const modelDir = existsSync(source) && statSync(source).isDirectory() ? source : null;
      const saes = new SaeStore({ model, modelDir, hub: {}, allowPaths: true });
      const ctx: JobContext = { limits: CLI_LIMITS, progress: (d, t, m) => bar.update(d, t, m), checkCancelled: () => {}, saes };
      const exp = await cmd.run(model, parsed.data as never, ctx);
      bar.finish();
      const files = [...(exp.files ?? []), ...(out === undefined ? [] : await writeExperiment(resolve(out), exp, formats, progressBar('figures', { enabled: !quiet })))];
      process.stdout.write(`${files.join('\n')}\n`);
      await saes.dispose();
    } finally {
      await model.dispose();
    }
    return 0;
  } catch (e) {
    if (e instanceof UsageError || e instanceof UserError) {
      process.stderr.write(`lensboard ${name}: ${e.message}\n`);
      return 2;
    }
    process.stderr.write(`lensboard ${name}: ${(e as Error).stack ?? String(e)}\n`);
    return 1;
  }
}

if (process.argv[1] !== undefined && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  process.exitCode = await main(process.argv.slice(2));
}
