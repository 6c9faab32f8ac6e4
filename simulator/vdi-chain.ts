// Disks as files with a parent chain, as a VHD-based SR keeps them (SM's FileSR: one file per VDI
// in the SR's directory, a snapshot turns the disk into a hidden read-only parent with two
// copy-on-write leaves on it; xapi shows the link as VDI.sm_config "vhd-parent", xapi_globs.ml).
// The simulator's two file kinds (simulator/README.md, "Disks and chains"):
//   <uuid>.img  raw: the whole virtual disk, byte for byte (no parent).
//   <uuid>.cow  ferry's copy-on-write delta: a 4 KiB header (magic line + one JSON line: virtual
//               size, block size, bitmap capacity, parent uuid), a bitmap (one bit per 64 KiB
//               block: present here or not), then block i at dataOffset + i * 64 KiB (sparse).
// Both are plain files that rsync can move and resume; reading a disk walks its chain leaf first.
import { createHash } from 'node:crypto';
import { closeSync, existsSync, fstatSync, ftruncateSync, openSync, readSync, renameSync, writeSync } from 'node:fs';
import { join } from 'node:path';

export const COW_MAGIC = 'FERRY-COW 1\n';
export const COW_BLOCK = 64 * 1024;
const HEADER = 4096;
/** A new delta can grow to at least this many bytes without being rewritten (VDI.resize). */
const MIN_CAPACITY_BYTES = 16 * 1024 ** 3;

export interface CowHeader {
  virtualSize: number;
  blockSize: number;
  /** Blocks the bitmap can describe. */
  capacityBlocks: number;
  /** uuid of the parent (a file <parent>.img or <parent>.cow in the same SR directory). */
  parent: string;
}

const bitmapBytes = (capacityBlocks: number) => Math.ceil(Math.ceil(capacityBlocks / 8) / HEADER) * HEADER;
const dataOffset = (h: CowHeader) => HEADER + bitmapBytes(h.capacityBlocks);

export type DiskKind = 'raw' | 'cow';

/** The file of the VDI with this uuid in an SR directory (a delta first, then a raw disk), or undefined. */
export function findDiskFile(dir: string, uuid: string): { path: string; kind: DiskKind } | undefined {
  const cow = join(dir, `${uuid}.cow`);
  if (existsSync(cow)) return { path: cow, kind: 'cow' };
  const raw = join(dir, `${uuid}.img`);
  if (existsSync(raw)) return { path: raw, kind: 'raw' };
  return undefined;
}

export function diskPath(dir: string, uuid: string): string {
  return findDiskFile(dir, uuid)?.path ?? join(dir, `${uuid}.img`);
}

function encodeHeader(h: CowHeader): Buffer {
  const buf = Buffer.alloc(HEADER);
  const text = `${COW_MAGIC}${JSON.stringify(h)}\n`;
  if (text.length > HEADER) throw new Error('delta header too long');
  buf.write(text, 0, 'utf8');
  return buf;
}

export function readCowHeader(path: string): CowHeader {
  const fd = openSync(path, 'r');
  try {
    return readHeaderFd(fd, path);
  } finally {
    closeSync(fd);
  }
}

function readHeaderFd(fd: number, path: string): CowHeader {
  const buf = Buffer.alloc(HEADER);
  readSync(fd, buf, 0, HEADER, 0);
  const text = buf.toString('utf8');
  if (!text.startsWith(COW_MAGIC)) throw new Error(`${path} is not a ferry copy-on-write disk`);
  const line = text.slice(COW_MAGIC.length, text.indexOf('\n', COW_MAGIC.length));
  return JSON.parse(line) as CowHeader;
}

/** Creates an empty delta on `parent` (every block read through to the parent). */
export function createCow(path: string, virtualSize: number, parent: string): void {
  const capacityBlocks = Math.ceil(Math.max(virtualSize * 2, MIN_CAPACITY_BYTES) / COW_BLOCK);
  const h: CowHeader = { virtualSize, blockSize: COW_BLOCK, capacityBlocks, parent };
  const fd = openSync(path, 'w');
  try {
    writeSync(fd, encodeHeader(h), 0, HEADER, 0);
    ftruncateSync(fd, dataOffset(h)); // the bitmap: all zero, sparse
  } finally {
    closeSync(fd);
  }
}

