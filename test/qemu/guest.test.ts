// The counting guest under real QEMU: it boots from the boot sector ferry builds, writes 'A' once
// and a 'B' per pass, and its pass counter in memory grows; QMP and the process manager see it.
import { afterAll, describe, expect, it } from 'vitest';
import { join } from 'node:path';
import { buildGuestBootSector, parseGuestSerial, REGION_START } from '../../qemu/guest';
import { GuestNotRunningError, pidIfRunning, QemuGuest } from '../../qemu/process';
import { QmpClient, QmpCommandError, QmpUnavailableError } from '../../qemu/qmp';
import { guestCounters, passCounter, QemuLab, readSerial, waitForPasses } from './helpers';

describe('the counting guest', () => {
  const lab = new QemuLab();
  afterAll(() => lab.cleanup());

  it('builds a boot sector with its parameters patched in', () => {
    const sector = buildGuestBootSector({ regionMiB: 16, delayLoops: 1234 });
    expect(sector.length).toBe(512);
    expect(sector.readUInt16LE(510)).toBe(0xaa55);
    expect(sector.readUInt32LE(0x63)).toBe(1234);
    expect(sector.readUInt32LE(0x53)).toBe(0x100000 + 16 * 1024 * 1024);
    expect(() => buildGuestBootSector({ regionMiB: 0, delayLoops: 0 })).toThrow(RangeError);
  });

  it('reads a serial log after the BIOS banner', () => {
    expect(parseGuestSerial('SeaBIOS (version 1)\r\nBooting from Hard Disk..ABBB')).toEqual({ starts: 1, passes: 3, unexpected: 0 });
    expect(parseGuestSerial('BBBB')).toEqual({ starts: 0, passes: 4, unexpected: 0 });
  });

  it('boots under TCG, counts on COM1 and in memory, and is found again from its state directory', async () => {
    const guest = await lab.startGuest('count');
    const first = await waitForPasses(guest, 20);
    expect(first.starts).toBe(1);
    expect(first.unexpected).toBe(0);
    expect(await guest.runState()).toBe('running');
    const counters = await guestCounters(guest);
    const counter = counters.passes;
    expect(counter).toBeGreaterThanOrEqual(first.passes);
    // Every page of every pass counted (32 MiB: 8192 pages a pass), the current pass in part (the
    // vCPU runs on while pmemsave copies the two words: a pass may end between them).
    expect(counters.pageWrites).toBeGreaterThanOrEqual(counter * 8192);
    expect(counters.pageWrites).toBeLessThan((counter + 2) * 8192);
    await waitForPasses(guest, first.passes + 20);
    expect(await passCounter(guest)).toBeGreaterThan(counter);

    // An agent restart: drop the connection, find the process again through its pidfile and QMP.
    guest.detach();
    const again = await QemuGuest.attach(guest.stateDir);
    expect(again.pid).toBe(guest.pid);
    expect(await again.runState()).toBe('running');

    await again.stop();
    expect(await pidIfRunning(guest.stateDir)).toBeNull();
    await expect(QemuGuest.attach(guest.stateDir)).rejects.toBeInstanceOf(GuestNotRunningError);
    expect((await readSerial(guest)).starts).toBe(1);
  });

  it('speaks QMP: errors keep their class, a second client gets no greeting while the first is connected', async () => {
    const guest = await lab.startGuest('qmp', { regionMiB: 4, delayLoops: 0 });
    expect(guest.qmp.greeting.version.qemu.major).toBeGreaterThanOrEqual(7);
    const err = await guest.qmp.execute('no-such-command').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(QmpCommandError);
    expect((err as QmpCommandError).errorClass).toBe('CommandNotFound');
    // QEMU serves one QMP client per socket: the agent must be the only one.
    await expect(QmpClient.connect(guest.files.qmp, { timeoutMs: 500 })).rejects.toBeInstanceOf(QmpUnavailableError);
    // The first connection still works, and an event arrives on it.
    const stopped = guest.qmp.waitForEvent('STOP', () => true, 5_000);
    await guest.qmp.execute('stop');
    expect((await stopped).event).toBe('STOP');
    expect(await guest.runState()).toBe('paused');
    // The same through the async iterator, which ends when its signal aborts.
    const stop = new AbortController();
    const seen: string[] = [];
    const reading = (async () => {
      for await (const event of guest.qmp.events(AbortSignal.any([stop.signal, AbortSignal.timeout(5_000)]))) {
        seen.push(event.event);
        if (event.event === 'RESUME') stop.abort();
      }
    })();
    await guest.qmp.execute('cont');
    await reading;
    expect(seen).toContain('RESUME');
    await guest.stop();
    await expect(guest.qmp.execute('query-status')).rejects.toBeInstanceOf(QmpUnavailableError);
  });

  it('fills its whole region on the first pass, even when it then hardly dirties anything', async () => {
    const guest = await lab.startGuest('idle', { regionMiB: 8, delayLoops: 0xffffffff });
    await waitForPasses(guest, 1);
    const region = await guest.saveMemory(REGION_START, 8 * 1024 * 1024, join(lab.root, 'idle.mem'));
    const touched = Array.from({ length: region.length / 4096 }, (_, page) => region[page * 4096]);
    // Every page written once; the slow second pass may have reached its first page.
    expect(touched.filter((value) => value !== 1)).toEqual(touched[0] === 2 ? [2] : []);
    expect((await readSerial(guest)).passes).toBe(1);
    await guest.stop();
  });
});
