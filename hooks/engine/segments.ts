/**
 * Splits one graph into consecutive segments that end at the values JavaScript must see before the
 * rest runs: hook points hooked from JavaScript (a JS hook reads a value and hands back a
 * replacement), and in a backward pass the logits (a metric's gradient is computed from them) and
 * the gradients that backward hooks read.
 */
import type { GraphBuilder } from '../onnx/builder.ts';
import { encodeModel, type ElemType, type OnnxNode, type ValueInfo } from '../onnx/proto.ts';

export interface Segment {
  /** ONNX model bytes of this segment. */
  model: Uint8Array;
  /** Values fed into the segment: graph inputs, weights, or outputs of earlier segments. */
  inputs: string[];
  /** Values the segment hands on: cut hook, values later segments need, observed hooks, final outputs. */
  outputs: string[];
  /** The value this segment ends at (a hook point whose value goes through the JS hooks, …), or null for the last. */
  cut: string | null;
  /** Weights embedded as initializers; their bytes are handed over as `externalData` `<name>.bin`. */
  external: string[];
  /** Outputs that later segments read (always fetched). */
  passOn: string[];
}

/** Element type of every value, propagated forward through the nodes. */
function inferTypes(b: GraphBuilder): Map<string, ElemType> {
  const types = new Map<string, ElemType>();
  for (const [name, info] of b.inputs) types.set(name, info.elemType);
  for (const [name, c] of b.constants) types.set(name, c.elemType);
  const boolOps = new Set(['LessOrEqual', 'Less', 'Greater', 'GreaterOrEqual', 'Equal', 'And', 'Or', 'Not', 'IsNaN', 'IsInf']);
  for (const n of b.nodes) {
    let t: ElemType;
    if (n.op === 'Shape') t = 'int64';
    else if (boolOps.has(n.op)) t = 'bool';
    else if (n.op === 'Cast') {
      const to = n.attrs?.to;
      const code = to && 'i' in to ? to.i : 1;
      t = code === 9 ? 'bool' : code === 7 ? 'int64' : 'float32';
    } else if (n.op === 'Where') t = types.get(n.inputs[1]) ?? 'float32';
    else if (n.op === 'ConstantOfShape') t = 'float32';
    else t = types.get(n.inputs[0]) ?? 'float32';
    for (const o of n.outputs) types.set(o, t);
    if (n.op === 'TopK' && n.outputs[1]) types.set(n.outputs[1], 'int64'); // values, indices
  }
  return types;
}

/**
 * @param cuts values JS reads before the rest runs (any order; each must be a value of the graph)
 * @param keep values that must come out of whichever segment produces them
 * @param embedded graph inputs to embed as initializers whose bytes come from `externalData`
 *   (`<name>.bin`) at session creation, instead of being fed at every run
 */
export function partitionGraph(
  b: GraphBuilder,
  cuts: readonly string[],
  keep: ReadonlySet<string>,
  embedded: ReadonlySet<string> = new Set(),
): Segment[] {
  const producer = new Map<string, number>();
  b.nodes.forEach((n, i) => n.outputs.forEach((o) => producer.set(o, i)));
  const cutPoints = cuts
    .map((c) => {
      const at = producer.get(c);
      if (at === undefined) throw new Error(`partitionGraph: '${c}' is not a value of this graph`);
      return { hook: c, at };
    })
    .sort((x, y) => x.at - y.at);

  const bounds: { start: number; end: number; cut: string | null }[] = [];
  let start = 0;
  for (const c of cutPoints) {
    bounds.push({ start, end: c.at + 1, cut: c.hook });
    start = c.at + 1;
  }
  bounds.push({ start, end: b.nodes.length, cut: null });

  const segmentOf = (nodeIndex: number) => bounds.findIndex((s) => nodeIndex >= s.start && nodeIndex < s.end);
  const types = inferTypes(b);
  const outputsOf = bounds.map(() => new Set<string>());
  const passOnOf = bounds.map(() => new Set<string>());
  const inputsOf = bounds.map(() => new Set<string>());
  const constantsOf = bounds.map(() => new Set<string>());
  /** Structural nodes (shapes, positions, masks) copied into each later segment that needs them. */
  const copiedOf = bounds.map(() => new Set<number>());

  // A node is structural when it makes only integer/boolean values from graph inputs, constants
  // and other structural values: cheap to recompute, so segments never pass such values on (and a
  // run may start at a later segment).
  const structural = new Set<number>();
  b.nodes.forEach((n, i) => {
    const intOut = n.outputs.every((o) => o === '' || types.get(o) !== 'float32');
    const fromStructure = n.inputs.every((x) => {
      if (x === '') return true;
      const from = producer.get(x);
      return from === undefined ? !(b.inputs.get(x)?.elemType === 'float32') : structural.has(from);
    });
    if (intOut && fromStructure) structural.add(i);
  });

  /** Makes `value` available in segment `seg`, which reads it. */
  const need = (seg: number, value: string): void => {
    const from = producer.get(value);
    if (from === undefined) {
      if (b.constants.has(value)) constantsOf[seg].add(value);
      else inputsOf[seg].add(value);
      return;
    }
    const fromSeg = segmentOf(from);
    if (fromSeg === seg) return;
    if (structural.has(from)) {
      if (copiedOf[seg].has(from)) return;
      copiedOf[seg].add(from);
      for (const x of b.nodes[from].inputs) if (x !== '') need(seg, x);
      return;
    }
    inputsOf[seg].add(value);
    outputsOf[fromSeg].add(value);
    passOnOf[fromSeg].add(value);
  };

  b.nodes.forEach((n, i) => {
    const seg = segmentOf(i);
    for (const input of n.inputs) if (input !== '') need(seg, input);
    for (const o of n.outputs) if (keep.has(o)) outputsOf[seg].add(o);
  });
  bounds.forEach((s, i) => {
    if (s.cut) outputsOf[i].add(s.cut);
  });

  return bounds.map((s, i) => {
    const copied = [...copiedOf[i]].sort((x, y) => x - y).map((k) => b.nodes[k]);
    const nodes: OnnxNode[] = [...copied, ...b.nodes.slice(s.start, s.end)];
    const info = (name: string): ValueInfo =>
      b.inputs.get(name) ?? { name, elemType: types.get(name) ?? 'float32', dims: null };
    const inputs = [...inputsOf[i]].filter((name) => !embedded.has(name));
    const external = [...inputsOf[i]].filter((name) => embedded.has(name));
    const outputs = [...outputsOf[i]];
    const model = encodeModel({
      nodes,
      inputs: inputs.map(info),
      outputs: outputs.map((name) => ({ ...info(name), dims: null })),
      initializers: [...constantsOf[i]].map((name) => ({ name, ...b.constants.get(name)! })),
      externalInitializers: external.map((name) => ({ name, dims: info(name).dims as number[], elemType: info(name).elemType })),
      name: s.cut ? `segment_to_${s.cut}` : 'segment_final',
    });
    return { model, inputs, outputs, cut: s.cut, external, passOn: [...passOnOf[i]] };
  });
}
