/** Tokens as the dashboard writes them in HTML: spaces, newlines and tabs made visible (␣ ↵ ⇥), so " Paris" and "Paris" look different. */
export function visible(s: string | null | undefined): string {
  if (s === null || s === undefined) return '∅';
  return s.replace(/ /g, '␣').replace(/\r?\n/g, '↵').replace(/\t/g, '⇥');
}
