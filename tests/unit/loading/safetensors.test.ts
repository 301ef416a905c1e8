/** safetensors read/write: byte layout, F32/F16/BF16 round trips against independent rounding, and clear errors for bad files. */
import { mkdtemp, readFile, rm, truncate, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SafetensorsFile, readSafetensors, writeSafetensors } from '../../../hooks/loading/safetensors.ts';
import { roundToBf16, roundToF16 } from '../../../hooks/loading/halfFloat.ts';
import {
  decodeBf16Ref,
  decodeF16Ref,
  edgeAndRandomValues,
  firstMismatch,
  refBf16,
  refF16,
  refRound,
} from './reference.ts';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'lensboard-st-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** Parse a safetensors file by hand: header length, header JSON and the data section. */
async function parseByHand(path: string) {
  const buf = await readFile(path);
  const n = Number(buf.readBigUInt64LE(0));
  const header = JSON.parse(buf.subarray(8, 8 + n).toString('utf8'));
  return { n, header, data: buf.subarray(8 + n) };
}

/** Build a file from a literal header object and raw data bytes. */
async function craft(name: string, header: unknown, data: Uint8Array, rawHeader?: string): Promise<string> {
  const json = Buffer.from(rawHeader ?? JSON.stringify(header));
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(json.length));
  const path = join(dir, name);
  await writeFile(path, Buffer.concat([len, json, data]));
  return path;
}

describe('half-float rounding (round to nearest even)', () => {
  const values = edgeAndRandomValues(7);
  it('F16 matches the arithmetic reference on edge cases and 3000 random values (exact, NaN = NaN, ±0 distinct)', () => {
    expect(firstMismatch(roundToF16(values), refRound(values, refF16))).toBeNull();
  });
  it('BF16 matches the arithmetic reference on the same values', () => {
    expect(firstMismatch(roundToBf16(values), refRound(values, refBf16))).toBeNull();
  });
  it('hand-checked cases', () => {
    const f16 = roundToF16(new Float32Array([1 + 2 ** -11, 1 + 3 * 2 ** -11, 2 ** -25, 3 * 2 ** -25, 65519, 65520]));
    expect([...f16]).toEqual([1, 1 + 2 ** -9, 0, 2 ** -23, 65504, Infinity]);
    const bf16 = roundToBf16(new Float32Array([1 + 2 ** -8, 1 + 3 * 2 ** -8, 3.4028234663852886e38]));
    expect([...bf16]).toEqual([1, 1 + 2 ** -6, Infinity]);
  });
});

describe('writeSafetensors / readSafetensors', () => {
  const a = new Float32Array([1.5, -2.25, 3e-3, 0, -0, 7, 8, 9.125, 1e-6, 65000, 1e5, -1]); // [3, 4]
  const scalar = new Float32Array([-1e4]);

  it('writes the documented byte layout (u64 LE header length, JSON header, 8-aligned contiguous data)', async () => {
    const path = join(dir, 'layout.safetensors');
    await writeSafetensors(path, { a: { dtype: 'F32', shape: [3, 4], data: a }, s: { dtype: 'F16', shape: [], data: scalar } }, { format: 'pt' });
    const { n, header, data } = await parseByHand(path);
    expect((8 + n) % 8).toBe(0);
    expect(header.__metadata__).toEqual({ format: 'pt' });
    expect(header.a).toEqual({ dtype: 'F32', shape: [3, 4], data_offsets: [0, 48] });
    expect(header.s).toEqual({ dtype: 'F16', shape: [], data_offsets: [48, 50] });
    expect(data.length).toBe(50);
    const dv = new DataView(data.buffer, data.byteOffset, data.length);
    for (let i = 0; i < 12; i++) expect(Object.is(dv.getFloat32(4 * i, true), a[i])).toBe(true);
    expect(decodeF16Ref(data.subarray(48, 50))[0]).toBe(-10000); // -1e4 is exact in F16 (multiple of 8)
  });

  it('round-trips F32 exactly, with shapes and metadata (including a scalar and an empty tensor)', async () => {
    const path = join(dir, 'f32.safetensors');
    await writeSafetensors(
      path,
      { a: { dtype: 'F32', shape: [3, 4], data: a }, s: { dtype: 'F32', shape: [], data: scalar }, e: { dtype: 'F32', shape: [0, 5], data: new Float32Array(0) } },
      { note: 'hello' },
    );
    const { tensors, metadata } = await readSafetensors(path);
    expect(metadata).toEqual({ note: 'hello' });
    expect(Object.keys(tensors).sort()).toEqual(['a', 'e', 's']);
    expect(tensors.a.shape).toEqual([3, 4]);
    expect(tensors.a.dtype).toBe('F32');
    expect(firstMismatch(tensors.a.data, a)).toBeNull();
    expect(tensors.s.shape).toEqual([]);
    expect([...tensors.s.data]).toEqual([-1e4]);
    expect(tensors.e.shape).toEqual([0, 5]);
    expect(tensors.e.data.length).toBe(0);
  });

  for (const [dtype, ref, decodeRef] of [
    ['F16', refF16, decodeF16Ref],
    ['BF16', refBf16, decodeBf16Ref],
  ] as const) {
    it(`${dtype}: stored bits decode (independently) to the reference rounding, and the reader returns the same`, async () => {
      const values = edgeAndRandomValues(3, 5000);
      const path = join(dir, `${dtype}.safetensors`);
      await writeSafetensors(path, { v: { dtype, shape: [values.length], data: values } });
      const expected = refRound(values, ref);
      const { header, data } = await parseByHand(path);
      expect(header.v.dtype).toBe(dtype);
      expect(firstMismatch(decodeRef(data.subarray(...(header.v.data_offsets as [number, number]))), expected)).toBeNull();
      const { tensors } = await readSafetensors(path);
      expect(firstMismatch(tensors.v.data, expected)).toBeNull();
    });
  }

  it('reads a tensor that spans several conversion chunks (F16, 9M elements)', async () => {
    const n = 9_000_000; // > the 8M-element scratch buffer
    const values = new Float32Array(n);
    for (let i = 0; i < n; i++) values[i] = (i % 2049) - 1024; // integers, exact in F16
    const path = join(dir, 'big.safetensors');
    await writeSafetensors(path, { big: { dtype: 'F16', shape: [n], data: values } });
    const { tensors } = await readSafetensors(path);
    expect(tensors.big.data[0]).toBe(-1024);
    expect(tensors.big.data[n - 1]).toBe(((n - 1) % 2049) - 1024);
    expect(firstMismatch(tensors.big.data, values)).toBeNull();
  });

  it('rejects data whose length does not match the shape', async () => {
    await expect(writeSafetensors(join(dir, 'bad.safetensors'), { x: { dtype: 'F32', shape: [2, 3], data: new Float32Array(5) } })).rejects.toThrow(
      /tensor 'x' has 5 values but shape \[2, 3\] needs 6/,
    );
  });
});

