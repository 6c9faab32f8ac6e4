// The data plane's wire format between two host processes, and the shared outbound link.
// Frames: [u8 type][u32 length][payload]. A migration is HELLO (JSON) -> OK | ERR, then DISK and
// PAGES frames, then xenopsd's handshake: HANDOFF (JSON: the VM record) -> READY | ERR (the
// destination staged the VM, not running), the source gives up its domain, RESUME -> DONE (the
// destination resumed the VM). A connection that closes before RESUME means "discard": the
// destination keeps nothing.
import { Socket, connect } from 'node:net';
import { PAGE } from './guest';

export const Frame = {
  HELLO: 1,
  CHECK: 2,
  /** [u32 first page][u32 count][count * 4 KiB]: a run of consecutive pages. */
  PAGES: 3,
  DISK: 4,
  /** The last frame of the stream: the VM record; the destination stages the VM and answers READY. */
  HANDOFF: 5,
  /** A pool member asking for this host's memory and liveness (host_metrics of peers). */
  STATUS: 6,
  /** After READY: resume the VM (JSON: {then?: "crash" | "drop"}, fault injection after the resume). */
  RESUME: 7,
  /** Fault injection: the destination host crashes at once. */
  CRASH: 8,
  OK: 100,
  READY: 102,
  DONE: 103,
  ERR: 101,
} as const;

export const HEADER = 5;
/** Longest page run per frame: small enough for smooth pacing and progress. */
export const PAGES_PER_FRAME = 64;
export const DISK_CHUNK = 64 * 1024;

export function frameHeader(type: number, length: number): Buffer {
  const h = Buffer.allocUnsafe(HEADER);
  h.writeUInt8(type, 0);
  h.writeUInt32LE(length, 1);
  return h;
}

export function jsonFrame(type: number, value: unknown): Buffer {
  const body = Buffer.from(JSON.stringify(value));
  return Buffer.concat([frameHeader(type, body.length), body]);
}

/** Incremental frame parser over a byte stream. */
export class FrameReader {
  private chunks: Buffer[] = [];
  private total = 0;

  push(chunk: Buffer): void {
    this.chunks.push(chunk);
    this.total += chunk.length;
  }

  private take(n: number): Buffer {
    const first = this.chunks[0] as Buffer;
    if (first.length >= n) {
      // Zero-copy when the bytes sit in one chunk (the common case for page data).
      const out = first.subarray(0, n);
      if (first.length === n) this.chunks.shift();
      else this.chunks[0] = first.subarray(n);
      this.total -= n;
      return out;
    }
    const out = Buffer.allocUnsafe(n);
    let off = 0;
    while (off < n) {
      const c = this.chunks[0] as Buffer;
      const k = Math.min(c.length, n - off);
      c.copy(out, off, 0, k);
      off += k;
      if (k === c.length) this.chunks.shift();
      else this.chunks[0] = c.subarray(k);
    }
    this.total -= n;
    return out;
  }

  private peekHeader(): { type: number; length: number } | undefined {
    if (this.total < HEADER) return undefined;
    const first = this.chunks[0] as Buffer;
    const h = first.length >= HEADER ? first : Buffer.concat(this.chunks).subarray(0, HEADER);
    return { type: h.readUInt8(0), length: h.readUInt32LE(1) };
  }

  get length(): number {
    return this.total;
  }

  /** The first n bytes without consuming them (copying only those bytes). */
  peek(n: number): Buffer | undefined {
    if (this.total < n) return undefined;
    const first = this.chunks[0] as Buffer;
    if (first.length >= n) return first.subarray(0, n);
    const out = Buffer.allocUnsafe(n);
    let off = 0;
    for (const c of this.chunks) {
      const k = Math.min(c.length, n - off);
      c.copy(out, off, 0, k);
      off += k;
      if (off === n) break;
    }
    return out;
  }

  skip(n: number): void {
    this.take(n);
  }

