/**
 * A small builder for ONNX graphs: named values, auto-named intermediates, constants as
 * initializers, and graph inputs declared on first use. It knows nothing about GPT-2.
 */
import type { Attr, ConstTensor, ElemType, OnnxNode, ValueInfo } from './proto.ts';

export class GraphBuilder {
  readonly nodes: OnnxNode[] = [];
  readonly inputs = new Map<string, ValueInfo>();
  readonly constants = new Map<string, ConstTensor>();
  private counter = 0;
  private readonly constKeys = new Map<string, string>();

  /** A fresh intermediate value name. */
  tmp(hint = 't'): string {
    return `_${hint}_${this.counter++}`;
  }

  /** Declares (once) a graph input and returns its name. */
  input(name: string, elemType: ElemType, dims: (number | string)[]): string {
    if (!this.inputs.has(name)) this.inputs.set(name, { name, elemType, dims });
    return name;
  }

  /** Adds a node; `out` names its single output (a fresh name when omitted). */
  op(op: string, inputs: string[], attrs?: Record<string, Attr>, out?: string, domain?: string): string {
    const output = out ?? this.tmp(op.toLowerCase());
    this.nodes.push({ op, inputs, outputs: [output], attrs, domain });
    return output;
  }

  /** Adds a node with several outputs (an empty name skips an optional output). */
  opMulti(op: string, inputs: string[], outputs: string[], attrs?: Record<string, Attr>): string[] {
    this.nodes.push({ op, inputs, outputs, attrs });
    return outputs;
  }

  private constant(key: string, t: ConstTensor): string {
    const existing = this.constKeys.get(key);
    if (existing) return existing;
    const name = `_const_${this.constKeys.size}`;
    this.constKeys.set(key, name);
    this.constants.set(name, t);
    return name;
  }

  /** An int64 constant tensor (1-D unless `scalar`). */
  i64(values: number[], scalar = false): string {
    return this.constant(`i64:${scalar}:${values.join(',')}`, {
      elemType: 'int64',
      dims: scalar ? [] : [values.length],
      data: BigInt64Array.from(values.map((v) => BigInt(v))),
    });
  }

  /** A float32 scalar constant. */
  f32(value: number): string {
    return this.constant(`f32:${value}`, { elemType: 'float32', dims: [], data: Float32Array.of(value) });
  }

  /** A float32 vector constant filled with `value`. */
  f32Fill(n: number, value: number): string {
    return this.constant(`f32fill:${n}:${value}`, { elemType: 'float32', dims: [n], data: new Float32Array(n).fill(value) });
  }

  // Thin wrappers that keep graph code readable.
  add(a: string, b: string, out?: string): string { return this.op('Add', [a, b], undefined, out); }
  sub(a: string, b: string, out?: string): string { return this.op('Sub', [a, b], undefined, out); }
  mul(a: string, b: string, out?: string): string { return this.op('Mul', [a, b], undefined, out); }
  div(a: string, b: string, out?: string): string { return this.op('Div', [a, b], undefined, out); }
  matmul(a: string, b: string, out?: string): string { return this.op('MatMul', [a, b], undefined, out); }
  transpose(x: string, perm: number[], out?: string): string { return this.op('Transpose', [x], { perm: { ints: perm } }, out); }
  reshape(x: string, shape: number[], out?: string): string { return this.op('Reshape', [x, this.i64(shape)], undefined, out); }
  unsqueeze(x: string, axes: number[], out?: string): string { return this.op('Unsqueeze', [x, this.i64(axes)], undefined, out); }
  squeeze(x: string, axes: number[], out?: string): string { return this.op('Squeeze', [x, this.i64(axes)], undefined, out); }
  reduceSum(x: string, axes: number[], keepdims: boolean, out?: string): string {
    return this.op('ReduceSum', [x, this.i64(axes)], { keepdims: { i: keepdims ? 1 : 0 } }, out);
  }
  reduceMean(x: string, axes: number[], keepdims: boolean, out?: string): string {
    return this.op('ReduceMean', [x, this.i64(axes)], { keepdims: { i: keepdims ? 1 : 0 } }, out);
  }
  where(cond: string, a: string, b: string, out?: string): string { return this.op('Where', [cond, a, b], undefined, out); }
  gather(data: string, indices: string, axis = 0, out?: string): string {
    return this.op('Gather', [data, indices], { axis: { i: axis } }, out);
  }
}
