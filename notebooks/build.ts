/** Builds each notebook (NN-name.ipynb) from its source NN-name.ts, a TypeScript file in the percent format (`// %%` code cells, `// %% [markdown]` prose). */
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const NOTEBOOKS_DIR = fileURLToPath(new URL('./', import.meta.url));
/** The notebook sources: NN-name.ts in notebooks/. */
export const SOURCE_PATTERN = /^\d\d-[a-z0-9-]+\.ts$/;

interface Cell {
  cell_type: 'markdown' | 'code';
  id: string;
  metadata: Record<string, unknown>;
  source: string[];
  outputs?: unknown[];
  execution_count?: null;
}

/** Jupyter stores source as lines that keep their newline (the last without). */
function lines(text: string): string[] {
  const ls = text.split('\n');
  return ls.map((l, i) => (i < ls.length - 1 ? `${l}\n` : l)).filter((l) => l.length > 0);
}

/** A percent-format source → nbformat 4.5 JSON for the Deno kernel. The file's opening doc comment is not a cell. */
export function buildNotebook(source: string, stem: string): Record<string, unknown> {
  const cells: Cell[] = [];
  let kind: Cell['cell_type'] | null = null;
  let body: string[] = [];
  const flush = () => {
    if (kind === null) return;
    while (body.length && body[body.length - 1].trim() === '') body.pop();
    while (body.length && body[0].trim() === '') body.shift();
    const text = body.join('\n');
    if (text.length === 0) throw new Error(`${stem}: cell ${cells.length + 1} is empty`);
    const id = `${stem}-${String(cells.length + 1).padStart(2, '0')}`;
    cells.push(kind === 'markdown'
      ? { cell_type: 'markdown', id, metadata: {}, source: lines(text) }
      : { cell_type: 'code', id, metadata: {}, source: lines(text), outputs: [], execution_count: null });
  };
  for (const line of source.split('\n')) {
    const m = /^\/\/ %%(?: \[(markdown)\])?\s*$/.exec(line);
    if (m) {
      flush();
      kind = m[1] ? 'markdown' : 'code';
      body = [];
    } else if (kind === 'markdown') {
      if (!/^\/\/( |$)/.test(line) && line.trim() !== '') throw new Error(`${stem}: a markdown line must start with '// ': ${line}`);
      body.push(line.replace(/^\/\/ ?/, ''));
    } else if (kind === 'code') body.push(line);
  }
  flush();
  return {
    cells,
    metadata: {
      kernelspec: { name: 'deno', display_name: 'Deno', language: 'typescript' },
      language_info: { name: 'typescript', file_extension: '.ts', mimetype: 'text/x.typescript', codemirror_mode: 'typescript', pygments_lexer: 'typescript' },
    },
    nbformat: 4,
    nbformat_minor: 5,
  };
}

/** The .ipynb text of a source file (stable: two-space JSON, trailing newline). */
export function notebookText(sourcePath: string, stem: string): string {
  return `${JSON.stringify(buildNotebook(readFileSync(sourcePath, 'utf8'), stem), null, 1)}\n`;
}

export function notebookSources(): string[] {
  return readdirSync(NOTEBOOKS_DIR).filter((f) => SOURCE_PATTERN.test(f)).sort();
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  for (const f of notebookSources()) {
    const stem = f.replace(/\.ts$/, '');
    writeFileSync(join(NOTEBOOKS_DIR, `${stem}.ipynb`), notebookText(join(NOTEBOOKS_DIR, f), stem));
    console.log(`notebooks/${stem}.ipynb`);
  }
}