/** Rewrites a delta's header in place (vhd-util modify -p: relink to a new parent; a new size). */
export function writeCowHeader(path: string, patch: Partial<Pick<CowHeader, 'parent' | 'virtualSize'>>): CowHeader {
  const fd = openSync(path, 'r+');
  try {
    const h = { ...readHeaderFd(fd, path), ...patch };
    writeSync(fd, encodeHeader(h), 0, HEADER, 0);
    return h;
  } finally {
    closeSync(fd);
  }
}

/** The virtual size of a disk file (raw: its length; delta: its header). */
export function diskVirtualSize(path: string, kind: DiskKind): number {
  if (kind === 'cow') return readCowHeader(path).virtualSize;
  const fd = openSync(path, 'r');
  try {
    return fstatSync(fd).size;
  } finally {
    closeSync(fd);
  }
}

interface Layer {
  fd: number;
  kind: DiskKind;
  header?: CowHeader;
  bitmap?: Buffer;
  size: number;
}

/**
 * An open chain, leaf first: reads go to the first layer holding the block (a raw parent holds
 * every block up to its size, zeros beyond), writes go to the leaf.
 */
export class DiskChain {
  private constructor(
    private readonly layers: Layer[],
    readonly virtualSize: number,
  ) {}

  /** Opens the VDI `uuid` of SR directory `dir` and its ancestors (a missing parent is an error). */
  static open(dir: string, uuid: string, writable = false): DiskChain {
    const layers: Layer[] = [];
    let next: string | undefined = uuid;
    try {
      while (next) {
        const f = findDiskFile(dir, next);
        if (!f) throw new Error(`disk ${next} of the chain of ${uuid} is missing in ${dir}`);
        if (layers.length > 64) throw new Error(`the chain of ${uuid} is longer than 64 (a loop?)`);
        const fd = openSync(f.path, writable && layers.length === 0 ? 'r+' : 'r');
        if (f.kind === 'raw') {
          layers.push({ fd, kind: 'raw', size: fstatSync(fd).size });
          next = undefined;
        } else {
          const header = readHeaderFd(fd, f.path);
          const bitmap = Buffer.alloc(Math.ceil(header.capacityBlocks / 8));
          readSync(fd, bitmap, 0, bitmap.length, HEADER);
          layers.push({ fd, kind: 'cow', header, bitmap, size: header.virtualSize });
          next = header.parent;
        }
      }
    } catch (err) {
      for (const l of layers) closeSync(l.fd);
      throw err;
    }
    return new DiskChain(layers, (layers[0] as Layer).size);
  }

  close(): void {
    for (const l of this.layers) closeSync(l.fd);
  }

  /** Reads `len` bytes at `offset` of the virtual disk into buf (zeros past the end of every layer). */
  read(buf: Buffer, offset: number, len = buf.length, at = 0): void {
    let done = 0;
    while (done < len) {
      const pos = offset + done;
      const block = Math.floor(pos / COW_BLOCK);
      const inBlock = pos - block * COW_BLOCK;
      const n = Math.min(COW_BLOCK - inBlock, len - done);
      this.readPiece(buf, at + done, pos, n, block, inBlock);
      done += n;
    }
  }

  private readPiece(buf: Buffer, at: number, pos: number, n: number, block: number, inBlock: number): void {
    for (const l of this.layers) {
      // A layer never shows bytes past its own size, nor (the loop stops there) past any size above it.
      if (pos >= l.size) break;
      if (l.kind === 'raw') {
        const m = Math.min(n, l.size - pos);
        const got = readSync(l.fd, buf, at, m, pos);
        buf.fill(0, at + got, at + n);
        return;
      }
      const h = l.header as CowHeader;
      if (block < h.capacityBlocks && ((l.bitmap as Buffer)[block >> 3] as number) & (1 << (block & 7))) {
        const got = readSync(l.fd, buf, at, n, dataOffset(h) + block * COW_BLOCK + inBlock);
        buf.fill(0, at + got, at + n);
        return;
      }
    }
    buf.fill(0, at, at + n);
  }

