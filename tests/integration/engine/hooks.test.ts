/** JS hooks on the engine: replacements, in-place edits, predicates and several layers flow downstream exactly as in referenceForward; hook lifetime (withHooks, addHook, resetHooks, runWithHooks). */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ActivationCache } from '../../../hooks/ActivationCache.ts';
import { HookedTransformer, type FwdHook } from '../../../hooks/HookedTransformer.ts';
import { listHookPoints, type HookName } from '../../../hooks/hookPoints.ts';
import { referenceForward } from '../../../hooks/reference.ts';
import { Tensor } from '../../../hooks/tensor.ts';
import {
  cacheMismatches, cloneWeights, expectClose, expectExactlyEqual, mapIndexed, scaleBy, setHeads, tinyConfig, tinyWeights, tokenBatch,
  zeroPatternHead, type PlainHook,
} from './helpers.ts';

const ATOL = 1e-4; // engine with hooks vs reference with the same hooks
const cfg = tinyConfig({ n_layers: 3, d_model: 16, n_heads: 4, d_vocab: 60 });
const original = tinyWeights(cfg, 51);
const allNames = listHookPoints(cfg).map((h) => h.name);
const tokens = tokenBatch(2, 8, cfg.d_vocab, 9);

let model: HookedTransformer;
let clean: Tensor;

beforeAll(async () => {
  model = await HookedTransformer.fromWeights(cfg, cloneWeights(original), { threads: 1 });
  clean = await model.forward(tokens);
});

afterAll(async () => {
  await model?.dispose();
});

/** Runs the engine (cache of every hook point incl. hook_result) and the reference with the same hooks; compares everything. */
async function expectHooksMatchReference(hooks: [HookName, PlainHook][]): Promise<{ logits: Tensor; cache: ActivationCache }> {
  const [logits, cache] = await model.withHooks(
    hooks.map(([n, f]) => [n, f] as FwdHook),
    (m) => m.runWithCache(tokens, { namesFilter: allNames }),
  );
  const ref = referenceForward(cfg, original, tokens, { hooks: Object.fromEntries(hooks) });
  expect(cacheMismatches(cache, ref.cache, allNames, ATOL)).toEqual([]);
  expectClose(logits, ref.logits, ATOL, 'logits');
  return { logits, cache };
}

const changed = (a: Tensor, b: Tensor) => a.sub(b).abs().max().item();

describe('hooks change downstream values exactly as the reference (1e-4)', () => {
  it('blocks.0.attn.hook_pattern: zero head 2', async () => {
    const { logits, cache } = await expectHooksMatchReference([['blocks.0.attn.hook_pattern', zeroPatternHead(2)]]);
    expect(changed(logits, clean)).toBeGreaterThan(1e-3);
    expect(cache.get('pattern', 0).select(1, [2]).abs().max().item()).toBe(0); // the cache holds the hooked value
  });

  it('blocks.1.ln2.hook_scale doubled', async () => {
    const { logits } = await expectHooksMatchReference([['blocks.1.ln2.hook_scale', scaleBy(2)]]);
    expect(changed(logits, clean)).toBeGreaterThan(1e-3);
  });

  it('blocks.0.attn.hook_q scaled by 1.7', async () => {
    const { logits } = await expectHooksMatchReference([['blocks.0.attn.hook_q', scaleBy(1.7)]]);
    expect(changed(logits, clean)).toBeGreaterThan(1e-3);
  });

  it('several hooks at once in different layers (embed, layer 0 z, layer 1 mlp post, layer 2 resid_mid, ln_final scale)', async () => {
    const { logits } = await expectHooksMatchReference([
      ['hook_embed', scaleBy(0.8)],
      ['blocks.0.attn.hook_z', setHeads([1, 3], () => 0)],
      ['blocks.1.mlp.hook_post', (a) => mapIndexed(a, (v, [, , n]) => (n % 3 === 0 ? 0 : v))],
      ['blocks.2.hook_resid_mid', (a) => a.add(0.25)],
      ['ln_final.hook_scale', scaleBy(1.1)],
    ]);
    expect(changed(logits, clean)).toBeGreaterThan(1e-3);
  });

  it('a hook on attn.hook_result (the per-head path) and on hook_attn_out after it', async () => {
    await expectHooksMatchReference([
      ['blocks.1.attn.hook_result', setHeads([0], () => 0)],
      ['blocks.1.hook_attn_out', scaleBy(0.5)],
    ]);
  });

  it('an async hook (returns a Promise) is awaited', async () => {
    const asyncHook = async (a: Tensor) => {
      await new Promise((r) => setTimeout(r, 1));
      return a.mul(-1);
    };
    const logits = await model.runWithHooks(tokens, { fwdHooks: [['blocks.2.hook_mlp_out', asyncHook]] });
    const ref = referenceForward(cfg, original, tokens, { hooks: { 'blocks.2.hook_mlp_out': scaleBy(-1) } });
    expectClose(logits, ref.logits, ATOL, 'logits');
  });

  it('two hooks on one point run in registration order ((x + 1) · 2, not x · 2 + 1)', async () => {
    const logits = await model.runWithHooks(tokens, {
      fwdHooks: [
        ['blocks.0.hook_resid_post', (a) => a.add(1)],
        ['blocks.0.hook_resid_post', (a) => a.mul(2)],
      ],
    });
    const ref = referenceForward(cfg, original, tokens, { hooks: { 'blocks.0.hook_resid_post': (a) => a.add(1).mul(2) } });
    expectClose(logits, ref.logits, ATOL, 'logits');
  });
});

