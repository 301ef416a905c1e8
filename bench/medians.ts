/** Interleaved timing shared by the benchmarks. */

/**
 * Medians of `runs` timed calls of each function, taken in turns (one call of each per round,
 * after one warm-up call each; every other round in reverse order, so that no variant always
 * follows the same one), so that a change in the machine's load hits every variant alike and the
 * ratios stay fair. A short pause before each call lets the previous session's onnxruntime
 * threads stop spinning.
 */
export async function medians(fns: Record<string, () => Promise<unknown>>, runs: number): Promise<Record<string, number>> {
  const pause = () => new Promise((r) => setTimeout(r, 20));
  for (const fn of Object.values(fns)) await fn();
  const times: Record<string, number[]> = Object.fromEntries(Object.keys(fns).map((k) => [k, []]));
  const order = Object.entries(fns);
  for (let i = 0; i < runs; i++) {
    for (const [k, fn] of i % 2 === 0 ? order : [...order].reverse()) {
      await pause();
      const t0 = performance.now();
      await fn();
      times[k].push(performance.now() - t0);
    }
  }
  const mid = (a: number[]) => [...a].sort((x, y) => x - y)[Math.floor(a.length / 2)];
  return Object.fromEntries(Object.entries(times).map(([k, t]) => [k, mid(t)]));
}
