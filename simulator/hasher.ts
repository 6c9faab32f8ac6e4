// Work on guest memory off the event loop. Guest memory lives in SharedArrayBuffers (guest.ts), so a
// worker thread reaches it in place, without a copy, while the process goes on moving pages:
// - sha256: the integrity checksums (a migration's memorySha256, a VM's memory at arrival) are
//   figures for tests, and must not take the simulated hosts' time;
// - prefault: a destination's staging memory is fresh, and the kernel's first touch of each page
//   (a fault and a zeroed page, ~1 ms per MiB) would otherwise land on the event loop as the pages
//   arrive. The worker touches every page first, with an atomic add of 0, so that a page the
//   receiver already wrote keeps its bytes.
// One worker per process, started with the first pool (or on first use) and never keeping the process
// alive. A buffer that is not shared is hashed here, synchronously (and not prefaulted).
import { createHash } from 'node:crypto';
import { Worker } from 'node:worker_threads';

// The worker takes its jobs a slice at a time, round-robin, so that no job waits behind a long one
// (a 256 MiB hash must not hold up the prefault of memory a stream is writing to right now).
const WORKER = `
const { parentPort } = require('node:worker_threads');
const { createHash } = require('node:crypto');
const SLICE = 1 << 20;
const jobs = [];
let pumping = false;
function pump() {
  const job = jobs.shift();
  if (!job) {
    pumping = false;
    return;
  }
  const end = Math.min(job.length, job.pos + SLICE);
  if (job.op === 'prefault') {
    const words = new Int32Array(job.buffer, job.offset + job.pos, (end - job.pos) >> 2);
    for (let i = 0; i < words.length; i += 1024) Atomics.add(words, i, 0);
  } else {
    job.hash.update(Buffer.from(job.buffer, job.offset + job.pos, end - job.pos));
  }
  job.pos = end;
  if (job.pos < job.length) jobs.push(job);
  else parentPort.postMessage({ id: job.id, hash: job.op === 'prefault' ? '' : job.hash.digest('hex') });
  setImmediate(pump);
}
parentPort.on('message', (job) => {
  jobs.push({ ...job, pos: 0, hash: job.op === 'prefault' ? undefined : createHash('sha256') });
  if (!pumping) {
    pumping = true;
    setImmediate(pump);
  }
});
`;

let worker: Worker | undefined;
let nextId = 0;
const waiting = new Map<number, { resolve: (hash: string) => void; reject: (err: Error) => void }>();

function hashWorker(): Worker {
  if (worker) return worker;
  const w = new Worker(WORKER, { eval: true });
  w.unref();
  w.on('message', ({ id, hash }: { id: number; hash: string }) => {
    waiting.get(id)?.resolve(hash);
    waiting.delete(id);
    if (!waiting.size) w.unref();
  });
  const fail = (err: Error) => {
    worker = undefined;
    for (const { reject } of waiting.values()) reject(err);
    waiting.clear();
  };
  w.on('error', fail);
  w.on('exit', () => fail(new Error('hash worker exited')));
  worker = w;
  return w;
}

/** Starts the worker now rather than at its first job (a prefault that waits for it to boot is too late). */
export function startWorker(): void {
  hashWorker();
}

export function sha256(buf: Buffer): string {
  return createHash('sha256').update(buf).digest('hex');
}

/**
 * sha256 of `buf` as it is while the hash runs: the caller must not write to it until the promise
 * settles (or must stop trusting the result).
 */
export function sha256Off(buf: Buffer): Promise<string> {
  if (!(buf.buffer instanceof SharedArrayBuffer)) return Promise.resolve(sha256(buf));
  return post('sha256', buf);
}

/** Has the worker touch every 4 KiB page of a shared buffer (its contents unchanged). */
export function prefault(buf: Buffer): Promise<void> {
  if (!(buf.buffer instanceof SharedArrayBuffer) || buf.byteOffset % 4 !== 0) return Promise.resolve();
  return post('prefault', buf).then(() => undefined);
}

function post(op: 'sha256' | 'prefault', buf: Buffer): Promise<string> {
  const w = hashWorker();
  const id = nextId++;
  return new Promise((resolve, reject) => {
    waiting.set(id, { resolve, reject });
    w.ref(); // until the answer comes
    w.postMessage({ id, op, buffer: buf.buffer, offset: buf.byteOffset, length: buf.length });
  });
}

/** A Buffer over fresh shared memory (zero-filled), which the hash worker can read in place. */
export function sharedBuffer(bytes: number): Buffer {
  return Buffer.from(new SharedArrayBuffer(bytes));
}