  /** Moves up to max buffered bytes straight into target at offset; returns how many. */
  drainInto(target: Buffer, offset: number, max: number): number {
    let moved = 0;
    while (moved < max && this.chunks.length) {
      const c = this.chunks[0] as Buffer;
      const k = Math.min(c.length, max - moved);
      c.copy(target, offset + moved, 0, k);
      moved += k;
      if (k === c.length) this.chunks.shift();
      else this.chunks[0] = c.subarray(k);
    }
    this.total -= moved;
    return moved;
  }

  next(): { type: number; payload: Buffer } | undefined {
    const h = this.peekHeader();
    if (!h || this.total < HEADER + h.length) return undefined;
    this.take(HEADER);
    return { type: h.type, payload: this.take(h.length) };
  }
}

/**
 * One outbound link per host shared by all its migrations: a virtual clock of when the link is
 * next free, so that n concurrent streams share B rather than each getting B.
 */
const BURST_MS = 50;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export class Link {
  private nextFree = 0;
  constructor(public bandwidthBytesPerS: number) {}

  /**
   * Schedules `bytes` on the link and waits until they would have left it at its bandwidth (or
   * nearly: see below); returns when, on the performance.now() clock, they are all out.
   */
  async pace(bytes: number): Promise<number> {
    const now = performance.now();
    // Timers oversleep by a millisecond or so: a stream that is behind its schedule by less than
    // BURST_MS catches up, so the average rate is B rather than B minus the timer slack. A link
    // idle for longer starts afresh (no credit for idle time, the rate never exceeds B overall).
    const start = now - this.nextFree > BURST_MS ? now : this.nextFree;
    this.nextFree = start + (bytes / this.bandwidthBytesPerS) * 1000;
    const wait = this.nextFree - now;
    // Sleep only when noticeably ahead: timers have ~1 ms granularity. A stream that must know
    // its bytes are out (the end of a pre-copy round, before HANDOFF) calls DataConnection.drain.
    const out = this.nextFree;
    if (wait > 4) await sleep(wait);
    return out;
  }
}

/** A framed connection to a destination's data port, paced by the link and cut by faults. */
export class DataConnection {
  bytesSent = 0;
  /** When (performance.now()) the last byte this connection queued leaves the link. */
  private sentUntil = 0;
  private reader = new FrameReader();
  private waiting: ((f: { type: number; payload: Buffer }) => void) | undefined;
  private closedError: Error | undefined;
  private onClosed: ((err: Error) => void) | undefined;

  private constructor(
    private readonly socket: Socket,
    private readonly link: Link,
    private readonly cutAfter: () => number | undefined,
  ) {
    socket.setNoDelay(true);
    socket.on('data', (c: Buffer) => {
      this.reader.push(c);
      // Only take a frame when someone waits for it; otherwise it stays queued for reply().
      while (this.waiting) {
        const f = this.reader.next();
        if (!f) break;
        const w = this.waiting;
        this.waiting = undefined;
        w(f);
      }
    });
    const closed = (err?: Error) => {
      this.closedError ??= err ?? new Error('data connection closed');
      this.onClosed?.(this.closedError);
    };
    socket.on('error', closed);
    socket.on('close', () => closed());
  }

  static open(host: string, port: number, link: Link, cutAfter: () => number | undefined, timeoutMs = 5000): Promise<DataConnection> {
    return new Promise((resolve, reject) => {
      const socket = connect({ host, port });
      const timer = setTimeout(() => {
        socket.destroy();
        reject(new Error(`connect to ${host}:${port} timed out`));
      }, timeoutMs);
      socket.once('connect', () => {
        clearTimeout(timer);
        socket.removeAllListeners('error');
        resolve(new DataConnection(socket, link, cutAfter));
      });
      socket.once('error', (err) => {
        clearTimeout(timer);
        reject(err);
      });
    });
  }

