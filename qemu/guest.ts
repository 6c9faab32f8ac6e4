// The guest ferry migrates under QEMU: a 512-byte boot sector in the style of QEMU's own migration
// test guest (tests/migration/i386/a-b-bootblock.S). It switches to 32-bit protected mode, writes
// 'A' to COM1 once, then forever: increments one byte in every 4 KiB page of a region that starts
// at 1 MiB (a busy-wait of `delayLoops` iterations after each page sets the dirty rate; the first
// pass has none, so that the whole region holds data at once, even for a guest that then hardly
// dirties anything), counts each page write at 0x504, increments the pass counter at physical
// address 0x500 and writes 'B' to COM1. A migrated guest goes on
// writing 'B' on the destination, never a second 'A', and its pass counter keeps growing: proof
// that it carried on instead of rebooting.
//
// The machine code is below as bytes so that building the image needs no assembler. It was
// assembled with GNU as 2.40 (`as --32`) from the source in the comments; the two 32-bit operands
// marked "patched" are written by buildGuestBootSector.

const SECTOR_BYTES = 512;
const PAGE_BYTES = 4096;
/** The dirtied region starts here, above the BIOS and the boot sector. */
export const REGION_START = 0x100000;
/** Physical address of the guest's 32-bit pass counter. */
export const PASS_COUNTER_ADDRESS = 0x500;
/** Physical address of the guest's 32-bit count of page writes (wraps at 2^32): its dirty rate, measured. */
export const PAGE_WRITE_COUNTER_ADDRESS = 0x504;
/** Offsets in the sector of the patched operands. */
const DELAY_OFFSET = 0x63;
const REGION_END_OFFSET = 0x53;

// prettier-ignore
const CODE: readonly number[] = [
  // .code16, loaded at 0x7c00
  0xfa,                                     // 00 cli
  0x0f, 0x01, 0x16, 0x84, 0x7c,             // 01 lgdt 0x7c84 (gdtdesc)
  0x66, 0xb8, 0x01, 0x00, 0x00, 0x00,       // 06 mov $1,%eax
  0x0f, 0x22, 0xc0,                         // 0c mov %eax,%cr0 (protected mode)
  0x66, 0xea, 0x17, 0x7c, 0x00, 0x00, 0x08, 0x00, // 0f ljmpl $8,$0x7c17
  // .code32
  0xb8, 0x10, 0x00, 0x00, 0x00,             // 17 mov $16,%eax (data segment)
  0x8e, 0xd8, 0x8e, 0xc0, 0x8e, 0xe0,       // 1c mov %eax,%ds; %es; %fs
  0x8e, 0xe8, 0x8e, 0xd0,                   // 22 mov %eax,%gs; %ss
  0xbc, 0x00, 0x7c, 0x00, 0x00,             // 26 mov $0x7c00,%esp
  0xe4, 0x92, 0x0c, 0x02, 0xe6, 0x92,       // 2b in $0x92,%al; or $2,%al; out %al,$0x92 (A20)
  0x66, 0xba, 0xf8, 0x03,                   // 31 mov $0x3f8,%dx (COM1)
  0xb0, 0x41, 0xee,                         // 35 mov $'A',%al; out %al,(%dx)
  0x31, 0xdb,                               // 38 xor %ebx,%ebx (the first pass runs without delay)
  // mainloop:
  0xb8, 0x00, 0x00, 0x10, 0x00,             // 3a mov $0x100000,%eax
  // inner:
  0xfe, 0x00,                               // 3f incb (%eax)
  0xff, 0x05, 0x04, 0x05, 0x00, 0x00,       // 41 incl 0x504 (page-write counter)
  0x89, 0xd9,                               // 47 mov %ebx,%ecx (this pass's delay)
  0xe3, 0x02,                               // 49 jecxz 0x4d
  0xe2, 0xfe,                               // 4b loop 0x4b
  0x05, 0x00, 0x10, 0x00, 0x00,             // 4d add $4096,%eax
  0x3d, 0x00, 0x00, 0x00, 0x00,             // 52 cmp $regionEnd,%eax (patched at 0x53)
  0x72, 0xe6,                               // 57 jb inner
  0xff, 0x05, 0x00, 0x05, 0x00, 0x00,       // 59 incl 0x500 (pass counter)
  0xb0, 0x42, 0xee,                         // 5f mov $'B',%al; out %al,(%dx)
  0xbb, 0x00, 0x00, 0x00, 0x00,             // 62 mov $delay,%ebx (patched at 0x63)
  0xeb, 0xd1,                               // 67 jmp mainloop
  0x8d, 0x76, 0x00,                         // 69 lea 0(%esi),%esi: padding, the GDT starts at 0x6c
  // gdt (0x7c6c): null, code (base 0, 4 GiB, 32-bit, execute/read), data (read/write)
  0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
  0xff, 0xff, 0x00, 0x00, 0x00, 0x9a, 0xcf, 0x00,
  0xff, 0xff, 0x00, 0x00, 0x00, 0x92, 0xcf, 0x00,
  // gdtdesc (0x7c84): limit 0x17, base 0x7c6c
  0x17, 0x00, 0x6c, 0x7c, 0x00, 0x00,
];

