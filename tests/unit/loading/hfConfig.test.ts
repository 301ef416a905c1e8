/** HF GPT-2 config.json → HookedTransformerConfig, and official model names / aliases / repo ids. */
import { describe, expect, it } from 'vitest';
import { hfConfigToHooked } from '../../../hooks/loading/hfConfig.ts';
import { isHubRepoId, officialModel, resolveModelName } from '../../../hooks/loading/modelNames.ts';
import { gpt2Config } from '../../../hooks/init.ts';

/** openai-community/gpt2's config.json (the fields that matter, as published). */
const GPT2_CONFIG = {
  activation_function: 'gelu_new',
  architectures: ['GPT2LMHeadModel'],
  attn_pdrop: 0.1,
  bos_token_id: 50256,
  embd_pdrop: 0.1,
  eos_token_id: 50256,
  initializer_range: 0.02,
  layer_norm_epsilon: 1e-5,
  model_type: 'gpt2',
  n_ctx: 1024,
  n_embd: 768,
  n_head: 12,
  n_layer: 12,
  n_positions: 1024,
  resid_pdrop: 0.1,
  vocab_size: 50257,
};

describe('hfConfigToHooked', () => {
  it('maps gpt2 to the TransformerLens config', () => {
    expect(hfConfigToHooked(GPT2_CONFIG, 'gpt2')).toEqual(gpt2Config());
  });

  it('gpt2-xl: n_inner null → 4·n_embd, d_head = n_embd / n_head', () => {
    const cfg = hfConfigToHooked({ ...GPT2_CONFIG, n_embd: 1600, n_head: 25, n_layer: 48, n_inner: null }, 'gpt2-xl');
    expect([cfg.d_model, cfg.n_heads, cfg.d_head, cfg.d_mlp, cfg.n_layers, cfg.model_name]).toEqual([1600, 25, 64, 6400, 48, 'gpt2-xl']);
  });

  it('explicit n_inner, activation, eps, token ids and n_positions', () => {
    const cfg = hfConfigToHooked(
      { ...GPT2_CONFIG, n_inner: 100, activation_function: 'relu', layer_norm_epsilon: 1e-6, bos_token_id: 3, eos_token_id: 4, n_positions: 64, n_ctx: undefined, initializer_range: 0.05 },
      'x/y',
    );
    expect([cfg.d_mlp, cfg.act_fn, cfg.eps, cfg.bos_token_id, cfg.eos_token_id, cfg.n_ctx, cfg.initializer_range]).toEqual([100, 'relu', 1e-6, 3, 4, 64, 0.05]);
    expect(hfConfigToHooked({ ...GPT2_CONFIG, activation_function: 'gelu_pytorch_tanh' }, 'x').act_fn).toBe('gelu_new');
  });

  it('accepts GPT2Model, or model_type gpt2 without architectures', () => {
    expect(hfConfigToHooked({ ...GPT2_CONFIG, architectures: ['GPT2Model'] }, 'x').n_layers).toBe(12);
    expect(hfConfigToHooked({ ...GPT2_CONFIG, architectures: undefined }, 'x').n_layers).toBe(12);
  });

  it('unsupported architecture names what it found and what is supported', () => {
    expect(() => hfConfigToHooked({ ...GPT2_CONFIG, architectures: ['LlamaForCausalLM'], model_type: 'llama' }, 'meta/llama')).toThrow(
      /meta\/llama: unsupported architecture: config.json has architectures \["LlamaForCausalLM"\] and model_type "llama"; supported: architectures containing GPT2LMHeadModel or GPT2Model, or model_type "gpt2"/,
    );
  });

  it('rejects invalid or unsupported fields with the field name', () => {
    expect(() => hfConfigToHooked({ ...GPT2_CONFIG, n_head: 7 }, 'x')).toThrow(/n_embd=768 is not divisible by n_head=7/);
    expect(() => hfConfigToHooked({ ...GPT2_CONFIG, n_layer: 0 }, 'x')).toThrow(/'n_layer' must be a positive integer, got 0/);
    expect(() => hfConfigToHooked({ ...GPT2_CONFIG, vocab_size: '5' }, 'x')).toThrow(/'vocab_size' must be a positive integer/);
    expect(() => hfConfigToHooked({ ...GPT2_CONFIG, activation_function: 'swish' }, 'x')).toThrow(/activation_function "swish" is not supported; supported: gelu_new/);
    expect(() => hfConfigToHooked({ ...GPT2_CONFIG, scale_attn_by_inverse_layer_idx: true }, 'x')).toThrow(/scale_attn_by_inverse_layer_idx/);
    expect(() => hfConfigToHooked([], 'x')).toThrow(/must be a JSON object/);
  });

  it('refuses sizes beyond sane bounds at once, naming the field and the bounds (n_layer 1e9 is not tried)', () => {
    expect(() => hfConfigToHooked({ ...GPT2_CONFIG, n_layer: 1e9 }, 'x')).toThrow("config.json: 'n_layer' is 1000000000, out of range (allowed 1..512)");
    expect(() => hfConfigToHooked({ ...GPT2_CONFIG, n_embd: 65_536, n_head: 1 }, 'x')).toThrow("'n_embd' is 65536, out of range (allowed 1..32768)");
    expect(() => hfConfigToHooked({ ...GPT2_CONFIG, vocab_size: 2 ** 21 }, 'x')).toThrow("'vocab_size' is 2097152, out of range (allowed 1..1048576)");
    expect(() => hfConfigToHooked({ ...GPT2_CONFIG, n_positions: undefined, n_ctx: 1e7 }, 'x')).toThrow("'n_ctx' is 10000000, out of range");
    expect(() => hfConfigToHooked({ ...GPT2_CONFIG, n_inner: 1e6 }, 'x')).toThrow("'n_inner' is 1000000, out of range (allowed 1..262144)");
    expect(hfConfigToHooked({ ...GPT2_CONFIG, n_layer: 512 }, 'x').n_layers).toBe(512);
  });
});