  private check(): void {
    if (this.closedError) throw this.closedError;
  }

  async send(buf: Buffer): Promise<void> {
    this.check();
    const cut = this.cutAfter();
    if (cut !== undefined && this.bytesSent + buf.length > cut) {
      // Fault injection: the link drops mid-stream.
      this.socket.write(buf.subarray(0, Math.max(0, cut - this.bytesSent)));
      this.socket.destroy();
      this.closedError = new Error(`data connection cut after ${cut} bytes`);
      throw this.closedError;
    }
    this.bytesSent += buf.length;
    this.socket.write(buf);
    this.sentUntil = await this.link.pace(buf.length);
    // Ask the socket now, not what write() said: it may have drained while we were pacing, and
    // a 'drain' that already happened would never wake us.
    if (this.socket.writableNeedDrain && !this.closedError) {
      await new Promise<void>((resolve, reject) => {
        this.socket.once('drain', resolve);
        this.onClosed = reject;
      });
      this.onClosed = undefined;
    }
    // No check here: a peer that answered ERR and closed left its reply in the reader.
  }

  /**
   * Sends pages[from..to) as runs of consecutive pages, straight from guest memory (no copy). A
   * page the guest writes after this call may leave with its newer content; it is dirty again, so
   * a later round (or stop-and-copy, with the guest paused) sends it again and the last copy wins.
   * Returns how many pages were sent.
   */
  async sendPages(mem: Buffer, pages: ArrayLike<number>, from: number, to: number): Promise<void> {
    let i = from;
    while (i < to) {
      const start = pages[i] as number;
      let n = 1;
      while (i + n < to && n < PAGES_PER_FRAME && pages[i + n] === start + n) n++;
      const head = Buffer.allocUnsafe(HEADER + 8);
      head.writeUInt8(Frame.PAGES, 0);
      head.writeUInt32LE(8 + n * PAGE, 1);
      head.writeUInt32LE(start, HEADER);
      head.writeUInt32LE(n, HEADER + 4);
      await this.sendParts(head, mem.subarray(start * PAGE, (start + n) * PAGE));
      i += n;
    }
  }

  private async sendParts(head: Buffer, body: Buffer): Promise<void> {
    const cut = this.cutAfter();
    if (cut !== undefined && this.bytesSent + head.length + body.length > cut) {
      await this.send(Buffer.concat([head, body]));
      return;
    }
    this.check();
    this.socket.write(head);
    this.bytesSent += head.length + body.length;
    this.socket.write(body);
    this.sentUntil = await this.link.pace(head.length + body.length);
    if (this.socket.writableNeedDrain && !this.closedError) {
      await new Promise<void>((resolve, reject) => {
        this.socket.once('drain', resolve);
        this.onClosed = reject;
      });
      this.onClosed = undefined;
    }
  }

  /**
   * Waits until everything sent so far has left the link at its bandwidth (pace lets a stream run
   * up to a few ms ahead): a pre-copy round ends, and HANDOFF follows the last page, no earlier
   * than the link allows.
   */
  async drain(): Promise<void> {
    const wait = this.sentUntil - performance.now();
    if (wait >= 1) await sleep(wait);
  }

  /** Waits for the destination's next frame (OK or ERR). */
  reply(timeoutMs = 30_000): Promise<{ type: number; payload: Buffer }> {
    const ready = this.reader.next();
    if (ready) return Promise.resolve(ready);
    return new Promise((resolve, reject) => {
      if (this.closedError) return reject(this.closedError);
      const timer = setTimeout(() => reject(new Error('no reply from destination')), timeoutMs);
      this.onClosed = (err) => {
        clearTimeout(timer);
        reject(err);
      };
      this.waiting = (f) => {
        clearTimeout(timer);
        this.onClosed = undefined;
        resolve(f);
      };
    });
  }

  close(): void {
    this.socket.destroy();
  }
}
