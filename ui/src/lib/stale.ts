/** The words of a stale marker: what changed since a figure ran, and what the figure shows meanwhile. */
import type { Staleness } from './state/keys.ts';

/**
 * A stale figure's marker text, or null when the figure answers its controls. `names` turns request fields into words
 * ("mode" → "ablation"); `action` says how to bring the figure up to date when it does not update itself ("press Sweep").
 */
export function staleMessage(s: Staleness | null, names: Record<string, string>, action?: string): string | null {
  if (!s) return null;
  const changed = s.fields.map((f) => names[f] ?? f);
  const what = changed.length ? `${changed.join(', ')} changed` : 'the controls changed';
  if (s.state === 'updating') return `Updating (${what}): this is the previous run until the new one lands.`;
  if (s.state === 'cancelled') return `Stale: the new run was cancelled; this is the previous run, labelled with its own settings (${what} since).`;
  return `Stale: ${what} since this ran; it shows its own run${action ? ` — ${action} to update it` : ''}.`;
}
