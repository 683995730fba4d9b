/**
 * A ring of shared memory that carries items, in order, from a worker that reads ahead
 * (`read_ahead_worker.ts`) to the thread that uses them: a WAL's records and streamed series
 * (`wal_read_ahead.ts`), or the merged series of sorted runs (`run_merge_ahead.ts`). One writer,
 * one reader, no message per item. The writer blocks (`Atomics.wait`, allowed in a worker) while
 * the ring is full, so it never runs more than the ring's size ahead; the reader awaits
 * (`Atomics.waitAsync`) while it is empty.
 *
 * Items never wrap: one that does not fit before the ring's end is written at its start, after a
 * skip marker. Items are at most half the ring: a larger record is cut into pieces, which the
 * reading end puts together again (so a record of any size goes through a ring of any size).
 *
 * Items: a record (its segment's position in the list read, its offset, its compression, its
 * length, and its first piece; a merged series is a record of its encoded bytes, the three
 * others zero), the next piece of a record, or a series of a series record streamed as its pages
 * came (ref and labels key).
 *
 * Memory: the ring (`size` bytes, shared) and the control words; the reading end, the largest
 * record.
 *
 * @module
 */

/** What an item is. */
export const RingItem = {
  /** The rest of the ring is unused: the next item is at its start. */
  skip: 0,
  record: 1,
  series: 2,
  /** The next piece of the record before. */
  piece: 3,
} as const;

/** Bytes of a record item's header: kind, compression, segment, offset, length, piece length. */
const _RECORD_HEADER_BYTES = 1 + 1 + 4 + 8 + 4 + 4;
/** Bytes of a piece item's header: kind, piece length. */
const _PIECE_HEADER_BYTES = 1 + 4;
/** Bytes of a series item's header: kind, ref, key length. */
const _SERIES_HEADER_BYTES = 1 + 8 + 4;

// Control words: bytes written and read since the start (each wraps as an int32), and the end.
const _WRITTEN = 0;
const _READ = 1;
const _DONE = 2;

/** The shared memory of a ring. */
export interface RingBuffers {
  /** The ring's bytes. */
  data: SharedArrayBuffer;
  /** Its control words. */
  control: SharedArrayBuffer;
}

/** New shared memory for a ring of `size` bytes. */
export function newRing(size: number): RingBuffers {
  if (!Number.isInteger(size) || size < 64 || size > 2 ** 30) {
    throw new RangeError(`ring size must be 64 bytes to 1 GiB, not ${size}`);
  }
  return { data: new SharedArrayBuffer(size), control: new SharedArrayBuffer(16) };
}

/**
 * One end's place in the ring: the bytes it has passed since the start (an int32 that wraps,
 * shared through its control word) and where it is in the ring.
 */
class _Position {
  /** Bytes passed since the start, as in the control word. */
  total = 0;
  /** Where in the ring. */
  at = 0;
  #control: Int32Array;
  #word: number;
  #size: number;

  constructor(control: Int32Array, word: number, size: number) {
    this.#control = control;
    this.#word = word;
    this.#size = size;
  }