export interface GuestProgram {
  /** Size of the region the guest dirties, MiB (it starts at 1 MiB: the guest needs memory of at least this plus 2 MiB). */
  regionMiB: number;
  /** Busy-wait iterations after each page written, from the second pass on: 0 dirties as fast as the vCPU goes. */
  delayLoops: number;
}

/** The guest's boot sector: 512 bytes ending in the 0x55 0xAA signature. */
export function buildGuestBootSector(program: GuestProgram): Buffer {
  if (!Number.isInteger(program.regionMiB) || program.regionMiB < 1 || program.regionMiB > 2048) {
    throw new RangeError(`regionMiB must be an integer from 1 to 2048, not ${program.regionMiB}`);
  }
  if (!Number.isInteger(program.delayLoops) || program.delayLoops < 0 || program.delayLoops > 0xffffffff) {
    throw new RangeError(`delayLoops must be an integer from 0 to 2^32-1, not ${program.delayLoops}`);
  }
  const sector = Buffer.alloc(SECTOR_BYTES);
  Buffer.from(CODE).copy(sector, 0);
  sector.writeUInt32LE(program.delayLoops, DELAY_OFFSET);
  sector.writeUInt32LE(REGION_START + program.regionMiB * 1024 * 1024, REGION_END_OFFSET);
  sector[SECTOR_BYTES - 2] = 0x55;
  sector[SECTOR_BYTES - 1] = 0xaa;
  return sector;
}

/** Memory a guest needs for a program: the region, the first MiB and a MiB of slack. */
export function guestMemoryMiB(program: GuestProgram): number {
  return program.regionMiB + 2;
}

/** Pages the guest writes per pass. */
export function pagesPerPass(program: GuestProgram): number {
  return (program.regionMiB * 1024 * 1024) / PAGE_BYTES;
}

/** The guest's counters, from the 8 bytes of its memory at PASS_COUNTER_ADDRESS (QMP's pmemsave). */
export interface GuestCounters {
  passes: number;
  /** Page writes, modulo 2^32. */
  pageWrites: number;
}

export function parseGuestCounters(bytes: Buffer): GuestCounters {
  if (bytes.length < 8) throw new RangeError(`the guest's counters are 8 bytes, not ${bytes.length}`);
  return { passes: bytes.readUInt32LE(0), pageWrites: bytes.readUInt32LE(4) };
}

/** What a guest wrote on one serial port: SeaBIOS's banner (on a cold boot), then 'A' once, then a 'B' per pass. */
export interface GuestSerial {
  /** 'A's the guest wrote: 1 after a cold boot, 0 on a migration's destination. */
  starts: number;
  /** 'B's: passes over the region. */
  passes: number;
  /** Anything after the BIOS that is neither 'A' nor 'B' (a crash would show here). */
  unexpected: number;
}

const BIOS_BOOT_LINE = 'Booting from Hard Disk';

/** Reads a serial log: a destination's holds 'B's only; a source's the BIOS banner first. */
export function parseGuestSerial(text: string): GuestSerial {
  const boot = text.lastIndexOf(BIOS_BOOT_LINE);
  // SeaBIOS ends the line with dots and no newline: the guest's first character follows them.
  const guest = boot === -1 ? text : text.slice(boot + BIOS_BOOT_LINE.length).replace(/^\.+/, '');
  let starts = 0;
  let passes = 0;
  let unexpected = 0;
  for (const ch of guest) {
    if (ch === 'A') starts++;
    else if (ch === 'B') passes++;
    else unexpected++;
  }
  return { starts, passes, unexpected };
}
