/** loadGpt2Checkpoint: HF GPT-2 layout round trips (dtypes, prefix, buffers, lm_head, shards) and a clear error for each bad checkpoint. */
import { mkdir, mkdtemp, rm, symlink, truncate, writeFile, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { gpt2Config, randomWeights } from '../../../hooks/init.ts';
import { Rng } from '../../../hooks/random.ts';
import type { TransformerWeights } from '../../../hooks/weights.ts';
import { loadGpt2Checkpoint, modelNameFromDir } from '../../../hooks/loading/gpt2Checkpoint.ts';
import { writeSafetensors } from '../../../hooks/loading/safetensors.ts';
import type { SafetensorsDtype } from '../../../hooks/loading/safetensors.ts';
import { hfTensors, writeHfCheckpoint } from '../../helpers/checkpoints.ts';
import type { HfCheckpointOptions } from '../../helpers/checkpoints.ts';
import { firstMismatch, refBf16, refF16, refRound } from './reference.ts';

const cfg = gpt2Config({ model_name: 'tiny', n_layers: 2, d_model: 16, n_heads: 4, d_vocab: 50, n_ctx: 8 }); // d_head 4, d_mlp 64
const weights = randomWeights(cfg, { seed: 11, randomAffine: true });

let root: string;
let counter = 0;
const freshDir = () => join(root, `ckpt-${counter++}`);
beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'lensboard-ckpt-'));
});
afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

const rounders: Record<SafetensorsDtype, (v: number) => number> = { F32: (v) => v, F16: refF16, BF16: refBf16 };

/** Every tensor of `got` equals `want` rounded like the stored dtype (exactly). */
function expectWeights(got: TransformerWeights, want: TransformerWeights, dtype: SafetensorsDtype): void {
  const r = (a: Float32Array) => refRound(a, rounders[dtype]);
  const check = (name: string, g: Float32Array, w: Float32Array) => expect(firstMismatch(g, r(w)), name).toBeNull();
  check('W_E', got.W_E, want.W_E);
  check('W_pos', got.W_pos, want.W_pos);
  check('W_U', got.W_U, want.W_U);
  expect(firstMismatch(got.b_U, new Float32Array(cfg.d_vocab)), 'b_U').toBeNull();
  check('ln_final.w', got.ln_final!.w, want.ln_final!.w);
  check('ln_final.b', got.ln_final!.b, want.ln_final!.b);
  expect(got.blocks.length).toBe(want.blocks.length);
  want.blocks.forEach((wb, l) => {
    const gb = got.blocks[l];
    for (const k of ['W_Q', 'b_Q', 'W_K', 'b_K', 'W_V', 'b_V', 'W_O', 'b_O', 'W_in', 'b_in', 'W_out', 'b_out'] as const) {
      check(`blocks.${l}.${k}`, gb[k], wb[k]);
    }
    check(`blocks.${l}.ln1.w`, gb.ln1!.w, wb.ln1!.w);
    check(`blocks.${l}.ln1.b`, gb.ln1!.b, wb.ln1!.b);
    check(`blocks.${l}.ln2.w`, gb.ln2!.w, wb.ln2!.w);
    check(`blocks.${l}.ln2.b`, gb.ln2!.b, wb.ln2!.b);
  });
}

describe('loadGpt2Checkpoint round trips', () => {
  for (const dtype of ['F32', 'F16', 'BF16'] as const) {
    for (const prefix of [false, true]) {
      for (const buffers of [false, true]) {
        for (const lmHead of [false, true]) {
          it(`${dtype} prefix=${prefix} buffers=${buffers} lm_head=${lmHead}`, async () => {
            const dir = freshDir();
            await writeHfCheckpoint(dir, cfg, weights, { dtype, prefix, buffers, lmHead });
            const loaded = await loadGpt2Checkpoint(dir, { modelName: 'tiny' });
            expect(loaded.cfg).toEqual(cfg);
            expect(loaded.dir).toBe(dir);
            expectWeights(loaded.weights, weights, dtype);
          });
        }
      }
    }
  }

  it('spot-checks the c_attn split by hand: W_K[i, j] = c_attn[i, H + j], b_V[j] = c_attn.bias[2H + j]', async () => {
    const dir = freshDir();
    await writeHfCheckpoint(dir, cfg, weights, { dtype: 'F32', prefix: true, buffers: false, lmHead: false });
    const { weights: w } = await loadGpt2Checkpoint(dir);
    const H = cfg.n_heads * cfg.d_head;
    const cAttn = hfTensors(cfg, weights, { dtype: 'F32', prefix: false, buffers: false, lmHead: false }).get('h.1.attn.c_attn.weight')![1];
    const cBias = hfTensors(cfg, weights, { dtype: 'F32', prefix: false, buffers: false, lmHead: false }).get('h.1.attn.c_attn.bias')![1];
    expect(w.blocks[1].W_K[3 * H + 5]).toBe(cAttn[3 * 3 * H + H + 5]);
    expect(w.blocks[1].W_Q[7 * H + 2]).toBe(cAttn[7 * 3 * H + 2]);
    expect(w.blocks[1].b_V[6]).toBe(cBias[2 * H + 6]);
    // Tied unembedding: W_U[d, v] = W_E[v, d].
    expect(w.W_U[4 * cfg.d_vocab + 17]).toBe(w.W_E[17 * cfg.d_model + 4]);
  });

  it('an lm_head that differs from wte is used for W_U', async () => {
    const untied: TransformerWeights = { ...weights, W_U: new Rng(99).normals(cfg.d_model * cfg.d_vocab, 0.3) };
    const dir = freshDir();
    await writeHfCheckpoint(dir, cfg, untied, { dtype: 'F32', prefix: true, buffers: true, lmHead: true });
    const { weights: w } = await loadGpt2Checkpoint(dir);
    expect(firstMismatch(w.W_U, untied.W_U)).toBeNull();
    expect(firstMismatch(w.W_E, weights.W_E)).toBeNull();
  });

  it('sharded checkpoint (index + 3 shards, BF16)', async () => {
    const dir = freshDir();
    await writeHfCheckpoint(dir, cfg, weights, { dtype: 'BF16', prefix: true, buffers: true, lmHead: true, shards: 3 });
    const loaded = await loadGpt2Checkpoint(dir);
    expectWeights(loaded.weights, weights, 'BF16');
  });

  it('model name: org/name inside a HF cache snapshot, else the directory name', () => {
    expect(modelNameFromDir('/c/hub/models--openai-community--gpt2/snapshots/0123456789abcdef0123456789abcdef01234567')).toBe('openai-community/gpt2');
    expect(modelNameFromDir('/some/where/my-model')).toBe('my-model');
  });
});

