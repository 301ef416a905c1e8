/** The benches' peak-memory reading. */
import { readFileSync } from 'node:fs';

/**
 * The process's peak RSS in MiB: VmHWM of this address space. (getrusage's maxRSS would carry over
 * the parent's peak across fork + exec on Linux.)
 */
export function peakRssMiB(): number {
  const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync('/proc/self/status', 'utf8'));
  return m ? Number(m[1]) / 1024 : process.resourceUsage().maxRSS / 1024;
}