describe('model names', () => {
  it('official names, TransformerLens aliases and official repo ids map to hub repos', () => {
    expect(resolveModelName('gpt2')).toBe('openai-community/gpt2');
    expect(resolveModelName('gpt2-small')).toBe('openai-community/gpt2');
    expect(resolveModelName('GPT2-Medium')).toBe('openai-community/gpt2-medium');
    expect(resolveModelName('gpt2-large')).toBe('openai-community/gpt2-large');
    expect(resolveModelName('gpt2-xl')).toBe('openai-community/gpt2-xl');
    expect(resolveModelName('distilgpt2')).toBe('distilbert/distilgpt2');
    expect(resolveModelName('distil-gpt2')).toBe('distilbert/distilgpt2');
    expect(resolveModelName('openai-community/gpt2-xl')).toBe('openai-community/gpt2-xl');
    expect(officialModel('openai-community/gpt2')?.name).toBe('gpt2');
    expect(officialModel('gpt2-small')?.name).toBe('gpt2');
  });

  it('other org/name repo ids pass through; malformed ones and unknown bare names throw with the known names', () => {
    expect(resolveModelName('sshleifer/tiny-gpt2')).toBe('sshleifer/tiny-gpt2');
    expect(resolveModelName('my_org/model.v2')).toBe('my_org/model.v2');
    for (const bad of ['a/b/c', 'org/-bad', 'org/na--me', 'org/a..b', 'org/x.git', '/abs', 'org/']) expect(isHubRepoId(bad)).toBe(false);
    expect(() => resolveModelName('gpt3')).toThrow(/Unknown model name "gpt3": use one of gpt2, gpt2-small, gpt2-medium, gpt2-large, gpt2-xl, distilgpt2/);
    expect(() => resolveModelName('org/bad name')).toThrow(/Unknown model name/);
  });
});
