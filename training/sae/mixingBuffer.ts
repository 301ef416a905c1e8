/**
 * SAELens's mixing buffer: activation rows from a stream fill a fixed-size buffer, which is shuffled;
 * its first half goes out as training batches and the second half stays to mix with the next rows.
 * Memory is the buffer's, whatever the number of tokens.
 */
import { Rng } from '../../hooks/random.ts';

export class MixingBuffer {
  private readonly data: Float32Array;
  private rows = 0;
  private readonly rng: Rng;

  /** `capacity` rows of `width` floats. */
  constructor(readonly capacity: number, readonly width: number, seed = 0) {
    if (!Number.isInteger(capacity) || capacity < 2) throw new Error(`the mixing buffer needs at least 2 rows; got ${capacity}`);
    this.data = new Float32Array(capacity * width);
    this.rng = new Rng(seed);
  }

  /** Rows `source` yields ([rows, width] each), mixed, in batches of `batchRows`; the last, partial batch is dropped. */
  async *batches(source: AsyncIterable<{ acts: Float32Array; rows: number }>, batchRows: number): AsyncGenerator<Float32Array> {
    if (!Number.isInteger(batchRows) || batchRows < 1 || batchRows > this.capacity / 2) {
      throw new Error(`batches of ${batchRows} rows need a mixing buffer of at least ${2 * batchRows} rows; it has ${this.capacity}`);
    }
    const w = this.width;
    let out = new Float32Array(batchRows * w);
    let outRows = 0;
    const emitHalf = function* (this: MixingBuffer): Generator<Float32Array> {
      this.shuffle();
      const half = Math.floor(this.rows / 2);
      for (let r = 0; r < half; r++) {
        out.set(this.data.subarray(r * w, (r + 1) * w), outRows * w);
        if (++outRows === batchRows) {
          yield out;
          out = new Float32Array(batchRows * w);
          outRows = 0;
        }
      }
      this.data.copyWithin(0, half * w, this.rows * w);
      this.rows -= half;
    };
    for await (const chunk of source) {
      if (chunk.acts.length !== chunk.rows * w) throw new Error(`mixing buffer: a chunk of ${chunk.rows} rows must have ${chunk.rows * w} values; it has ${chunk.acts.length}`);
      let r = 0;
      while (r < chunk.rows) {
        const take = Math.min(chunk.rows - r, this.capacity - this.rows);
        this.data.set(chunk.acts.subarray(r * w, (r + take) * w), this.rows * w);
        this.rows += take;
        r += take;
        if (this.rows === this.capacity) yield* emitHalf.call(this);
      }
    }
    while (this.rows >= 2) yield* emitHalf.call(this);
  }

  /** Fisher–Yates over the rows held. */
  private shuffle(): void {
    const w = this.width;
    const tmp = new Float32Array(w);
    for (let i = this.rows - 1; i > 0; i--) {
      const j = this.rng.int(0, i + 1);
      if (i === j) continue;
      tmp.set(this.data.subarray(i * w, (i + 1) * w));
      this.data.copyWithin(i * w, j * w, (j + 1) * w);
      this.data.set(tmp, j * w);
    }
  }
}
