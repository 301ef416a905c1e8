/**
 * Mean and standard error over items of nested numeric results (numbers, arrays, objects of them), accumulated
 * item by item in a fixed order (Welford's update), so the same items in the same order give the same bits. A leaf
 * that was ever non-finite averages to that infinity (NaN for both signs or a NaN), with a NaN standard error.
 */

/** A number (or a non-finite number as the strings "NaN", "Infinity", "-Infinity"), or arrays / objects of them. */
export type NumericTree = number | string | NumericTree[] | { [key: string]: NumericTree };

export interface TreeAggregate {
  n: number;
  /** Same structure as the items' trees. */
  mean: NumericTree;
  /** Sample standard deviation / √n (NaN below two items). */
  stderr: NumericTree;
}

function leafValue(v: string | number, path: string): number {
  if (typeof v === 'number') return v;
  if (v === 'NaN') return NaN;
  if (v === 'Infinity') return Infinity;
  if (v === '-Infinity') return -Infinity;
  throw new Error(`${path}: '${v}' is not a number`);
}

const pathOf = (path: string, key: string | number) => (typeof key === 'number' ? `${path}[${key}]` : path ? `${path}.${key}` : key);

/** Leaves in depth-first order (arrays by index, objects by key order of the first item). */
function flatten(tree: NumericTree, like: NumericTree | undefined, path: string, out: number[], label: string): void {
  if (typeof tree === 'number' || typeof tree === 'string') {
    if (like !== undefined && typeof like === 'object') throw new Error(`${label}: ${path || 'the value'} is a number where the first item has ${Array.isArray(like) ? 'an array' : 'an object'}`);
    out.push(leafValue(tree, path || 'value'));
    return;
  }
  if (Array.isArray(tree)) {
    if (like !== undefined && !Array.isArray(like)) throw new Error(`${label}: ${path || 'the value'} is an array where the first item has ${typeof like === 'object' ? 'an object' : 'a number'}`);
    if (like !== undefined && like.length !== tree.length) {
      throw new Error(`${label}: ${path || 'the value'} has ${tree.length} entries where the first item has ${like.length}; items must give results of one shape to be averaged`);
    }
    tree.forEach((v, i) => flatten(v, like === undefined ? undefined : (like as NumericTree[])[i], pathOf(path, i), out, label));
    return;
  }
  const keys = like === undefined ? Object.keys(tree) : Object.keys(like as object);
  if (like !== undefined) {
    if (typeof like !== 'object' || Array.isArray(like)) throw new Error(`${label}: ${path || 'the value'} is an object where the first item has ${Array.isArray(like) ? 'an array' : 'a number'}`);
    const got = Object.keys(tree);
    if (got.length !== keys.length || got.some((k) => !(k in (like as object)))) {
      throw new Error(`${label}: ${path || 'the value'} has fields ${got.join(', ')} where the first item has ${keys.join(', ')}`);
    }
  }
  for (const k of keys) flatten(tree[k], like === undefined ? undefined : (like as Record<string, NumericTree>)[k], pathOf(path, k), out, label);
}

/** Rebuilds `like`'s structure with the leaves of `values`, in flatten's order. */
function unflatten(like: NumericTree, values: Float64Array, at: { i: number }): NumericTree {
  if (typeof like === 'number' || typeof like === 'string') return values[at.i++];
  if (Array.isArray(like)) return like.map((v) => unflatten(v, values, at));
  return Object.fromEntries(Object.keys(like).map((k) => [k, unflatten(like[k], values, at)]));
}

/** Accumulates trees one at a time; `result()` gives the mean and standard error of every leaf. */
export class TreeStats {
  private first: NumericTree | undefined;
  private mean = new Float64Array(0);
  private m2 = new Float64Array(0);
  /** Per leaf: 1 once +Infinity was seen, 2 once -Infinity, 4 once NaN (those bypass Welford's update). */
  private special = new Uint8Array(0);
  private count = 0;
  private readonly leaves: number[] = [];

  get n(): number {
    return this.count;
  }

  /** Adds one item's tree; `label` names the item in errors (e.g. "item 17"). */
  add(tree: NumericTree, label = `item ${this.count}`): void {
    this.leaves.length = 0;
    flatten(tree, this.first, '', this.leaves, label);
    if (this.first === undefined) {
      this.first = tree;
      this.mean = new Float64Array(this.leaves.length);
      this.m2 = new Float64Array(this.leaves.length);
      this.special = new Uint8Array(this.leaves.length);
    }
    const n = ++this.count;
    for (let i = 0; i < this.leaves.length; i++) {
      const x = this.leaves[i];
      if (!Number.isFinite(x)) {
        this.special[i] |= Number.isNaN(x) ? 4 : x > 0 ? 1 : 2;
        continue;
      }
      const d = x - this.mean[i];
      this.mean[i] += d / n;
      this.m2[i] += d * (x - this.mean[i]);
    }
  }

  result(): TreeAggregate {
    if (this.first === undefined) throw new Error('no items to aggregate');
    const n = this.count;
    const mean = Float64Array.from(this.mean);
    const se = new Float64Array(this.mean.length);
    for (let i = 0; i < se.length; i++) {
      const f = this.special[i];
      if (f === 0) se[i] = n < 2 ? NaN : Math.sqrt(this.m2[i] / (n - 1) / n);
      else {
        // A mean over ±Infinity is that infinity (NaN with both signs or a NaN); its spread is undefined.
        mean[i] = f === 1 ? Infinity : f === 2 ? -Infinity : NaN;
        se[i] = NaN;
      }
    }
    return { n, mean: unflatten(this.first, mean, { i: 0 }), stderr: unflatten(this.first, se, { i: 0 }) };
  }
}