describe('predicate hooks', () => {
  it("name => name.endsWith('hook_z') hooks every layer's z, in forward order, with layer() set", async () => {
    const seen: [string, number | null][] = [];
    const logits = await model.runWithHooks(tokens, {
      fwdHooks: [
        [
          (name) => name.endsWith('hook_z'),
          (a, hook) => {
            seen.push([hook.name, hook.layer()]);
            return a.mul(0.5);
          },
        ],
      ],
    });
    expect(seen).toEqual([...Array(cfg.n_layers).keys()].map((l) => [`blocks.${l}.attn.hook_z`, l]));
    const ref = referenceForward(cfg, original, tokens, {
      hooks: Object.fromEntries([...Array(cfg.n_layers).keys()].map((l) => [`blocks.${l}.attn.hook_z`, scaleBy(0.5)])),
    });
    expectClose(logits, ref.logits, ATOL, 'logits');
  });

  it('a predicate matching nothing is a no-op', async () => {
    const logits = await model.runWithHooks(tokens, { fwdHooks: [[(n) => n === ('nope' as HookName), () => Tensor.zeros([1])]] });
    expectExactlyEqual(logits, clean, 'logits');
  });

  it('hook.layer() is null outside the blocks', async () => {
    const layers: (number | null)[] = [];
    await model.runWithHooks(tokens, {
      fwdHooks: [[(n) => !n.startsWith('blocks.'), (_a, hook) => void layers.push(hook.layer())]],
    });
    expect(layers).toEqual([null, null, null, null]); // hook_embed, hook_pos_embed, ln_final.hook_scale, ln_final.hook_normalized
  });
});

describe('hooks that return nothing', () => {
  it('observing every hook point (returning undefined) changes nothing (1e-5), and sees the clean activations', async () => {
    const [cleanLogits, cleanCache] = await model.runWithCache(tokens);
    const seen = new Map<string, Tensor>();
    const logits = await model.runWithHooks(tokens, {
      fwdHooks: [[() => true, (a, hook) => void seen.set(hook.name, a.clone())]],
    });
    expectClose(logits, cleanLogits, 1e-5, 'logits');
    expect([...seen.keys()]).toEqual(allNames);
    for (const name of cleanCache.keys()) expectClose(seen.get(name)!, cleanCache.get(name), 1e-5, name);
  });

  it('in-place mutation without returning flows downstream (like PyTorch) = reference with the same in-place hook', async () => {
    const inPlace: PlainHook = (a) => {
      a.mulInPlace(0.5);
    };
    const { logits, cache } = await expectHooksMatchReference([['blocks.1.hook_mlp_out', inPlace]]);
    expect(changed(logits, clean)).toBeGreaterThan(1e-3);
    const [, cleanCache] = await model.runWithCache(tokens, { namesFilter: 'blocks.1.hook_mlp_out' });
    expectClose(cache.get('blocks.1.hook_mlp_out'), cleanCache.get('blocks.1.hook_mlp_out').mul(0.5), 1e-5, 'cached mlp_out');
  });

  it('in-place mutation of resid_pre[1] does not leak into the cached resid_post[0] (separate buffers, as the reference)', async () => {
    const { cache } = await expectHooksMatchReference([
      ['blocks.1.hook_resid_pre', (a) => void a.fillInPlace(0.125)],
    ]);
    expect(cache.get('blocks.1.hook_resid_pre').data.every((v) => v === 0.125)).toBe(true);
    expect(cache.get('blocks.0.hook_resid_post').data.some((v) => v !== 0.125)).toBe(true);
  });

  it('in-place mutation of one head of q (hook_q is a reshape of the projection) flows downstream', async () => {
    await expectHooksMatchReference([
      ['blocks.2.attn.hook_q', (a) => void a.mapInPlace((v, i) => (Math.floor(i / cfg.d_head) % cfg.n_heads === 1 ? v * 3 : v))],
    ]);
  });
});