  /** Writes whole blocks' worth of bytes at a block boundary into the leaf (copy-up of partial blocks). */
  write(data: Buffer, offset: number): void {
    const leaf = this.layers[0] as Layer;
    if (leaf.kind === 'raw') {
      writeSync(leaf.fd, data, 0, Math.min(data.length, Math.max(0, leaf.size - offset)), offset);
      return;
    }
    const h = leaf.header as CowHeader;
    let done = 0;
    while (done < data.length && offset + done < leaf.size) {
      const pos = offset + done;
      const block = Math.floor(pos / COW_BLOCK);
      const inBlock = pos - block * COW_BLOCK;
      const n = Math.min(COW_BLOCK - inBlock, data.length - done);
      const bm = leaf.bitmap as Buffer;
      const has = ((bm[block >> 3] as number) & (1 << (block & 7))) !== 0;
      const blockBuf = Buffer.alloc(COW_BLOCK);
      if (!has && n < COW_BLOCK) this.read(blockBuf, block * COW_BLOCK, COW_BLOCK); // copy-up from the parents
      else if (has && n < COW_BLOCK) readSync(leaf.fd, blockBuf, 0, COW_BLOCK, dataOffset(h) + block * COW_BLOCK);
      data.copy(blockBuf, inBlock, done, done + n);
      writeSync(leaf.fd, blockBuf, 0, COW_BLOCK, dataOffset(h) + block * COW_BLOCK);
      if (!has) {
        bm[block >> 3] = (bm[block >> 3] as number) | (1 << (block & 7));
        writeSync(leaf.fd, bm, block >> 3, 1, HEADER + (block >> 3));
      }
      done += n;
    }
  }

  /** sha256 of the virtual disk's first `upTo` bytes (default: all of it), read through the chain. */
  sha256(upTo = this.virtualSize): string {
    const hash = createHash('sha256');
    const buf = Buffer.alloc(1024 * 1024);
    for (let off = 0; off < upTo; off += buf.length) {
      const n = Math.min(buf.length, upTo - off);
      this.read(buf, off, n);
      hash.update(n === buf.length ? buf : buf.subarray(0, n));
    }
    return hash.digest('hex');
  }

  /** How many files the chain has (1: no parent). */
  get depth(): number {
    return this.layers.length;
  }
}

/**
 * Sets a disk's virtual size. A raw disk is truncated or extended (zeros); a delta's header
 * changes, and a delta whose bitmap cannot describe the new size is rewritten with a larger one.
 */
export function resizeDisk(dir: string, uuid: string, size: number): void {
  const f = findDiskFile(dir, uuid);
  if (!f) throw new Error(`disk ${uuid} is missing in ${dir}`);
  if (f.kind === 'raw') {
    const fd = openSync(f.path, 'r+');
    try {
      ftruncateSync(fd, size);
    } finally {
      closeSync(fd);
    }
    return;
  }
  const h = readCowHeader(f.path);
  if (Math.ceil(size / COW_BLOCK) <= h.capacityBlocks) {
    writeCowHeader(f.path, { virtualSize: size });
    return;
  }
  // Rewrite: a new delta with room for the new size, the present blocks copied over.
  const tmp = `${f.path}.resize`;
  createCow(tmp, size, h.parent);
  const oldFd = openSync(f.path, 'r');
  const bitmap = Buffer.alloc(Math.ceil(h.capacityBlocks / 8));
  readSync(oldFd, bitmap, 0, bitmap.length, HEADER);
  const nh = readCowHeader(tmp);
  const newFd = openSync(tmp, 'r+');
  try {
    const block = Buffer.alloc(COW_BLOCK);
    const nbm = Buffer.alloc(Math.ceil(nh.capacityBlocks / 8));
    bitmap.copy(nbm);
    for (let b = 0; b < h.capacityBlocks; b++) {
      if (!(((bitmap[b >> 3] as number) >> (b & 7)) & 1)) continue;
      readSync(oldFd, block, 0, COW_BLOCK, dataOffset(h) + b * COW_BLOCK);
      writeSync(newFd, block, 0, COW_BLOCK, dataOffset(nh) + b * COW_BLOCK);
    }
    writeSync(newFd, nbm, 0, nbm.length, HEADER);
  } finally {
    closeSync(oldFd);
    closeSync(newFd);
  }
  renameSync(tmp, f.path);
}
