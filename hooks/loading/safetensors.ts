/**
 * The safetensors format, read and written with plain fs: an 8-byte little-endian header length N,
 * N bytes of JSON ({name: {dtype, shape, data_offsets: [begin, end]}, "__metadata__": {str: str}}),
 * then the raw tensor bytes (offsets relative to the start of that data section).
 * F32, F16 and BF16 tensors are read into Float32Array one tensor at a time, straight from the file
 * descriptor, so a big checkpoint is never held twice in memory.
 */
import { open, rename, rm, stat } from 'node:fs/promises';
import type { FileHandle } from 'node:fs/promises';
import { endianness } from 'node:os';
import { decodeBf16, decodeF16, encodeBf16, encodeF16 } from './halfFloat.ts';

export type SafetensorsDtype = 'F32' | 'F16' | 'BF16';
export const SUPPORTED_DTYPES: readonly SafetensorsDtype[] = ['F32', 'F16', 'BF16'];

/** Bytes per element of every dtype the format defines (so offsets can be checked even for dtypes we do not read). */
const DTYPE_BYTES: Record<string, number> = {
  BOOL: 1, U8: 1, I8: 1, F8_E5M2: 1, F8_E4M3: 1, F8_E8M0: 1,
  I16: 2, U16: 2, F16: 2, BF16: 2,
  I32: 4, U32: 4, F32: 4,
  I64: 8, U64: 8, F64: 8,
};

/** safetensors refuses headers above 100 MB; anything larger is a corrupt length field. */
const MAX_HEADER_BYTES = 100_000_000;
/** Scratch size for converting F16/BF16 and for writing. */
const CHUNK_BYTES = 1 << 24;

export interface SafetensorsTensor {
  dtype: SafetensorsDtype;
  shape: number[];
  data: Float32Array; // [prod(shape)], row-major
}

export interface SafetensorsEntry {
  name: string;
  /** dtype as written in the file (may be one we cannot read, e.g. I64). */
  dtype: string;
  shape: number[];
  /** Byte range of the tensor in the file (absolute offsets). */
  start: number;
  end: number;
}

function assertLittleEndianHost(): void {
  if (endianness() !== 'LE') throw new Error('safetensors: only little-endian hosts are supported');
}

const numel = (shape: readonly number[]) => shape.reduce((a, b) => a * b, 1);
const fmtShape = (shape: readonly number[]) => `[${shape.join(', ')}]`;

/** An open safetensors file: its parsed, validated header, and tensors read on demand. */
export class SafetensorsFile {
  private constructor(
    readonly path: string,
    private readonly fh: FileHandle,
    readonly entries: Map<string, SafetensorsEntry>,
    readonly metadata: Record<string, string>,
  ) {}

  /** Open `path` and validate its header (sizes, offsets, dtypes) without reading any tensor data. */
  static async open(path: string): Promise<SafetensorsFile> {
    assertLittleEndianHost();
    const fh = await open(path, 'r').catch((err: NodeJS.ErrnoException) => {
      throw new Error(`safetensors: cannot open ${path}: ${err.code === 'ENOENT' ? 'no such file' : err.message}`);
    });
    try {
      const { entries, metadata } = await parseHeader(path, fh);
      return new SafetensorsFile(path, fh, entries, metadata);
    } catch (err) {
      await fh.close();
      throw err;
    }
  }

  names(): string[] {
    return [...this.entries.keys()];
  }

  entry(name: string): SafetensorsEntry {
    const e = this.entries.get(name);
    if (!e) throw new Error(`safetensors: no tensor '${name}' in ${this.path}`);
    return e;
  }

  /** Read one tensor, converted to float32. Only F32, F16 and BF16 are supported. */
  async readTensor(name: string): Promise<Float32Array> {
    const e = this.entry(name);
    if (!SUPPORTED_DTYPES.includes(e.dtype as SafetensorsDtype)) {
      throw new Error(
        `safetensors: tensor '${name}' in ${this.path} has dtype ${e.dtype}; supported dtypes: ${SUPPORTED_DTYPES.join(', ')}`,
      );
    }
    const n = numel(e.shape);
    const out = new Float32Array(n);
    if (e.dtype === 'F32') {
      // Read the bytes straight into the result's buffer: one copy, no scratch.
      await this.readExact(new Uint8Array(out.buffer), e.start, name);
      return out;
    }
    const decode = e.dtype === 'F16' ? decodeF16 : decodeBf16;
    const chunkElems = Math.min(n, CHUNK_BYTES / 2);
    const scratch = new Uint16Array(chunkElems);
    for (let done = 0; done < n; done += chunkElems) {
      const count = Math.min(chunkElems, n - done);
      const view = scratch.subarray(0, count);
      await this.readExact(new Uint8Array(view.buffer, 0, count * 2), e.start + done * 2, name);
      decode(view, out, done);
    }
    return out;
  }