describe('hook errors', () => {
  it('a hook returning a wrong shape throws, naming the hook and both shapes', async () => {
    await expect(
      model.runWithHooks(tokens, { fwdHooks: [['blocks.0.attn.hook_pattern', () => Tensor.zeros([2, 4, 8])]] }),
    ).rejects.toThrow(/blocks\.0\.attn\.hook_pattern.*\[2, 4, 8\].*\[2, 4, 8, 8\]/);
  });

  it('a hook returning a non-Tensor throws, naming the hook', async () => {
    await expect(
      model.runWithHooks(tokens, { fwdHooks: [['blocks.1.hook_resid_pre', () => [1, 2, 3] as unknown as Tensor]] }),
    ).rejects.toThrow(/blocks\.1\.hook_resid_pre/);
  });

  it('an error thrown inside a hook propagates, and the hooks are gone afterwards', async () => {
    await expect(
      model.runWithHooks(tokens, { fwdHooks: [['blocks.0.hook_mlp_out', () => { throw new Error('boom in hook'); }]] }),
    ).rejects.toThrow('boom in hook');
    expectExactlyEqual(await model.forward(tokens), clean, 'logits after the failed run');
  });

  it('addHook with an unknown hook name throws, naming it', () => {
    expect(() => model.addHook('blocks.7.hook_resid_pre' as HookName, () => undefined)).toThrow(/unknown hook point 'blocks\.7\.hook_resid_pre'/);
    expect(() => model.addHook('blocks.0.attn.hook_zz' as HookName, () => undefined)).toThrow(/unknown hook point/);
    expect(() => model.addHook('blocks.0.attn.hook_z', 5 as unknown as () => undefined)).toThrow(/must be a function/);
  });
});

describe('hook lifetime', () => {
  let calls = 0;
  const counting: PlainHook = (a) => {
    calls++;
    return a.mul(0);
  };

  it('withHooks removes its hooks even when the callback throws', async () => {
    calls = 0;
    await expect(
      model.withHooks([['blocks.0.hook_attn_out', counting]], async (m) => {
        await m.forward(tokens);
        throw new Error('callback failed');
      }),
    ).rejects.toThrow('callback failed');
    expect(calls).toBe(1);
    expectExactlyEqual(await model.forward(tokens), clean, 'logits after withHooks');
    expect(calls).toBe(1);
  });

  it('withHooks returns the callback value and hooks apply inside it', async () => {
    const inside = await model.withHooks([['blocks.0.hook_attn_out', scaleBy(0)]], (m) => m.forward(tokens));
    const ref = referenceForward(cfg, original, tokens, { hooks: { 'blocks.0.hook_attn_out': scaleBy(0) } });
    expectClose(inside, ref.logits, ATOL, 'logits inside withHooks');
  });

  it('addHook persists across runs until resetHooks; permanent hooks survive resetHooks unless includingPermanent', async () => {
    calls = 0;
    model.addHook('blocks.1.hook_attn_out', counting);
    const a = await model.forward(tokens);
    const b = await model.forward(tokens);
    expect(calls).toBe(2);
    expectExactlyEqual(a, b, 'two hooked runs');
    expect(changed(a, clean)).toBeGreaterThan(1e-3);
    model.resetHooks();
    expectExactlyEqual(await model.forward(tokens), clean, 'after resetHooks');
    expect(calls).toBe(2);

    model.addHook('blocks.1.hook_attn_out', counting, { isPermanent: true });
    model.resetHooks();
    await model.forward(tokens);
    expect(calls).toBe(3);
    model.resetHooks({ includingPermanent: true });
    expectExactlyEqual(await model.forward(tokens), clean, 'after resetHooks(includingPermanent)');
    expect(calls).toBe(3);
  });

  it('runWithHooks removes its hooks by default; resetHooksEnd: false keeps them until resetHooks', async () => {
    calls = 0;
    await model.runWithHooks(tokens, { fwdHooks: [['blocks.2.hook_resid_pre', counting]] });
    expect(calls).toBe(1);
    expectExactlyEqual(await model.forward(tokens), clean, 'after runWithHooks');
    expect(calls).toBe(1);

    await model.runWithHooks(tokens, { fwdHooks: [['blocks.2.hook_resid_pre', counting]], resetHooksEnd: false });
    await model.forward(tokens);
    expect(calls).toBe(3);
    model.resetHooks();
    expectExactlyEqual(await model.forward(tokens), clean, 'after resetHooks');
  });

  it('runWithHooks keeps hooks added earlier with addHook', async () => {
    model.addHook('hook_pos_embed', scaleBy(0));
    try {
      const logits = await model.runWithHooks(tokens, { fwdHooks: [['blocks.0.attn.hook_v', scaleBy(2)]] });
      const ref = referenceForward(cfg, original, tokens, { hooks: { hook_pos_embed: scaleBy(0), 'blocks.0.attn.hook_v': scaleBy(2) } });
      expectClose(logits, ref.logits, ATOL, 'logits');
      const after = await model.forward(tokens); // the addHook hook is still there, the runWithHooks one is not
      const refAfter = referenceForward(cfg, original, tokens, { hooks: { hook_pos_embed: scaleBy(0) } });
      expectClose(after, refAfter.logits, ATOL, 'logits after');
    } finally {
      model.resetHooks();
    }
  });
});

