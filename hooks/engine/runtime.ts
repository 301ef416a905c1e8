/**
 * The one place that talks to onnxruntime-node (the only module that imports it): picks the
 * execution provider for a device, creates sessions with their options (the engine's, the kernels'
 * and the trainer's alike), caches sessions made on first use, converts values to and from
 * onnxruntime tensors (int64 token ids, float32, bool masks), and runs sessions with feeds checked
 * against their input names.
 */
import * as ort from 'onnxruntime-node';
import { encodeModel, externalFileName } from '../onnx/proto.ts';
import { Tensor } from '../tensor.ts';
import { DEVICES, type Device, type ResolvedDevice } from '../devices.ts';

// onnxruntime reports failures as exceptions too; its own log would print a scary line to stderr
// every time 'auto' probes for a CUDA provider that is not installed.
ort.env.logLevel = 'fatal';

export type { Device, ResolvedDevice } from '../devices.ts';

/** A value fed to or returned by a session (an onnxruntime tensor: read `.data` and `.dims`). */
export type OrtValue = ort.Tensor;

/** An onnxruntime inference session. */
export type Session = ort.InferenceSession;

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
): Promise<Session> {
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
  session: Session,
  feeds: Record<string, OrtValue>,
  fetches?: readonly string[],
): Promise<Record<string, OrtValue>> {
  const missing = session.inputNames.filter((n) => !(n in feeds));
  if (missing.length > 0) throw new Error(`internal: session inputs not fed: ${missing.join(', ')}`);
  const own: Record<string, OrtValue> = {};
  for (const n of session.inputNames) own[n] = feeds[n];
  return (await (fetches ? session.run(own, fetches) : session.run(own))) as Record<string, OrtValue>;
}

/** A model's bytes and the bytes of the initializers it keeps outside (createSession's `external`). */
export interface SessionModel {
  model: Uint8Array;
  external?: ReadonlyMap<string, Float32Array>;
}

/**
 * Sessions made on first use and kept by key (a model's kernels, the trainer's products), all
 * with this cache's options; a session that fails to build is forgotten. dispose() releases them.
 */
export class SessionCache {
  private readonly sessions = new Map<string, Promise<Session>>();

  constructor(private readonly config: SessionConfig) {}

  /**
   * The session for `key`, built from the model bytes `build` returns (and the bytes of its external
   * initializers, see createSession), with `config` over the cache's options.
   */
  get(key: string, build: () => Uint8Array | SessionModel, config: Partial<SessionConfig> = {}): Promise<Session> {
    let s = this.sessions.get(key);
    if (!s) {
      const built = build();
      const { model, external } = built instanceof Uint8Array ? { model: built, external: undefined } : built;
      s = createSession(model, { ...this.config, ...config }, external);
      this.sessions.set(key, s);
      s.catch(() => this.sessions.delete(key));
    }
    return s;
  }

  /** Releases every session built so far. */
  async dispose(): Promise<void> {
    const sessions = [...this.sessions.values()];
    this.sessions.clear();
    for (const s of sessions) {
      try {
        await (await s).release();
      } catch {
        // a session that failed to build holds nothing
      }
    }
  }
}

// ---- values -------------------------------------------------------------------------------------

/** A float32 value over `data` (no copy). */
export function f32(data: Float32Array, dims: readonly number[]): OrtValue {
  return new ort.Tensor('float32', data, dims);
}

/** A bool value over `data` (0/1 bytes, no copy). */
export function bool(data: Uint8Array, dims: readonly number[]): OrtValue {
  return new ort.Tensor('bool', data, dims);
}

/** An int64 value from integers. */
export function int64(values: BigInt64Array | readonly number[], dims: readonly number[]): OrtValue {
  const data = values instanceof BigInt64Array ? values : BigInt64Array.from(values, (v) => BigInt(v));
  return new ort.Tensor('int64', data, dims);
}

/** An int64 [rows, cols] value from equal-length rows (token ids, masks, positions); `what` names them in the error. */
export function int64Rows(rows: readonly (readonly number[])[], what: string): OrtValue {
  const batch = rows.length;
  const pos = rows[0]?.length ?? 0;
  const data = new BigInt64Array(batch * pos);
  rows.forEach((row, b) => {
    if (row.length !== pos) throw new Error(`${what}: every row must have ${pos} entries; row ${b} has ${row.length}`);
    row.forEach((v, p) => (data[b * pos + p] = BigInt(v)));
  });
  return new ort.Tensor('int64', data, [batch, pos]);
}

/** A float32 value as a Lensboard Tensor over the same data (no copy). */
export function toTensor(v: OrtValue): Tensor {
  return new Tensor(v.data as Float32Array, v.dims as number[]);
}

/** A Lensboard Tensor as a float32 value over the same data (no copy). */
export function fromTensor(t: Tensor): OrtValue {
  return new ort.Tensor('float32', t.data, t.shape);
}
