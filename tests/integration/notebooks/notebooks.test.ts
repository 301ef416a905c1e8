/** The TypeScript notebooks: each .ipynb matches its percent-format .ts source, and each runs top to bottom headless (nbconvert --execute, Deno kernel) with Plotly figures in its outputs. */
import { execFile } from 'node:child_process';
import { realpathSync } from 'node:fs';
import { mkdtemp, mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildNotebook, notebookSources, notebookText } from '../../../notebooks/build.ts';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const NOTEBOOKS = join(ROOT, 'notebooks');
const EXPECTED = ['01-logit-lens', '02-induction-heads', '03-ioi-ablations-and-patching', '04-circuits-from-weights', '05-attribution-patching', '06-how-does-it-add', '07-features-of-the-residual-stream'];
/** A developer may run the notebooks on another checkpoint (e.g. a random tiny one) by setting this. */
const MODEL_OVERRIDE = process.env.LENSBOARD_NOTEBOOK_MODEL;

interface NbOutput { output_type: string; data?: Record<string, unknown>; ename?: string; evalue?: string }
interface NbCell { cell_type: string; id: string; source: string[]; outputs?: NbOutput[] }

describe('notebook sources', () => {
  it('every notebook is built from its .ts source (npx tsx notebooks/build.ts) and uses the Deno kernel', async () => {
    expect(notebookSources().map((f) => f.replace(/\.ts$/, ''))).toEqual(EXPECTED);
    for (const stem of EXPECTED) {
      const committed = await readFile(join(NOTEBOOKS, `${stem}.ipynb`), 'utf8');
      expect(committed, `${stem}.ipynb is out of date with ${stem}.ts`).toBe(notebookText(join(NOTEBOOKS, `${stem}.ts`), stem));
      const nb = JSON.parse(committed);
      expect(nb.metadata.kernelspec.name).toBe('deno');
      expect(nb.nbformat).toBe(4);
      const kinds = (nb.cells as NbCell[]).map((c) => c.cell_type);
      expect(kinds[0]).toBe('markdown'); // each opens with prose
      expect(kinds.filter((k) => k === 'code').length).toBeGreaterThanOrEqual(5);
      expect(kinds.filter((k) => k === 'markdown').length).toBeGreaterThanOrEqual(4);
      expect((nb.cells as NbCell[]).every((c) => !c.outputs || c.outputs.length === 0)).toBe(true); // committed without outputs
    }
  });

  it('the percent format: markdown lines lose their "// ", code is kept, the doc comment is not a cell', () => {
    const nb = buildNotebook('/** doc */\n// %% [markdown]\n// # Title\n//\n// text\n\n// %%\nconst a = 1;\n\nawait f(a);\n', 'x') as { cells: NbCell[] };
    expect(nb.cells.map((c) => [c.cell_type, c.id, c.source.join('')])).toEqual([
      ['markdown', 'x-01', '# Title\n\ntext'],
      ['code', 'x-02', 'const a = 1;\n\nawait f(a);'],
    ]);
    expect(() => buildNotebook('// %% [markdown]\nnot a comment\n', 'y')).toThrow(/must start with/);
  });
});

describe('notebooks run headless (jupyter nbconvert --execute, Deno kernel)', () => {
  let work: string;
  const env: NodeJS.ProcessEnv = { ...process.env };

  beforeAll(async () => {
    work = await mkdtemp(join(tmpdir(), 'lensboard-notebooks-'));
    // A kernelspec of our own (the repo's Deno from node_modules), so the run does not depend on a user install.
    const kernelDir = join(work, 'jupyter', 'kernels', 'deno');
    await mkdir(kernelDir, { recursive: true });
    const deno = realpathSync(join(ROOT, 'node_modules', '.bin', 'deno'));
    await writeFile(join(kernelDir, 'kernel.json'), JSON.stringify({
      argv: [deno, 'jupyter', '--kernel', '--conn', '{connection_file}'], display_name: 'Deno', language: 'typescript', env: { DENO_NO_UPDATE_CHECK: '1' },
    }));
    Object.assign(env, { JUPYTER_PATH: join(work, 'jupyter'), JUPYTER_RUNTIME_DIR: join(work, 'runtime'), JUPYTER_PLATFORM_DIRS: '1', DENO_NO_UPDATE_CHECK: '1' });
  });
  afterAll(async () => {
    if (work) await rm(work, { recursive: true, force: true });
  });

  it.each(EXPECTED)('%s runs top to bottom without a cell error and shows its Plotly figures', async (stem) => {
    const out = join(work, `${stem}.ipynb`);
    const r = await new Promise<{ code: number; stderr: string }>((resolve) => {
      execFile('jupyter', ['nbconvert', '--to', 'notebook', '--execute', '--ExecutePreprocessor.timeout=600', '--output', out, `${stem}.ipynb`],
        { cwd: NOTEBOOKS, env, maxBuffer: 64 << 20 }, (err, _stdout, stderr) => {
          const code = err ? (typeof (err as { code?: unknown }).code === 'number' ? (err as { code: number }).code : 127) : 0;
          resolve({ code, stderr });
        });
    });
    if (r.code === 127 || /ENOENT/.test(r.stderr)) throw new Error('jupyter is not installed: apt-get install jupyter-nbconvert python3-nbclient jupyter-client (see .ci/run)');
    expect(r.code, `nbconvert failed:\n${r.stderr.slice(-4000)}`).toBe(0);
    const nb = JSON.parse(await readFile(out, 'utf8')) as { cells: NbCell[] };
    const code = nb.cells.filter((c) => c.cell_type === 'code');
    const errors = code.flatMap((c) => (c.outputs ?? []).filter((o) => o.output_type === 'error').map((o) => `${c.id}: ${o.ename}: ${o.evalue}`));
    expect(errors).toEqual([]);
    // Every cell that plots has a Plotly figure (data and layout) and its HTML among its outputs.
    const plotCells = code.filter((c) => /^await plot\(/m.test(c.source.join('')));
    expect(plotCells.length).toBeGreaterThanOrEqual(2);
    for (const c of plotCells) {
      const fig = (c.outputs ?? []).map((o) => o.data?.['application/vnd.plotly.v1+json'] as { data: { type: string }[]; layout: object } | undefined).find(Boolean);
      expect(fig, `${c.id} has no Plotly output`).toBeDefined();
      expect(fig!.data.length).toBeGreaterThan(0);
      expect(['heatmap', 'bar', 'scatter', 'table']).toContain(fig!.data[0].type);
      const html = (c.outputs ?? []).map((o) => o.data?.['text/html']).find(Boolean);
      expect([html].flat().join('')).toContain('Plotly.newPlot');
    }
  });
});

