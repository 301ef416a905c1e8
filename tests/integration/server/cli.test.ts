/** server/index.ts and its config: flags and env validated once, a real start on an ephemeral port, graceful SIGTERM, clear start-up failures. */
import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { parseConfig } from '../../../server/config.ts';
import { writeTinyModel } from './helpers.ts';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));

describe('parseConfig', () => {
  it('defaults: embedded model, cpu, 127.0.0.1:7860, no extra roots', () => {
    const c = parseConfig([], {});
    expect(c).toMatchObject({ model: 'embedded', device: 'cpu', host: '127.0.0.1', port: 7860, modelRoots: [], offline: false });
    expect(c.limits).toMatchObject({ maxBatch: 32, maxBodyBytes: 1_048_576, cancelGraceMs: 1000 });
  });

  it('flags win over env; --models-dir repeats; env lists roots with ":"', () => {
    const env = { LENSBOARD_MODEL: 'gpt2', LENSBOARD_PORT: '9000', LENSBOARD_MODELS_DIR: '/a:/b', LENSBOARD_DEVICE: 'auto', HF_HUB_OFFLINE: '1' };
    expect(parseConfig([], env)).toMatchObject({ model: 'gpt2', port: 9000, modelRoots: ['/a', '/b'], device: 'auto', offline: true });
    const c = parseConfig(['--model', 'x', '--port', '0', '--models-dir', '/c', '--models-dir', '/d', '--host', '0.0.0.0'], env);
    expect(c).toMatchObject({ model: 'x', port: 0, modelRoots: ['/c', '/d'], host: '0.0.0.0' });
  });

  it('--allowed-hosts (comma-separated, repeatable, or env), --max-job-memory and --recycle-rss sizes with units', () => {
    const c = parseConfig(['--allowed-hosts', 'a.example,b.example', '--allowed-hosts', 'c.example', '--max-job-memory', '512M', '--recycle-rss', '1.5G'], {});
    expect(c.allowedHosts).toEqual(['a.example', 'b.example', 'c.example']);
    expect(c.limits.maxJobMemoryBytes).toBe(512 * 2 ** 20);
    expect(c.recycleRssBytes).toBe(1.5 * 2 ** 30);
    expect(parseConfig([], { LENSBOARD_ALLOWED_HOSTS: 'x.example, y.example', LENSBOARD_MAX_JOB_MEMORY: '2147483648' })).toMatchObject({
      allowedHosts: ['x.example', 'y.example'], limits: { maxJobMemoryBytes: 2 ** 31 },
    });
    expect(parseConfig([], {}).limits.maxJobMemoryBytes).toBe(Math.floor(totalmem() / 4));
    expect(() => parseConfig(['--max-job-memory', 'lots'], {})).toThrow("--max-job-memory must be a size in bytes or with a unit (K, M, G; e.g. 512M, 6G); got 'lots'");
    expect(() => parseConfig(['--max-job-memory', '1M'], {})).toThrow(/limits\.maxJobMemoryBytes: Too small: expected number to be >=134217728/);
  });

  it('bad values are refused with the field and what is allowed', () => {
    expect(() => parseConfig(['--port', 'abc'], {})).toThrow("--port must be a non-negative integer; got 'abc'");
    expect(() => parseConfig(['--port', '70000'], {})).toThrow(/port: Too big: expected number to be <=65535/);
    expect(() => parseConfig(['--device', 'tpu'], {})).toThrow(/device: Invalid option: expected one of "cpu"\|"cuda"\|"webgpu"\|"auto"/);
    expect(() => parseConfig(['--verbose'], {})).toThrow(/Unknown option '--verbose'/);
  });
});

function run(args: string[]): { out: Promise<{ code: number | null; text: string }>; child: ReturnType<typeof spawn>; lines: string[] } {
  const child = spawn(process.execPath, ['--import', 'tsx', 'server/index.ts', ...args], { cwd: ROOT, env: { ...process.env, LENSBOARD_MODEL: '' } });
  const lines: string[] = [];
  let text = '';
  const onData = (d: Buffer) => {
    text += d.toString();
    lines.push(...d.toString().split('\n').filter(Boolean));
  };
  child.stdout.on('data', onData);
  child.stderr.on('data', onData);
  const out = new Promise<{ code: number | null; text: string }>((resolve) => child.on('exit', (code) => resolve({ code, text })));
  return { out, child, lines };
}

describe('server/index.ts', () => {
  it('starts with --model from --models-dir on port 0, serves, and stops cleanly on SIGTERM', async () => {
    const root = await mkdtemp(join(tmpdir(), 'lensboard-cli-'));
    await writeTinyModel(join(root, 'cli-tiny'), 11);
    const p = run(['--models-dir', root, '--model', 'cli-tiny', '--port', '0', '--threads', '1']);
    let url: string | undefined;
    for (let i = 0; i < 600 && !url; i++) {
      const line = p.lines.find((l) => l.includes('Lensboard API listening'));
      if (line) url = JSON.parse(line).url;
      else await new Promise((r) => setTimeout(r, 50));
    }
    expect(url).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/$/);
    const health = await (await fetch(`${url}api/health`)).json();
    expect(health).toMatchObject({ status: 'ok', model: 'cli-tiny', modelState: 'ready' });
    p.child.kill('SIGTERM');
    const { code, text } = await p.out;
    expect(code).toBe(0);
    expect(text).toContain('"msg":"stopped"');
    await rm(root, { recursive: true, force: true });
  });

  it('refuses to start with a bad flag (exit 2) or a model it cannot find (exit 1), saying why', async () => {
    const [bad, missing] = await Promise.all([run(['--port', 'abc']).out, run(['--model', 'no-such-model', '--offline']).out]);
    expect(bad.code).toBe(2);
    expect(bad.text).toContain("--port must be a non-negative integer; got 'abc'");
    expect(missing.code).toBe(1);
    expect(missing.text).toContain('cannot load model \\"no-such-model\\": no model \\"no-such-model\\"');
  });
});
