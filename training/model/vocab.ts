/**
 * The grouped vocabulary: every token seen in the training data gets its own class (and its own
 * embedding row); all never-seen tokens share one "unseen" class whose logit is u·h + log(n_unseen).
 * Because all unseen tokens share one embedding row u (tied unembedding), the full d_vocab-way
 * softmax gives each of them probability exp(u·h)/Z, so their summed probability is exactly
 * n_unseen·exp(u·h)/Z = exp(u·h + log n_unseen)/Z: the grouped softmax equals the full one.
 */

export interface SeenVocab {
  d_vocab: number;
  /** Seen token ids in class order (ascending); class c < seen.length is token seen[c]. */
  seen: Int32Array;
  /** token id → class: its own class if seen, else `unseenClass`. [d_vocab] */
  classOf: Int32Array;
  /** = seen.length: the class (and embedding row) shared by every unseen token (no such class when nUnseen = 0). */
  unseenClass: number;
  nUnseen: number;
  /** Number of classes: seen.length + 1, or seen.length when every token is seen (each token its own row). */
  nClasses: number;
}

/** Builds the grouped vocabulary from the token ids that occur in the training data. */
export function buildSeenVocab(tokenIds: Iterable<number>, d_vocab: number): SeenVocab {
  const present = new Uint8Array(d_vocab);
  for (const t of tokenIds) {
    if (!Number.isInteger(t) || t < 0 || t >= d_vocab) throw new Error(`buildSeenVocab: token ${t} is not an integer in [0, ${d_vocab})`);
    present[t] = 1;
  }
  const seenList: number[] = [];
  for (let t = 0; t < d_vocab; t++) if (present[t]) seenList.push(t);
  if (seenList.length === 0) throw new Error('buildSeenVocab: no tokens given; the training data is empty');
  const seen = Int32Array.from(seenList);
  const unseenClass = seen.length;
  const classOf = new Int32Array(d_vocab).fill(unseenClass);
  seen.forEach((t, c) => { classOf[t] = c; });
  const nUnseen = d_vocab - seen.length;
  return { d_vocab, seen, classOf, unseenClass, nUnseen, nClasses: seen.length + (nUnseen > 0 ? 1 : 0) };
}

/** The whole vocabulary, every token its own class and embedding row (no shared row). */
export function fullVocab(d_vocab: number): SeenVocab {
  return buildSeenVocab(Array.from({ length: d_vocab }, (_, t) => t), d_vocab);
}

/** Additive logit offset of the unseen class: log(n_unseen), or -Infinity when every token is seen. */
export function unseenLogitOffset(v: SeenVocab): number {
  return v.nUnseen > 0 ? Math.log(v.nUnseen) : -Infinity;
}