  /** Moves on by `n` bytes and tells the other end (waking it if it waits). */
  advance(n: number): void {
    this.total = (this.total + n) | 0;
    this.at += n;
    if (this.at === this.#size) this.at = 0;
    Atomics.store(this.#control, this.#word, this.total);
    Atomics.notify(this.#control, this.#word);
  }
}

/** Marks the ring ended and wakes a reader waiting for more. */
function _end(control: Int32Array): void {
  Atomics.store(control, _DONE, 1);
  Atomics.notify(control, _WRITTEN);
}

const _utf8 = new TextEncoder();

function _nothing(): void {}

/** The writing end (in the worker). */
export class RingWriter {
  #data: Uint8Array;
  #view: DataView;
  #control: Int32Array;
  #size: number;
  #written: _Position;
  #key = new Uint8Array(1024);

  /** The writing end of the ring in `buffers`. */
  constructor(buffers: RingBuffers) {
    this.#data = new Uint8Array(buffers.data);
    this.#view = new DataView(buffers.data);
    this.#control = new Int32Array(buffers.control);
    this.#size = this.#data.length;
    this.#written = new _Position(this.#control, _WRITTEN, this.#size);
  }

  /** Appends a record, in pieces of at most half the ring. */
  record(segment: number, offset: number, compression: number, bytes: Uint8Array): void {
    const half = this.#size >> 1;
    let n = Math.min(bytes.length, half - _RECORD_HEADER_BYTES);
    let at = this.#reserve(_RECORD_HEADER_BYTES + n);
    this.#data[at] = RingItem.record;
    this.#data[at + 1] = compression;
    this.#view.setUint32(at + 2, segment, true);
    this.#view.setFloat64(at + 6, offset, true);
    this.#view.setUint32(at + 14, bytes.length, true);
    this.#view.setUint32(at + 18, n, true);
    this.#data.set(bytes.subarray(0, n), at + _RECORD_HEADER_BYTES);
    this.#written.advance(_RECORD_HEADER_BYTES + n);
    for (let done = n; done < bytes.length; done += n) {
      n = Math.min(bytes.length - done, half - _PIECE_HEADER_BYTES);
      at = this.#reserve(_PIECE_HEADER_BYTES + n);
      this.#data[at] = RingItem.piece;
      this.#view.setUint32(at + 1, n, true);
      this.#data.set(bytes.subarray(done, done + n), at + _PIECE_HEADER_BYTES);
      this.#written.advance(_PIECE_HEADER_BYTES + n);
    }
  }

  /** Appends a series of a streamed series record. */
  series(ref: number, key: string): void {
    // A key's UTF-8 takes at most three bytes per UTF-16 unit.
    if (3 * key.length > this.#key.length) this.#key = new Uint8Array(3 * key.length);
    const n = _utf8.encodeInto(key, this.#key).written;
    if (_SERIES_HEADER_BYTES + n > this.#size >> 1) {
      throw new RangeError(`a series of ${n} bytes of labels does not fit the read-ahead ring`);
    }
    const at = this.#reserve(_SERIES_HEADER_BYTES + n);
    this.#data[at] = RingItem.series;
    this.#view.setFloat64(at + 1, ref, true);
    this.#view.setUint32(at + 9, n, true);
    this.#data.set(this.#key.subarray(0, n), at + _SERIES_HEADER_BYTES);
    this.#written.advance(_SERIES_HEADER_BYTES + n);
  }

  /** Marks the end: the reader ends once it has read everything before. */
  close(): void {
    _end(this.#control);
  }

  // Where an item of `n` bytes goes, once there is room: after a skip marker when it does not
  // fit before the end.
  #reserve(n: number): number {
    const w = this.#written;
    if (w.at + n > this.#size) {
      this.#wait(this.#size - w.at);
      this.#data[w.at] = RingItem.skip;
      w.advance(this.#size - w.at);
    }
    this.#wait(n);
    return w.at;
  }

  // Blocks until `n` bytes are free.
  #wait(n: number): void {
    for (;;) {
      const read = Atomics.load(this.#control, _READ);
      if (this.#size - ((this.#written.total - read) | 0) >= n) return;
      Atomics.wait(this.#control, _READ, read);
    }
  }
}

/** An item as the reading end gives it; `bytes` is valid until the next item is taken. */
export interface RingEntry {
  kind: number;
  /** A record's segment (its position in the list read), offset and compression. */
  segment: number;
  offset: number;
  compression: number;
  /** A record's length. */
  length: number;
  /** A record's bytes, or a series' labels key. */
  bytes: Uint8Array;
  /** A series' ref. */
  ref: number;
}

/** The reading end (on the replaying thread). */
export class RingReader {
  #data: Uint8Array;
  #view: DataView;
  #control: Int32Array;
  #size: number;
  #read: _Position;
  /** The taken item's bytes, copied out of the shared ring (what decodes text needs). */
  #copy = new Uint8Array(64 * 1024);
  #entry: RingEntry = {
    kind: 0,
    segment: 0,
    offset: 0,
    compression: 0,
    length: 0,
    bytes: new Uint8Array(0),
    ref: 0,
  };

  /** The reading end of the ring in `buffers`. */
  constructor(buffers: RingBuffers) {
    this.#data = new Uint8Array(buffers.data);
    this.#view = new DataView(buffers.data);
    this.#control = new Int32Array(buffers.control);
    this.#size = this.#data.length;
    this.#read = new _Position(this.#control, _READ, this.#size);
  }

  /**
   * The next item (the same object each time), or null after the writer's end. A record the end
   * cuts (the writer failed while it wrote it) is dropped.
   */
  async next(): Promise<RingEntry | null> {
    const at = await this.#nextItem();
    if (at < 0) return null;
    const e = this.#entry;
    e.kind = this.#data[at];
    if (e.kind === RingItem.series) {
      e.ref = this.#view.getFloat64(at + 1, true);
      e.length = this.#view.getUint32(at + 9, true);
      this.#room(e.length);
      e.bytes = this.#copyOut(at + _SERIES_HEADER_BYTES, e.length, 0);
      this.#read.advance(_SERIES_HEADER_BYTES + e.length);
      return e;
    }
    if (e.kind !== RingItem.record) throw new Error(`read-ahead ring: item ${e.kind} out of place`);
    e.compression = this.#data[at + 1];
    e.segment = this.#view.getUint32(at + 2, true);
    e.offset = this.#view.getFloat64(at + 6, true);
    e.length = this.#view.getUint32(at + 14, true);
    let n = this.#view.getUint32(at + 18, true);
    // Room for the whole record: its pieces follow.
    this.#room(e.length);
    this.#copyOut(at + _RECORD_HEADER_BYTES, n, 0);
    this.#read.advance(_RECORD_HEADER_BYTES + n);
    // The rest of a record cut into pieces: each piece is an item of its own.
    for (let done = n; done < e.length; done += n) {
      const p = await this.#nextItem();
      if (p < 0) return null;
      if (this.#data[p] !== RingItem.piece) {
        throw new Error("read-ahead ring: a record's piece missing");
      }
      n = this.#view.getUint32(p + 1, true);
      this.#copyOut(p + _PIECE_HEADER_BYTES, n, done);
      this.#read.advance(_PIECE_HEADER_BYTES + n);
    }
    e.bytes = this.#copy.subarray(0, e.length);
    return e;
  }

  /**
   * Ends the ring from this end, for a writer that is gone without ending it (its thread failed):
   * a {@link RingReader.next} waiting, or to come, gives what was written, then null.
   */
  stop(): void {
    _end(this.#control);
  }

  // Where the next item starts, once there is one; -1 at the writer's end.
  async #nextItem(): Promise<number> {
    for (;;) {
      const written = Atomics.load(this.#control, _WRITTEN);
      if (written === this.#read.total) {
        if (Atomics.load(this.#control, _DONE) === 1) {
          // Written before the end was marked: look again, then end.
          if (Atomics.load(this.#control, _WRITTEN) !== this.#read.total) continue;
          return -1;
        }
        const wait = Atomics.waitAsync(this.#control, _WRITTEN, written);
        if (wait.async) {
          // A pending wait does not keep Deno's event loop alive (a timer does): without it, a
          // wait no other task outlives would end the process.
          const alive = setTimeout(_nothing, 2 ** 30);
          try {
            await wait.value;
          } finally {
            clearTimeout(alive);
          }
        }
        continue;
      }
      const at = this.#read.at;
      if (this.#data[at] !== RingItem.skip) return at;
      this.#read.advance(this.#size - at);
    }
  }

  // Makes the copy buffer hold at least `n` bytes (what it held is dropped).
  #room(n: number): void {
    if (n > this.#copy.length) this.#copy = new Uint8Array(Math.max(n, 2 * this.#copy.length));
  }

  // Copies `n` bytes at `at` to `into` in the copy buffer (which has the room).
  #copyOut(at: number, n: number, into: number): Uint8Array {
    const out = this.#copy.subarray(into, into + n);
    out.set(this.#data.subarray(at, at + n));
    return out;
  }
}
