/**
 * `lensboard batch` on this machine, as a subprocess: the progress bar, the outputs, resuming from the shards
 * already written; and bad experiment files, each refused with a message naming the field.
 */
import { mkdtemp, readdir, readFile, rm, stat, unlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { UsageError } from '../../../cli/errors.ts';
import { loadExperiment } from '../../../batch/experiment.ts';
import { ExperimentStore } from '../../../batch/store.ts';
import { FORMAT_VERSION } from '../../../batch/experiment.ts';
import { lensRun } from '../../helpers/processes.ts';

let dir: string;
const OUTPUTS = ['items.jsonl', 'aggregate.json', 'figures.json', 'ablation-sweep-logit_diff.csv', 'ablation-sweep-logit_diff.html'];

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'lensboard-batch-cli-'));
});
afterAll(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
});

async function experiment(name: string, value: unknown): Promise<string> {
  const file = join(dir, `${name}.json`);
  await writeFile(file, typeof value === 'string' ? value : JSON.stringify(value));
  return file;
}

const readAll = (out: string) => Promise.all(OUTPUTS.map((f) => readFile(join(out, f))));

describe('lensboard batch (local)', () => {
  it('runs shard by shard with a progress bar (rate, ETA), writes every output, and a re-run resumes from the shards present with the same bytes', async () => {
    const file = await experiment('sweep', {
      dataset: { kind: 'ioi', n: 8, seed: 2 }, analysis: { kind: 'sweep', metric: { kind: 'logit_diff' } }, shardSize: 3, out: 'sweep-out',
    });
    const out = join(dir, 'sweep-out'); // "out" is relative to the experiment file
    const first = await lensRun(['batch', file, '--threads', '1', '--formats', 'json,csv,html']);
    expect(first.code, first.stderr).toBe(0);
    expect(first.stderr).toMatch(/sweep: sweep over 8 ioi items in 3 shards of 3, model embedded/);
    expect(first.stderr).toMatch(/items \[#+-*\] +\d\/8 +\d+% [\d.]+ items\/s, ETA \d+s · \d\/3 shards/);
    expect(first.stdout.trim().split('\n').sort()).toEqual(OUTPUTS.map((f) => join(out, f)).sort());
    const status = JSON.parse(await readFile(join(out, 'status.json'), 'utf8'));
    expect(status).toMatchObject({ state: 'done', mode: 'local', items: 8, itemsDone: 8, shards: 3, shardsDone: 3, analysis: 'sweep', dataset: 'ioi' });
    const bytes = await readAll(out);
    const shard0 = (await stat(join(out, 'shards', '000000.json'))).mtimeMs;

    await unlink(join(out, 'shards', '000001.json'));
    for (const f of OUTPUTS) await unlink(join(out, f));
    const second = await lensRun(['batch', file, '--threads', '1', '--formats', 'json,csv,html']);
    expect(second.code, second.stderr).toBe(0);
    expect(second.stderr).toMatch(/resuming: 2 of 3 shards already done/);
    expect((await stat(join(out, 'shards', '000000.json'))).mtimeMs).toBe(shard0); // not run again
    const again = await readAll(out);
    again.forEach((b, i) => expect(b.equals(bytes[i]), OUTPUTS[i]).toBe(true));

    const items = (await readFile(join(out, 'items.jsonl'), 'utf8')).trim().split('\n').map((l) => JSON.parse(l).index);
    expect(items).toEqual([0, 1, 2, 3, 4, 5, 6, 7]);

    // The same experiment with another shard size is another experiment: the directory is refused.
    const other = await lensRun(['batch', file, '--shard-size', '4', '--quiet']);
    expect(other.code).toBe(2);
    expect(other.stderr).toMatch(/--out: '.*sweep-out' holds another experiment \('sweep', fingerprint [0-9a-f]{12}; this one is [0-9a-f]{12}\)/);
  });

  it('a bad experiment file is refused before anything runs: exit 2 and the field named', async () => {
    const file = await experiment('bad-cli', { dataset: { kind: 'ioi', n: 0 }, analysis: { kind: 'sweep', metric: { kind: 'logit_diff' }, mode: 'average' } });
    const r = await lensRun(['batch', file, '--out', join(dir, 'never')]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/invalid experiment '.*bad-cli\.json':\n {2}dataset\.n: Too small: expected number to be >=1\n {2}analysis\.mode: Invalid option: expected one of "zero"\|"mean"\|"resample"/);
    const flags = await lensRun(['batch', file, '--shard-size', 'x']);
    expect([flags.code, flags.stderr.trim()]).toEqual([2, "lensboard batch: --shard-size must be an integer; got 'x'"]);
    const nofile = await lensRun(['batch', '--out', 'x']);
    expect([nofile.code, nofile.stderr.trim()]).toEqual([2, 'lensboard batch: give the experiment file first: lensboard batch EXPERIMENT.json [flags]']);
  });

  it('names the field of every kind of mistake', async () => {
    const jsonl = join(dir, 'items.jsonl');
    const cases: [string, unknown, RegExp, string?][] = [
      ['not JSON', '{"dataset": ', /experiment: '.*' is not valid JSON/],
      ['unknown field', { dataset: { kind: 'ioi', n: 2 }, analysis: { kind: 'ioi' }, shardsize: 3 }, /\(top level\): Unrecognized key: "shardsize"/],
      ['no dataset', { analysis: { kind: 'ioi' } }, /dataset: dataset must be \{kind: 'jsonl', path\}/],
      ['unknown analysis', { dataset: { kind: 'ioi', n: 2 }, analysis: { kind: 'swep' } }, /analysis(\.kind)?: analysis\.kind must be one of logit-lens, heads, ablate, sweep, patch, attribution-patch, saliency, feature-ablate, ioi/],
      ['bad metric token', { dataset: { kind: 'ioi', n: 2 }, analysis: { kind: 'sweep', metric: { kind: 'logit_diff', correct: 1.5 } } }, /analysis\.metric\.correct: a token is a string that is exactly one token/],
      ['unknown analysis field', { dataset: { kind: 'ioi', n: 2 }, analysis: { kind: 'heads', kind2: 1 } }, /analysis: Unrecognized key: "kind2"/],
      ['bad dataset field', { dataset: { kind: 'repeated', n: 2, seqLen: 0 }, analysis: { kind: 'heads' } }, /dataset\.seqLen: Too small/],
      ['jsonl: bad line', { dataset: { kind: 'jsonl', path: 'items.jsonl' }, analysis: { kind: 'heads' } }, /dataset '.*items\.jsonl' has bad items:\n {2}line 2: prompt: a prompt is a non-empty string or a non-empty array of token ids \(integers ≥ 0\)\n {2}line 4: not valid JSON/,
        '{"prompt": "fine"}\n{"prompt": 3}\n\n{"prompt": \n'],
      ['jsonl: unknown item field', { dataset: { kind: 'jsonl', path: 'items.jsonl' }, analysis: { kind: 'heads' } }, /line 1: \(the item\): Unrecognized key: "promt"/, '{"promt": "x"}\n'],
      ['jsonl: missing file', { dataset: { kind: 'jsonl', path: 'nope.jsonl' }, analysis: { kind: 'heads' } }, /dataset\.path: cannot read '.*nope\.jsonl': ENOENT/],
      ['items without what the analysis reads', { dataset: { kind: 'jsonl', path: 'items.jsonl' }, analysis: { kind: 'patch', metric: { kind: 'logit_diff' } } },
        /the dataset's items do not fit the patch analysis:\n {2}item 0 \(line 1\), item 1 \(line 2\): the item has no 'corrupted' \(patching reads a corrupted prompt\)/,
        '{"prompt": "a b", "correct": " a", "incorrect": " b"}\n{"prompt": "c d", "correct": " c", "incorrect": " d"}\n'],
      ['items whose token is not one token', { dataset: { kind: 'jsonl', path: 'items.jsonl' }, analysis: { kind: 'sweep', metric: { kind: 'logit_diff', incorrect: 7 } } },
        /item 0 \(line 1\): the item has no 'correct' \(the metric names no correct token\)/, '{"prompt": "a b"}\n'],
      ['IOI metrics on token ids', { dataset: { kind: 'repeated', n: 3, seqLen: 4 }, analysis: { kind: 'ioi' } },
        /item 0, item 1, item 2: IOI metrics read a text prompt; this item's prompt is token ids/],
      ['an analysis limit', { dataset: { kind: 'ioi', n: 2 }, analysis: { kind: 'sweep', metric: { kind: 'loss' }, chunkSize: 1000 } }, /analysis\.chunkSize: Too big: expected number to be <=256/],
    ];
    for (const [what, value, message, items] of cases) {
      if (items !== undefined) await writeFile(jsonl, items);
      const file = await experiment('bad', value);
      const err = await loadExperiment(file).then(() => null, (e: unknown) => e);
      expect(err, what).toBeInstanceOf(UsageError);
      expect((err as Error).message, what).toMatch(message);
    }
  });

  it('a directory that holds something else is refused', async () => {
    const file = await experiment('ok', { dataset: { kind: 'ioi', n: 2 }, analysis: { kind: 'ioi' } });
    await writeFile(join(dir, 'notes.txt'), 'mine');
    const prepared = await loadExperiment(file);
    await expect(ExperimentStore.open(dir, prepared)).rejects.toThrow(/--out: '.*' is not empty and holds no experiment\.json; give a new or empty directory/);
  });
});

describe('the shard store', () => {
  it("accepts a shard's result once, even from racing writers, and refuses another experiment's", async () => {
    const file = await experiment('store', { dataset: { kind: 'ioi', n: 5 }, analysis: { kind: 'ioi' }, shardSize: 2 });
    const prepared = await loadExperiment(file);
    const out = join(dir, 'store-out');
    const store = await ExperimentStore.open(out, prepared);
    const shard = (index: number, tag: string) => JSON.stringify({
      v: FORMAT_VERSION, fingerprint: prepared.fingerprint, shard: index, start: prepared.shards[index].start,
      results: Array.from({ length: prepared.shards[index].end - prepared.shards[index].start }, () => tag),
    });
    const raced = await Promise.all([1, 2, 3, 4].map((k) => store.accept(1, shard(1, `writer ${k}`))));
    expect(raced.filter(Boolean)).toHaveLength(1);
    const kept = (await store.readShard(1)).results[0];
    expect(await store.accept(1, shard(1, 'late'))).toBe(false);
    expect((await store.readShard(1)).results[0]).toBe(kept); // the first accepted result stays
    expect([...store.done]).toEqual([1]);
    expect(store.itemsDone).toBe(2);
    await expect(store.accept(2, shard(1, 'x'))).rejects.toThrow(/shard 2: the result is not this experiment's/);
    await expect(store.accept(0, shard(0, 'x').replace(prepared.fingerprint, 'f'.repeat(64)))).rejects.toThrow(/fingerprint ffffffffffff/);
    expect((await ExperimentStore.open(out, prepared)).done).toEqual(new Set([1])); // reopened: resumes from what is there
    expect((await readdir(join(out, 'shards'))).sort()).toEqual(['000001.json']); // no temporary file left
  });
});