describe('loadGpt2Checkpoint errors', () => {
  const base: HfCheckpointOptions = { dtype: 'F32', prefix: true, buffers: false, lmHead: false };

  /** Write a checkpoint whose tensors are edited first. */
  async function writeEdited(edit: (t: Map<string, [number[], Float32Array]>) => void): Promise<string> {
    const dir = freshDir();
    await writeHfCheckpoint(dir, cfg, weights, base);
    const t = hfTensors(cfg, weights, base);
    edit(t);
    await writeSafetensors(join(dir, 'model.safetensors'), Object.fromEntries([...t].map(([k, [shape, data]]) => [k, { dtype: 'F32' as const, shape, data }])));
    return dir;
  }

  it('missing directory', async () => {
    await expect(loadGpt2Checkpoint(join(root, 'nowhere'))).rejects.toThrow(/Checkpoint directory .*nowhere does not exist \(expected a directory with config.json and model.safetensors\)/);
  });

  it('missing config.json', async () => {
    const dir = freshDir();
    await mkdir(dir);
    await expect(loadGpt2Checkpoint(dir)).rejects.toThrow(new RegExp(`No config.json in ${dir}: a GPT-2 checkpoint directory needs config.json and model.safetensors`));
  });

  it('missing model.safetensors (with a hint when only pytorch_model.bin is there)', async () => {
    const dir = freshDir();
    await writeHfCheckpoint(dir, cfg, weights, base);
    await rm(join(dir, 'model.safetensors'));
    await expect(loadGpt2Checkpoint(dir)).rejects.toThrow(new RegExp(`No model.safetensors in ${dir}: expected ${join(dir, 'model.safetensors')}`));
    await writeFile(join(dir, 'pytorch_model.bin'), 'x');
    await expect(loadGpt2Checkpoint(dir)).rejects.toThrow(/only safetensors weights are supported/);
  });

  it('missing shard', async () => {
    const dir = freshDir();
    await writeHfCheckpoint(dir, cfg, weights, { ...base, shards: 2 });
    await rm(join(dir, 'model-00002-of-00002.safetensors'));
    await expect(loadGpt2Checkpoint(dir)).rejects.toThrow(/Missing shard .*model-00002-of-00002\.safetensors \(listed in .*model\.safetensors\.index\.json\)/);
  });

  it('unsupported architecture', async () => {
    const dir = freshDir();
    await writeHfCheckpoint(dir, cfg, weights, { ...base, config: { architectures: ['BertModel'], model_type: 'bert' } });
    await expect(loadGpt2Checkpoint(dir)).rejects.toThrow(/unsupported architecture: config.json has architectures \["BertModel"\] and model_type "bert"; supported/);
  });

  it('invalid config.json', async () => {
    const dir = freshDir();
    await writeHfCheckpoint(dir, cfg, weights, base);
    await writeFile(join(dir, 'config.json'), '{ "n_layer": ');
    await expect(loadGpt2Checkpoint(dir)).rejects.toThrow(/config\.json is not valid JSON/);
  });

  it('a config.json that is not JSON is named, its contents never shown', async () => {
    const dir = freshDir();
    await writeHfCheckpoint(dir, cfg, weights, base);
    await writeFile(join(dir, 'config.json'), 'root:x:0:0:SECRET');
    const err = await loadGpt2Checkpoint(dir).catch((e: Error) => e);
    expect((err as Error).message).toBe(`${join(dir, 'config.json')} is not valid JSON`);
  });

  it('a config.json that disagrees with the weights names each field before anything is built', async () => {
    const dir = freshDir();
    await writeHfCheckpoint(dir, cfg, weights, base);
    const c = JSON.parse(await readFile(join(dir, 'config.json'), 'utf8'));
    await writeFile(join(dir, 'config.json'), JSON.stringify({ ...c, n_layer: 500, n_positions: 16, n_inner: 32 }));
    await expect(loadGpt2Checkpoint(dir)).rejects.toThrow(
      `config.json of ${dir} does not match its weights: n_layer is 500 but the weights hold 2 blocks (h.0 …); n_positions is 16 but wpe.weight has 8 rows; n_inner is 32 but h.0.mlp.c_fc.weight is [16, 64]`,
    );
  });

  it('with allowedRoots, every file must resolve inside them: links out are refused, links within are followed', async () => {
    const inside = freshDir();
    const outside = freshDir();
    await writeHfCheckpoint(outside, cfg, weights, base);
    await mkdir(inside, { recursive: true });
    await symlink(join(outside, 'config.json'), join(inside, 'config.json'));
    await symlink(join(outside, 'model.safetensors'), join(inside, 'model.safetensors'));
    await expect(loadGpt2Checkpoint(inside, { allowedRoots: [inside] })).rejects.toThrow(
      `${join(inside, 'config.json')} is a link to a file outside the model roots; only files inside a model root are read`,
    );
    await expect(loadGpt2Checkpoint(inside, { allowedRoots: [inside, join(outside, 'config.json')] })).rejects.toThrow(
      `${join(inside, 'model.safetensors')} is a link to a file outside the model roots`,
    );
    const loaded = await loadGpt2Checkpoint(inside, { allowedRoots: [root] }); // both directories are under `root`
    expectWeights(loaded.weights, weights, 'F32');
    expect((await loadGpt2Checkpoint(inside)).cfg).toEqual(loaded.cfg); // no allowedRoots: the library follows links as before
  });

  it('missing tensor', async () => {
    const dir = await writeEdited((t) => t.delete('transformer.h.1.mlp.c_fc.bias'));
    await expect(loadGpt2Checkpoint(dir)).rejects.toThrow(/is missing tensor\(s\): h\.1\.mlp\.c_fc\.bias/);
  });

  it('misshaped tensor names it, its shape and the expected shape', async () => {
    const dir = await writeEdited((t) => t.set('transformer.h.0.attn.c_proj.weight', [[8, 32], new Float32Array(256)]));
    await expect(loadGpt2Checkpoint(dir)).rejects.toThrow(/Tensor 'transformer\.h\.0\.attn\.c_proj\.weight' in .*model\.safetensors has shape \[8, 32\], expected \[16, 16\]/);
  });

  it('misshaped lm_head', async () => {
    const dir = await writeEdited((t) => t.set('lm_head.weight', [[cfg.d_model, cfg.d_vocab], new Float32Array(cfg.d_model * cfg.d_vocab)]));
    await expect(loadGpt2Checkpoint(dir)).rejects.toThrow(/Tensor 'lm_head\.weight' .* has shape \[16, 50\], expected \[50, 16\]/);
  });

  it('unexpected tensor (ignored buffers are fine)', async () => {
    const dir = await writeEdited((t) => {
      t.set('transformer.h.0.attn.bias', [[1, 1, 8, 8], new Float32Array(64)]);
      t.set('score.weight', [[2, 16], new Float32Array(32)]);
    });
    await expect(loadGpt2Checkpoint(dir)).rejects.toThrow(/unexpected tensor\(s\) for GPT2LMHeadModel: score\.weight$/);
  });

  it('the same tensor with and without the prefix', async () => {
    const dir = await writeEdited((t) => t.set('wpe.weight', t.get('transformer.wpe.weight')!));
    await expect(loadGpt2Checkpoint(dir)).rejects.toThrow(/Tensor 'wpe\.weight' appears twice/);
  });

  it('truncated model.safetensors', async () => {
    const dir = freshDir();
    await writeHfCheckpoint(dir, cfg, weights, base);
    const size = (await readFile(join(dir, 'model.safetensors'))).length;
    await truncate(join(dir, 'model.safetensors'), size - 100);
    await expect(loadGpt2Checkpoint(dir)).rejects.toThrow(/model\.safetensors has data_offsets .* beyond the .*-byte data section \(truncated or corrupt file\)/);
  });

  it('corrupt header', async () => {
    const dir = freshDir();
    await writeHfCheckpoint(dir, cfg, weights, base);
    const buf = await readFile(join(dir, 'model.safetensors'));
    buf.write('#', 8); // replace the header's opening brace
    await writeFile(join(dir, 'model.safetensors'), buf);
    await expect(loadGpt2Checkpoint(dir)).rejects.toThrow(/model\.safetensors has an invalid JSON header/);
  });
});