describe('caches are independent of later runs', () => {
  it('a cache (and a hook-captured activation) is unchanged by the next runs on other input', async () => {
    const [, cacheA] = await model.runWithCache(tokens);
    const snapshot = new Map(cacheA.entries().map(([k, v]) => [k, v.clone()]));
    let captured: Tensor | null = null;
    await model.runWithHooks(tokens, { fwdHooks: [['blocks.1.hook_resid_mid', (a) => void (captured = a)]] });
    const capturedCopy = captured!.clone();
    const other = tokenBatch(2, 8, cfg.d_vocab, 99);
    await model.runWithCache(other);
    await model.runWithHooks(other, { fwdHooks: [['blocks.1.hook_resid_mid', scaleBy(3)]] });
    for (const [k, v] of snapshot) expectExactlyEqual(cacheA.get(k), v, k);
    expectExactlyEqual(captured!, capturedCopy, 'captured activation');
  });
});

describe('concurrent runs', () => {
  it('plain forwards running concurrently on one model give the sequential results exactly', async () => {
    const other = tokenBatch(2, 8, cfg.d_vocab, 7);
    const otherAlone = await model.forward(other);
    const [a, b] = await Promise.all([model.forward(tokens), model.forward(other)]);
    expectExactlyEqual(a, clean, 'first');
    expectExactlyEqual(b, otherAlone, 'second');
  });

  it("runWithHooks' hooks apply to its own run only, not to a forward running at the same time", async () => {
    const zeroMid: PlainHook = (a) => a.mul(0);
    const [hooked, plain] = await Promise.all([
      model.runWithHooks(tokens, { fwdHooks: [['blocks.0.hook_resid_mid', zeroMid]] }),
      model.forward(tokens),
    ]);
    const ref = referenceForward(cfg, original, tokens, { hooks: { 'blocks.0.hook_resid_mid': zeroMid } });
    expectClose(hooked, ref.logits, ATOL, 'hooked run');
    expectExactlyEqual(plain, clean, 'the concurrent plain forward');
  });

  it('more concurrent graph variants than the plan cache holds (16) all complete and are correct (1e-4)', async () => {
    const names = allNames.slice(0, 24); // 24 different namesFilter → 24 graph variants in flight at once
    const results = await Promise.all(names.map((n) => model.runWithCache(tokens, { namesFilter: n })));
    const ref = referenceForward(cfg, original, tokens);
    results.forEach(([logits, cache], i) => {
      expectClose(cache.get(names[i]), ref.cache.get(names[i])!, ATOL, names[i]);
      expectClose(logits, ref.logits, ATOL, `logits ${i}`);
    });
  });
});
