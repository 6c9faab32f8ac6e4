// sha256 of guest memory off the event loop. Guest memory lives in SharedArrayBuffers (guest.ts), so
// a worker thread hashes it in place, without a copy, while the process goes on moving pages: the
// integrity checksums (a migration's memorySha256, a VM's memory at arrival) are figures for tests,
// and must not take the simulated hosts' time. One worker per process, started on first use and
// never keeping the process alive. A buffer that is not shared is hashed here, synchronously.
import { createHash } from 'node:crypto';
import { Worker } from 'node:worker_threads';

const WORKER = `
const { parentPort } = require('node:worker_threads');
const { createHash } = require('node:crypto');
parentPort.on('message', ({ id, buffer, offset, length }) => {
  parentPort.postMessage({ id, hash: createHash('sha256').update(Buffer.from(buffer, offset, length)).digest('hex') });
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

export function sha256(buf: Buffer): string {
  return createHash('sha256').update(buf).digest('hex');
}

/**
 * sha256 of `buf` as it is while the hash runs: the caller must not write to it until the promise
 * settles (or must stop trusting the result).
 */
export function sha256Off(buf: Buffer): Promise<string> {
  if (!(buf.buffer instanceof SharedArrayBuffer)) return Promise.resolve(sha256(buf));
  const w = hashWorker();
  const id = nextId++;
  return new Promise((resolve, reject) => {
    waiting.set(id, { resolve, reject });
    w.ref(); // until the answer comes
    w.postMessage({ id, buffer: buf.buffer, offset: buf.byteOffset, length: buf.length });
  });
}

/** A Buffer over fresh shared memory (zero-filled), which the hash worker can read in place. */
export function sharedBuffer(bytes: number): Buffer {
  return Buffer.from(new SharedArrayBuffer(bytes));
}
