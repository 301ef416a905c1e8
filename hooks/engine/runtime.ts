/**
 * The one place that talks to onnxruntime-node: picks the execution provider for a device,
 * creates sessions, and runs them with feeds checked against the session's input names.
 */
import * as ort from 'onnxruntime-node';
import { encodeModel, externalFileName } from '../onnx/proto.ts';

// onnxruntime reports failures as exceptions too; its own log would print a scary line to stderr
// every time 'auto' probes for a CUDA provider that is not installed.
ort.env.logLevel = 'fatal';

export type Device = 'cpu' | 'cuda' | 'webgpu' | 'auto';
export type ResolvedDevice = 'cpu' | 'cuda' | 'webgpu';

const DEVICES: readonly Device[] = ['cpu', 'cuda', 'webgpu', 'auto'];

export interface SessionConfig {
  device: ResolvedDevice;
  /** onnxruntime's intra-op threads; 0 lets onnxruntime choose (one per physical core). */
  threads: number;
  /**
   * onnxruntime's CPU memory arena. Off: memory freed after a run goes back to the system. On:
   * the session keeps its peak working memory, but large runs peak lower (no malloc
   * fragmentation). Default off; the engine turns it on for variants that return no activations.
   */
  memArena?: boolean;
  /**
   * Whether onnxruntime's intra-op threads spin (busy-wait) between ops (its default, true).
   * Every session has its own threads: runs that go through several sessions in turn want them
   * off, or the idle sessions' spinning threads take the CPU from the working one.
   */
  spin?: boolean;
}

function sessionOptions(cfg: SessionConfig): ort.InferenceSession.SessionOptions {
  return {
    executionProviders: [cfg.device],
    graphOptimizationLevel: 'all',
    intraOpNumThreads: cfg.threads,
    logSeverityLevel: 3,
    enableCpuMemArena: cfg.memArena ?? false,
    ...(cfg.spin === false ? { extra: { session: { intra_op: { allow_spinning: '0' } } } } : {}),
  };
}

/** A one-node graph used to check that an execution provider really starts. */
const PROBE_MODEL = encodeModel({
  nodes: [{ op: 'Add', inputs: ['x', 'x'], outputs: ['y'] }],
  inputs: [{ name: 'x', elemType: 'float32', dims: [2] }],
  outputs: [{ name: 'y', elemType: 'float32', dims: [2] }],
});

async function providerWorks(device: ResolvedDevice): Promise<string | null> {
  try {
    const session = await ort.InferenceSession.create(PROBE_MODEL, sessionOptions({ device, threads: 1 }));
    const out = await session.run({ x: new ort.Tensor('float32', Float32Array.of(1, 2), [2]) });
    const y = out.y.data as Float32Array;
    await session.release();
    return y[0] === 2 && y[1] === 4 ? null : 'the probe graph returned wrong values';
  } catch (e) {
    return e instanceof Error ? e.message : String(e);
  }
}

/**
 * Resolves `device` to the execution provider that will run: `auto` takes CUDA when its provider is
 * installed and works, else CPU. Asking for a provider that does not work is an error, not a fallback.
 */
export async function resolveDevice(device: Device): Promise<ResolvedDevice> {
  if (!DEVICES.includes(device)) {
    throw new Error(`device must be one of ${DEVICES.join(', ')}; got '${String(device)}'`);
  }
  if (device === 'cpu') return 'cpu';
  if (device === 'auto') return (await providerWorks('cuda')) === null ? 'cuda' : 'cpu';
  const problem = await providerWorks(device);
  if (problem === null) return device;
  const hint =
    device === 'cuda'
      ? 'Install the CUDA 12 build of onnxruntime-node with `npm run setup:cuda` on a machine with an NVIDIA GPU and CUDA 12 + cuDNN 9.'
      : 'The WebGPU provider bundled with onnxruntime-node needs a GPU with a working Vulkan (Linux) / D3D12 (Windows) / Metal (macOS) driver.';
  throw new Error(`device '${device}' is not available: ${problem}. ${hint} Use device 'cpu' or 'auto' to run on the CPU.`);
}

/** Creates a session from model bytes; `external` maps initializer names to their bytes (not copied by us). */
export async function createSession(
  model: Uint8Array,
  cfg: SessionConfig,
  external: ReadonlyMap<string, Float32Array> = new Map(),
): Promise<ort.InferenceSession> {
  const options = sessionOptions(cfg);
  if (external.size > 0) {
    options.externalData = [...external].map(([name, data]) => ({
      path: externalFileName(name),
      data: new Uint8Array(data.buffer, data.byteOffset, data.byteLength),
    }));
  }
  return ort.InferenceSession.create(model, options);
}

/** Runs a session, first checking that every input it declares is fed (listing all missing ones). */
export async function runSession(
  session: ort.InferenceSession,
  feeds: Record<string, ort.Tensor>,
  fetches?: readonly string[],
): Promise<Record<string, ort.Tensor>> {
  const missing = session.inputNames.filter((n) => !(n in feeds));
  if (missing.length > 0) throw new Error(`internal: session inputs not fed: ${missing.join(', ')}`);
  const own: Record<string, ort.Tensor> = {};
  for (const n of session.inputNames) own[n] = feeds[n];
  return (await (fetches ? session.run(own, fetches) : session.run(own))) as Record<string, ort.Tensor>;
}

export { ort };