  /** Read a whole tensor with its dtype and shape. */
  async read(name: string): Promise<SafetensorsTensor> {
    const data = await this.readTensor(name);
    const e = this.entry(name);
    return { dtype: e.dtype as SafetensorsDtype, shape: [...e.shape], data };
  }

  async close(): Promise<void> {
    await this.fh.close();
  }

  private async readExact(dst: Uint8Array, position: number, name: string): Promise<void> {
    let got = 0;
    while (got < dst.length) {
      const len = Math.min(dst.length - got, 1 << 30);
      const { bytesRead } = await this.fh.read(dst, got, len, position + got);
      if (bytesRead === 0) {
        throw new Error(`safetensors: ${this.path} ended while reading tensor '${name}' (file truncated?)`);
      }
      got += bytesRead;
    }
  }
}

async function parseHeader(
  path: string,
  fh: FileHandle,
): Promise<{ entries: Map<string, SafetensorsEntry>; metadata: Record<string, string> }> {
  const fileSize = (await fh.stat()).size;
  if (fileSize < 8) {
    throw new Error(`safetensors: ${path} is ${fileSize} bytes, too small to hold the 8-byte header length (truncated or not safetensors)`);
  }
  const lenBuf = Buffer.alloc(8);
  await fh.read(lenBuf, 0, 8, 0);
  const headerLen = lenBuf.readBigUInt64LE(0);
  if (headerLen > BigInt(fileSize - 8)) {
    throw new Error(
      `safetensors: ${path} declares a ${headerLen}-byte header but the file has only ${fileSize - 8} bytes after the length field (truncated or corrupt file)`,
    );
  }
  if (headerLen > BigInt(MAX_HEADER_BYTES)) {
    throw new Error(`safetensors: ${path} declares a ${headerLen}-byte header, above the 100 MB limit (corrupt file)`);
  }
  const n = Number(headerLen);
  const headerBuf = Buffer.alloc(n);
  await fh.read(headerBuf, 0, n, 8);
  let header: unknown;
  try {
    header = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(headerBuf));
  } catch (err) {
    throw new Error(`safetensors: ${path} has an invalid JSON header (${(err as Error).message}); corrupt or not a safetensors file`);
  }
  if (typeof header !== 'object' || header === null || Array.isArray(header)) {
    throw new Error(`safetensors: ${path} header is not a JSON object`);
  }
  const dataStart = 8 + n;
  const dataSize = fileSize - dataStart;
  const entries = new Map<string, SafetensorsEntry>();
  let metadata: Record<string, string> = {};
  for (const [name, raw] of Object.entries(header as Record<string, unknown>)) {
    if (name === '__metadata__') {
      metadata = parseMetadata(path, raw);
      continue;
    }
    const where = `tensor '${name}' in ${path}`;
    if (typeof raw !== 'object' || raw === null) throw new Error(`safetensors: ${where}: header entry is not an object`);
    const { dtype, shape, data_offsets: offsets } = raw as Record<string, unknown>;
    if (typeof dtype !== 'string' || !(dtype in DTYPE_BYTES)) {
      throw new Error(
        `safetensors: ${where} has unknown dtype ${JSON.stringify(dtype)}; readable dtypes: ${SUPPORTED_DTYPES.join(', ')}`,
      );
    }
    if (!Array.isArray(shape) || !shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
      throw new Error(`safetensors: ${where} has invalid shape ${JSON.stringify(shape)} (expected non-negative integers)`);
    }
    if (
      !Array.isArray(offsets) ||
      offsets.length !== 2 ||
      !offsets.every((o) => Number.isSafeInteger(o) && o >= 0) ||
      offsets[1] < offsets[0]
    ) {
      throw new Error(`safetensors: ${where} has invalid data_offsets ${JSON.stringify(offsets)} (expected [begin, end], begin <= end)`);
    }
    const [begin, end] = offsets as number[];
    if (end > dataSize) {
      throw new Error(
        `safetensors: ${where} has data_offsets [${begin}, ${end}] beyond the ${dataSize}-byte data section (truncated or corrupt file)`,
      );
    }
    const expected = numel(shape) * DTYPE_BYTES[dtype];
    if (end - begin !== expected) {
      throw new Error(
        `safetensors: ${where} has data_offsets [${begin}, ${end}] (${end - begin} bytes) but shape ${fmtShape(shape)} × ${dtype} needs ${expected} bytes`,
      );
    }
    entries.set(name, { name, dtype, shape: [...shape], start: dataStart + begin, end: dataStart + end });
  }
  // Tensors must not overlap.
  const sorted = [...entries.values()].sort((a, b) => a.start - b.start);
  for (let i = 1; i < sorted.length; i++) {
    if (sorted[i].start < sorted[i - 1].end) {
      throw new Error(`safetensors: tensors '${sorted[i - 1].name}' and '${sorted[i].name}' overlap in ${path} (corrupt header)`);
    }
  }
  return { entries, metadata };
}

