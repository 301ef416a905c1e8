/** Encodes ONNX models (graph, inputs, outputs, initializers) to protobuf bytes with `onnx-proto`. */
import onnxProto from 'onnx-proto';

const { onnx } = onnxProto;

export type ElemType = 'float32' | 'int64' | 'bool';

const ELEM_TYPE: Record<ElemType, number> = {
  float32: onnx.TensorProto.DataType.FLOAT,
  int64: onnx.TensorProto.DataType.INT64,
  bool: onnx.TensorProto.DataType.BOOL,
};

/** One attribute value, tagged by its ONNX kind. */
export type Attr =
  | { i: number }
  | { f: number }
  | { s: string }
  | { ints: number[] }
  | { floats: number[] }
  | { t: ConstTensor };

export interface ConstTensor {
  elemType: ElemType;
  dims: number[];
  data: Float32Array | BigInt64Array | Uint8Array;
}

export interface OnnxNode {
  op: string;
  inputs: string[];
  outputs: string[];
  attrs?: Record<string, Attr>;
  domain?: string;
}

/** A graph input or output; a dim is a number or a symbolic name (`batch`, `pos`); null dims = shape unknown. */
export interface ValueInfo {
  name: string;
  elemType: ElemType;
  dims: (number | string)[] | null;
}

export interface OnnxModelSpec {
  nodes: OnnxNode[];
  inputs: ValueInfo[];
  outputs: ValueInfo[];
  initializers?: (ConstTensor & { name: string })[];
  /** Initializers whose bytes are supplied at session creation as externalData file `<name>.bin`. */
  externalInitializers?: { name: string; elemType: ElemType; dims: number[] }[];
  opset?: number;
  name?: string;
}

export const DEFAULT_OPSET = 20;

function tensorProto(t: ConstTensor, name = ''): onnxProto.onnx.ITensorProto {
  return {
    name,
    dims: t.dims,
    dataType: ELEM_TYPE[t.elemType],
    rawData: new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength),
  };
}

const BYTES: Record<ElemType, number> = { float32: 4, int64: 8, bool: 1 };

/** An initializer whose data lives in the in-memory external file `<name>.bin`. */
function externalTensorProto(name: string, elemType: ElemType, dims: number[]): onnxProto.onnx.ITensorProto {
  const length = dims.reduce((a, d) => a * d, 1) * BYTES[elemType];
  return {
    name,
    dims,
    dataType: ELEM_TYPE[elemType],
    dataLocation: onnx.TensorProto.DataLocation.EXTERNAL,
    externalData: [
      { key: 'location', value: externalFileName(name) },
      { key: 'offset', value: '0' },
      { key: 'length', value: String(length) },
    ],
  };
}

/** The in-memory "file" name that carries an external initializer's bytes. */
export const externalFileName = (name: string) => `${name.replace(/[^A-Za-z0-9_.-]/g, '_')}.bin`;

function attributeProto(name: string, a: Attr): onnxProto.onnx.IAttributeProto {
  const T = onnx.AttributeProto.AttributeType;
  if ('i' in a) return { name, type: T.INT, i: a.i };
  if ('f' in a) return { name, type: T.FLOAT, f: a.f };
  if ('s' in a) return { name, type: T.STRING, s: new TextEncoder().encode(a.s) };
  if ('ints' in a) return { name, type: T.INTS, ints: a.ints };
  if ('floats' in a) return { name, type: T.FLOATS, floats: a.floats };
  return { name, type: T.TENSOR, t: tensorProto(a.t) };
}

function valueInfoProto(v: ValueInfo): onnxProto.onnx.IValueInfoProto {
  return {
    name: v.name,
    type: {
      tensorType: {
        elemType: ELEM_TYPE[v.elemType],
        shape: v.dims === null ? null : { dim: v.dims.map((d) => (typeof d === 'number' ? { dimValue: d } : { dimParam: d })) },
      },
    },
  };
}

/** Serialises a model to the bytes `InferenceSession.create` accepts. */
export function encodeModel(spec: OnnxModelSpec): Uint8Array {
  const model: onnxProto.onnx.IModelProto = {
    irVersion: 9,
    producerName: 'lensboard',
    opsetImport: [
      { domain: '', version: spec.opset ?? DEFAULT_OPSET },
      { domain: 'com.microsoft', version: 1 },
    ],
    graph: {
      name: spec.name ?? 'lensboard',
      node: spec.nodes.map((n, i) => ({
        name: `${n.op}_${i}`,
        opType: n.op,
        domain: n.domain ?? '',
        input: n.inputs,
        output: n.outputs,
        attribute: Object.entries(n.attrs ?? {}).map(([k, v]) => attributeProto(k, v)),
      })),
      input: spec.inputs.map(valueInfoProto),
      output: spec.outputs.map(valueInfoProto),
      initializer: [
        ...(spec.initializers ?? []).map((t) => tensorProto(t, t.name)),
        ...(spec.externalInitializers ?? []).map((t) => externalTensorProto(t.name, t.elemType, t.dims)),
      ],
    },
  };
  return onnx.ModelProto.encode(model).finish();
}
