/** Official GPT-2 model names, their Hugging Face hub repo ids and TransformerLens aliases; where the embedded model lives. */
import { fileURLToPath } from 'node:url';

/** <package root>/models/embedded: the small model Lensboard ships, loaded by `HookedTransformer.fromPretrained()` with no name. */
export const EMBEDDED_MODEL_DIR = fileURLToPath(new URL('../../models/embedded/', import.meta.url));

export interface OfficialModel {
  /** TransformerLens's official name, used as cfg.model_name. */
  name: string;
  /** Hugging Face hub repo id. */
  repo: string;
  /** Other names TransformerLens (and the hub's legacy ids) accept. */
  aliases: string[];
}

export const OFFICIAL_MODELS: readonly OfficialModel[] = [
  { name: 'gpt2', repo: 'openai-community/gpt2', aliases: ['gpt2-small'] },
  { name: 'gpt2-medium', repo: 'openai-community/gpt2-medium', aliases: [] },
  { name: 'gpt2-large', repo: 'openai-community/gpt2-large', aliases: [] },
  { name: 'gpt2-xl', repo: 'openai-community/gpt2-xl', aliases: [] },
  { name: 'distilgpt2', repo: 'distilbert/distilgpt2', aliases: ['distillgpt2', 'distill-gpt2', 'distil-gpt2', 'gpt2-xs'] },
];

/** Lower-cased official name / alias / repo id → model. */
const BY_NAME = new Map<string, OfficialModel>();
for (const m of OFFICIAL_MODELS) {
  for (const n of [m.name, m.repo, ...m.aliases]) BY_NAME.set(n.toLowerCase(), m);
}

/** A hub repo id `org/name`: word characters, '-', '.', starting and ending with a word character, ≤ 96 each, no '--' or '..'. */
const REPO_ID = /^[\w](?:[\w.-]{0,94}[\w])?\/[\w](?:[\w.-]{0,94}[\w])?$/;

export function isHubRepoId(s: string): boolean {
  return REPO_ID.test(s) && !s.includes('--') && !s.includes('..') && !s.endsWith('.git');
}

/** The official model for a name, alias or official repo id (case-insensitive), or undefined. */
export function officialModel(name: string): OfficialModel | undefined {
  return BY_NAME.get(name.trim().toLowerCase());
}

export function knownModelNames(): string[] {
  return OFFICIAL_MODELS.flatMap((m) => [m.name, ...m.aliases]);
}

/**
 * The hub repo id for a model name: official names and aliases map to their repo; any other
 * `org/name` repo id passes through unchanged (accepted later if its config.json is a GPT-2).
 */
export function resolveModelName(name: string): string {
  const official = officialModel(name);
  if (official) return official.repo;
  if (isHubRepoId(name)) return name;
  throw new Error(
    `Unknown model name ${JSON.stringify(name)}: use one of ${knownModelNames().join(', ')}, ` +
      `a Hugging Face repo id like "org/name", or a local checkpoint directory`,
  );
}