describe('readSafetensors errors name the file and the problem', () => {
  const four = new Uint8Array(new Float32Array([1, 2, 3, 4]).buffer);

  it('file shorter than the length field', async () => {
    const path = join(dir, 'tiny.safetensors');
    await writeFile(path, Buffer.from([1, 2, 3]));
    await expect(readSafetensors(path)).rejects.toThrow(/tiny\.safetensors is 3 bytes, too small/);
  });

  it('header length beyond the file size (truncated/corrupt)', async () => {
    const path = join(dir, 'trunc-header.safetensors');
    await writeSafetensors(path, { w: { dtype: 'F32', shape: [4], data: new Float32Array(4) } });
    const { n } = await parseByHand(path);
    await truncate(path, 8 + n - 5);
    await expect(readSafetensors(path)).rejects.toThrow(new RegExp(`trunc-header\\.safetensors declares a ${n}-byte header .*truncated or corrupt`));
  });

  it('invalid JSON header', async () => {
    const path = await craft('badjson.safetensors', null, four, '{"w": {"dtype": "F32", "shape": [4], ');
    await expect(readSafetensors(path)).rejects.toThrow(/badjson\.safetensors has an invalid JSON header/);
  });

  it('data_offsets beyond the data section (truncated data)', async () => {
    const path = join(dir, 'trunc-data.safetensors');
    await writeSafetensors(path, { first: { dtype: 'F32', shape: [2], data: new Float32Array(2) }, second: { dtype: 'F32', shape: [4], data: new Float32Array(4) } });
    const { n } = await parseByHand(path);
    await truncate(path, 8 + n + 12);
    await expect(readSafetensors(path)).rejects.toThrow(/tensor 'second' in .*trunc-data\.safetensors has data_offsets \[8, 24\] beyond the 12-byte data section/);
  });

  it('data_offsets inconsistent with shape × dtype', async () => {
    const path = await craft('inconsistent.safetensors', { w: { dtype: 'F32', shape: [2, 2], data_offsets: [0, 8] } }, four);
    await expect(readSafetensors(path)).rejects.toThrow(/tensor 'w' in .*inconsistent\.safetensors has data_offsets \[0, 8\] \(8 bytes\) but shape \[2, 2\] × F32 needs 16 bytes/);
  });

  it('unsupported dtype: error lists the supported ones; other tensors of the file stay readable', async () => {
    const i64 = new Uint8Array(16);
    const path = await craft(
      'i64.safetensors',
      { ids: { dtype: 'I64', shape: [2], data_offsets: [0, 16] }, w: { dtype: 'F32', shape: [4], data_offsets: [16, 32] } },
      Buffer.concat([i64, four]),
    );
    await expect(readSafetensors(path)).rejects.toThrow(/tensor 'ids' in .*i64\.safetensors has dtype I64; supported dtypes: F32, F16, BF16/);
    const file = await SafetensorsFile.open(path);
    expect([...(await file.readTensor('w'))]).toEqual([1, 2, 3, 4]);
    await file.close();
  });

  it('unknown dtype string', async () => {
    const path = await craft('q4.safetensors', { w: { dtype: 'Q4', shape: [4], data_offsets: [0, 16] } }, four);
    await expect(readSafetensors(path)).rejects.toThrow(/tensor 'w' in .*q4\.safetensors has unknown dtype "Q4"; readable dtypes: F32, F16, BF16/);
  });

  it('overlapping tensors', async () => {
    const path = await craft(
      'overlap.safetensors',
      { a: { dtype: 'F32', shape: [3], data_offsets: [0, 12] }, b: { dtype: 'F32', shape: [2], data_offsets: [8, 16] } },
      four,
    );
    await expect(readSafetensors(path)).rejects.toThrow(/tensors 'a' and 'b' overlap/);
  });

  it('missing file', async () => {
    await expect(readSafetensors(join(dir, 'nope.safetensors'))).rejects.toThrow(/cannot open .*nope\.safetensors: no such file/);
  });
});
