/** Progress line formatting and the TTY progress bar. */
import { describe, expect, it } from 'vitest';
import { formatBytes, formatDuration, formatProgressLine, ttyProgressBar } from '../../../hooks/loading/progress.ts';

const ev = (loaded: number, total: number | null, rate: number, eta: number | null) =>
  ({ status: 'progress', repo: 'o/r', file: 'model.safetensors', loaded, total, rate, eta }) as const;

describe('progress formatting', () => {
  it('bytes and durations', () => {
    expect(formatBytes(512)).toBe('512 B');
    expect(formatBytes(1536)).toBe('1.5 kB');
    expect(formatBytes(548_105_171)).toBe('522.7 MB'); // 548105171 / 2^20 = 522.71
    expect(formatBytes(6 * 2 ** 30)).toBe('6.0 GB');
    expect(formatDuration(42.4)).toBe('42s');
    expect(formatDuration(125)).toBe('2m05s');
    expect(formatDuration(3 * 3600 + 7 * 60)).toBe('3h07m');
  });

  it('a line with percentage, bar, sizes, rate and eta, within the width', () => {
    const line = formatProgressLine(ev(2 ** 29, 2 ** 30, 2 ** 24, 32), 100);
    expect(line).toBe(`model.safetensors  50% [${'#'.repeat(15)}${'-'.repeat(15)}] 512.0 MB/1.0 GB 16.0 MB/s eta 32s`);
    expect(line.length).toBeLessThanOrEqual(100);
    const narrow = formatProgressLine(ev(2 ** 29, 2 ** 30, 2 ** 24, 32), 60);
    expect(narrow).toBe('model.safetensors  50% 512.0 MB/1.0 GB 16.0 MB/s eta 32s'); // no room for a bar
    expect(formatProgressLine(ev(2048, null, 1024, null), 80)).toBe('model.safetensors 2.0 kB 1.0 kB/s');
  });

  it('ttyProgressBar redraws one line with \\r and clears it when the file is done', () => {
    const writes: string[] = [];
    const stream = { columns: 101, write: (s: string) => writes.push(s) } as unknown as NodeJS.WriteStream;
    const bar = ttyProgressBar(stream, 0);
    bar({ status: 'initiate', repo: 'o/r', file: 'model.safetensors' });
    bar(ev(2 ** 29, 2 ** 30, 2 ** 24, 32));
    bar({ status: 'done', repo: 'o/r', file: 'model.safetensors', path: '/x', cached: false });
    expect(writes).toEqual([`\rmodel.safetensors  50% [${'#'.repeat(15)}${'-'.repeat(15)}] 512.0 MB/1.0 GB 16.0 MB/s eta 32s\x1b[K`, '\r\x1b[K']);
  });
});
