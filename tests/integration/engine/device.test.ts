/** Device selection: 'cpu' always works, 'auto' never fails, and an unavailable provider is a clear error, not a fallback. */
import { describe, expect, it } from 'vitest';
import { HookedTransformer } from '../../../hooks/HookedTransformer.ts';
import { resolveDevice } from '../../../hooks/engine/runtime.ts';
import { tinyConfig, tinyWeights } from './helpers.ts';

describe('devices', () => {
  it("'cpu' resolves to the CPU provider and the model reports it", async () => {
    expect(await resolveDevice('cpu')).toBe('cpu');
    const cfg = tinyConfig();
    const model = await HookedTransformer.fromWeights(cfg, tinyWeights(cfg, 1), { device: 'cpu', threads: 1 });
    expect(model.device).toBe('cpu');
    await model.dispose();
  });

  it("'auto' picks CUDA only when it really runs, else the CPU", async () => {
    const auto = await resolveDevice('auto');
    const cudaWorks = await resolveDevice('cuda').then(() => true, () => false);
    expect(auto).toBe(cudaWorks ? 'cuda' : 'cpu');
  });

  it.each(['cuda', 'webgpu'] as const)("asking for '%s' either runs on it or fails with a message naming the fix", async (device) => {
    try {
      expect(await resolveDevice(device)).toBe(device);
    } catch (e) {
      const msg = (e as Error).message;
      expect(msg).toMatch(new RegExp(`^device '${device}' is not available: `));
      expect(msg).toMatch(device === 'cuda' ? /npm run setup:cuda/ : /WebGPU provider/);
      expect(msg).toMatch(/Use device 'cpu' or 'auto'/);
    }
  });

  it('an unknown device is rejected with the allowed ones', async () => {
    await expect(resolveDevice('tpu' as never)).rejects.toThrow("device must be one of cpu, cuda, webgpu, auto; got 'tpu'");
  });
});