function parseMetadata(path: string, raw: unknown): Record<string, string> {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
    throw new Error(`safetensors: ${path}: __metadata__ must be an object of strings`);
  }
  for (const [k, v] of Object.entries(raw)) {
    if (typeof v !== 'string') throw new Error(`safetensors: ${path}: __metadata__.${k} must be a string, got ${typeof v}`);
  }
  return { ...(raw as Record<string, string>) };
}

/** Read every tensor of a safetensors file (converted to float32) and its metadata. */
export async function readSafetensors(
  path: string,
): Promise<{ tensors: Record<string, SafetensorsTensor>; metadata: Record<string, string> }> {
  const file = await SafetensorsFile.open(path);
  try {
    const tensors: Record<string, SafetensorsTensor> = {};
    for (const name of file.names()) tensors[name] = await file.read(name);
    return { tensors, metadata: file.metadata };
  } finally {
    await file.close();
  }
}

/**
 * Write tensors (float32 data, stored as F32, F16 or BF16 with round-to-nearest-even) and optional
 * string metadata. Written to a temporary file and renamed into place, so readers never see half a file.
 */
export async function writeSafetensors(
  path: string,
  tensors: Record<string, { dtype: SafetensorsDtype; shape: number[]; data: Float32Array }>,
  metadata?: Record<string, string>,
): Promise<void> {
  assertLittleEndianHost();
  const header: Record<string, unknown> = {};
  if (metadata && Object.keys(metadata).length > 0) {
    for (const [k, v] of Object.entries(metadata)) {
      if (typeof v !== 'string') throw new Error(`writeSafetensors: metadata '${k}' must be a string, got ${typeof v}`);
    }
    header.__metadata__ = metadata;
  }
  let offset = 0;
  const names = Object.keys(tensors);
  for (const name of names) {
    if (name === '__metadata__') throw new Error(`writeSafetensors: '__metadata__' is reserved and cannot name a tensor`);
    const t = tensors[name];
    if (!SUPPORTED_DTYPES.includes(t.dtype)) {
      throw new Error(`writeSafetensors: tensor '${name}' has dtype ${t.dtype}; supported dtypes: ${SUPPORTED_DTYPES.join(', ')}`);
    }
    if (!t.shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
      throw new Error(`writeSafetensors: tensor '${name}' has invalid shape ${JSON.stringify(t.shape)}`);
    }
    if (t.data.length !== numel(t.shape)) {
      throw new Error(`writeSafetensors: tensor '${name}' has ${t.data.length} values but shape ${fmtShape(t.shape)} needs ${numel(t.shape)}`);
    }
    const bytes = t.data.length * (t.dtype === 'F32' ? 4 : 2);
    header[name] = { dtype: t.dtype, shape: t.shape, data_offsets: [offset, offset + bytes] };
    offset += bytes;
  }
  let json = JSON.stringify(header);
  // Pad with spaces so the data section starts 8-byte aligned (as the reference implementation does).
  const jsonBytes = Buffer.byteLength(json, 'utf8');
  json += ' '.repeat((8 - ((8 + jsonBytes) % 8)) % 8);
  const headerBuf = Buffer.from(json, 'utf8');

  const tmp = `${path}.tmp-${process.pid}-${Date.now()}`;
  const fh = await open(tmp, 'w');
  try {
    const lenBuf = Buffer.alloc(8);
    lenBuf.writeBigUInt64LE(BigInt(headerBuf.length), 0);
    await fh.write(lenBuf);
    await fh.write(headerBuf);
    const scratch = new Uint16Array(CHUNK_BYTES / 2);
    for (const name of names) {
      const { dtype, data } = tensors[name];
      if (dtype === 'F32') {
        await fh.write(new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
        continue;
      }
      const encode = dtype === 'F16' ? encodeF16 : encodeBf16;
      for (let i = 0; i < data.length; i += scratch.length) {
        const count = Math.min(scratch.length, data.length - i);
        encode(data.subarray(i, i + count), scratch);
        await fh.write(new Uint8Array(scratch.buffer, 0, count * 2));
      }
    }
    await fh.close();
    await rename(tmp, path);
  } catch (err) {
    await fh.close().catch(() => {});
    await rm(tmp, { force: true });
    throw err;
  }
}

/** True if `path` is an existing regular file (following symlinks). */
export async function isFile(path: string): Promise<boolean> {
  try {
    return (await stat(path)).isFile();
  } catch {
    return false;
  }
}
