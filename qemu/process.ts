// QEMU guests as processes, one state directory each, like libvirt's /run/libvirt/qemu: the
// guest's spec (guest.json), QEMU's pidfile, its QMP socket, its serial log and QEMU's own log.
// QEMU daemonizes, so a guest outlives the agent that started it; a restarted agent finds it again
// from the directory (pidfile, then QMP), which is how it resumes following a migration.
import { spawn } from 'node:child_process';
import { mkdir, open, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { z } from 'zod';
import { QmpClient, QmpUnavailableError } from './qmp';

const QEMU = process.env.FERRY_QEMU ?? 'qemu-system-x86_64';
const START_TIMEOUT_MS = 30_000;
const STOP_TIMEOUT_MS = 10_000;
/** A unix socket path has at most 107 bytes on Linux (sun_path). */
const MAX_SOCKET_PATH = 107;

const diskSchema = z.object({
  /** QEMU's block node name (the mirror and the NBD export name it). */
  node: z.string().regex(/^[a-z][a-z0-9-]{0,30}$/),
  path: z.string().min(1),
  format: z.enum(['raw', 'qcow2']),
});
export type GuestDisk = z.infer<typeof diskSchema>;

const specSchema = z.object({
  name: z.string().min(1).max(64),
  memoryMiB: z.number().int().min(4).max(65536),
  /** The first disk boots. */
  disks: z.array(diskSchema).min(1),
  /** QEMU machine type; pinned on both sides of a migration ('pc' is the newest i440fx). */
  machine: z.string().default('pc'),
  /** Started with -incoming defer: a migration's destination, waiting for migrate-incoming. */
  incoming: z.boolean().default(false),
});
export type GuestSpec = z.input<typeof specSchema>;
export type GuestSpecResolved = z.infer<typeof specSchema>;

/** The files of a guest's state directory. */
export function guestFiles(stateDir: string) {
  return {
    spec: join(stateDir, 'guest.json'),
    pid: join(stateDir, 'qemu.pid'),
    qmp: join(stateDir, 'qmp.sock'),
    serial: join(stateDir, 'serial.log'),
    log: join(stateDir, 'qemu.log'),
  };
}

/** QEMU's command line for a spec: TCG, no display or default devices, COM1 to a file, QMP on a socket. */
export function qemuArgs(spec: GuestSpecResolved, stateDir: string): string[] {
  const files = guestFiles(stateDir);
  const args = [
    '-name', spec.name,
    '-accel', 'tcg',
    '-machine', spec.machine,
    '-m', String(spec.memoryMiB),
    '-display', 'none',
    '-nodefaults',
    '-serial', `file:${files.serial}`,
    '-qmp', `unix:${files.qmp},server=on,wait=off`,
    '-daemonize',
    '-pidfile', files.pid,
  ];
  spec.disks.forEach((disk, index) => {
    // libvirt's -blockdev layout: a protocol node under a format node, named so that QMP can
    // mirror and export them.
    args.push('-blockdev', `driver=file,filename=${disk.path},node-name=${disk.node}-file`);
    args.push('-blockdev', `driver=${disk.format},file=${disk.node}-file,node-name=${disk.node}`);
    args.push('-device', `ide-hd,drive=${disk.node},id=${disk.node}-dev${index === 0 ? ',bootindex=0' : ''}`);
  });
  if (spec.incoming) args.push('-incoming', 'defer');
  return args;
}

export class GuestNotRunningError extends Error {
  constructor(stateDir: string, why: string) {
    super(`no QEMU guest runs from ${stateDir}: ${why}`);
    this.name = 'GuestNotRunningError';
  }
}

/** A QEMU process and its QMP connection. */
export class QemuGuest {
  private constructor(
    readonly stateDir: string,
    readonly spec: GuestSpecResolved,
    readonly pid: number,
    readonly qmp: QmpClient,
  ) {}

  get files() {
    return guestFiles(this.stateDir);
  }

  /** Starts QEMU for `spec` in `stateDir` (created; a previous run's files replaced) and connects QMP. */
  static async start(stateDir: string, input: GuestSpec): Promise<QemuGuest> {
    const spec = specSchema.parse(input);
    const files = guestFiles(stateDir);
    if (Buffer.byteLength(files.qmp) > MAX_SOCKET_PATH) throw new RangeError(`state directory ${stateDir} is too long for a unix socket`);
    await mkdir(stateDir, { recursive: true });
    if (await pidIfRunning(stateDir)) throw new Error(`a QEMU guest already runs from ${stateDir}`);
    for (const file of [files.pid, files.qmp, files.serial]) await rm(file, { force: true });
    await writeFile(files.spec, `${JSON.stringify(spec, null, 2)}\n`);
    // QEMU daemonizes once it is initialised: its first process exits 0 then, or non-zero with the
    // reason on stderr (kept in qemu.log).
    const log = await open(files.log, 'a');
    try {
      const status = await new Promise<number | null>((resolve, reject) => {
        const child = spawn(QEMU, qemuArgs(spec, stateDir), { stdio: ['ignore', log.fd, log.fd] });
        const timer = setTimeout(() => child.kill('SIGKILL'), START_TIMEOUT_MS);
        child.once('error', reject);
        child.once('exit', (code) => {
          clearTimeout(timer);
          resolve(code);
        });
      });
      if (status !== 0) {
        const why = (await readFile(files.log, 'utf8').catch(() => '')).trim().split('\n').slice(-3).join(' ');
        throw new Error(`QEMU for ${spec.name} exited with ${status ?? 'a signal'} at start: ${why}`);
      }
    } finally {
      await log.close();
    }
    const guest = await QemuGuest.attach(stateDir);
    return guest;
  }

  /**
   * The guest that runs from `stateDir`, found again (the agent restarted): its pidfile names a
   * live QEMU whose command line holds this directory's QMP socket, and QMP answers.
   */
  static async attach(stateDir: string, { timeoutMs = 10_000 } = {}): Promise<QemuGuest> {
    const files = guestFiles(stateDir);
    const spec = specSchema.parse(JSON.parse(await readFile(files.spec, 'utf8').catch(() => '{}')));
    const pid = await pidIfRunning(stateDir);
    if (pid === null) throw new GuestNotRunningError(stateDir, 'its QEMU process is gone');
    const qmp = await QmpClient.connect(files.qmp, { timeoutMs });
    return new QemuGuest(stateDir, spec, pid, qmp);
  }

  /** Whether the QEMU process still runs. */
  async alive(): Promise<boolean> {
    return (await pidIfRunning(this.stateDir)) === this.pid;
  }

  /** QEMU's run state: running, paused, inmigrate, postmigrate, finish-migrate, prelaunch... */
  async runState(): Promise<string> {
    const status = await this.qmp.query('query-status', z.object({ status: z.string(), running: z.boolean() }));
    return status.status;
  }

  /** Reads guest physical memory through QMP's pmemsave into `file`. */
  async saveMemory(address: number, bytes: number, file: string): Promise<Buffer> {
    await this.qmp.execute('pmemsave', { val: address, size: bytes, filename: file }, { timeoutMs: 60_000 });
    return readFile(file);
  }

  /** Waits until the process has exited (bounded); false when it still runs at the deadline. */
  async waitForExit(timeoutMs = STOP_TIMEOUT_MS): Promise<boolean> {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      if (!(await this.alive())) return true;
      await sleep(25);
    }
    return !(await this.alive());
  }

  /** Ends QEMU: `quit` over QMP, SIGKILL if it has not exited within timeoutMs. Idempotent. */
  async stop(timeoutMs = STOP_TIMEOUT_MS): Promise<void> {
    if (await this.alive()) {
      await this.qmp.execute('quit', undefined, { timeoutMs: 2_000 }).catch((err: unknown) => {
        // QEMU may close the socket before it answers quit.
        if (!(err instanceof QmpUnavailableError)) throw err;
      });
      if (!(await this.waitForExit(timeoutMs))) {
        process.kill(this.pid, 'SIGKILL');
        await this.waitForExit(timeoutMs);
      }
    }
    this.qmp.close();
  }

  /** Disconnects QMP and leaves QEMU running (an agent going away). */
  detach(): void {
    this.qmp.close();
  }
}

/**
 * The pid in `stateDir`'s pidfile when that process is alive and is this directory's QEMU (its
 * command line holds the QMP socket path: a recycled pid is not mistaken for it).
 */
export async function pidIfRunning(stateDir: string): Promise<number | null> {
  const files = guestFiles(stateDir);
  const text = await readFile(files.pid, 'utf8').catch(() => null);
  const pid = text === null ? NaN : Number.parseInt(text.trim(), 10);
  if (!Number.isInteger(pid) || pid <= 0) return null;
  const cmdline = await readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => null);
  if (cmdline === null || !cmdline.split('\0').some((arg) => arg.includes(files.qmp))) return null;
  // A zombie (exited, not yet reaped by its parent) is not running.
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => '');
  if (/\) Z /.test(stat)) return null;
  return pid;
}

/** Ends the guest that runs from `stateDir`, if any, and removes the directory. */
export async function destroyGuest(stateDir: string): Promise<void> {
  const pid = await pidIfRunning(stateDir);
  if (pid !== null) {
    // QMP takes one client at a time: when another holds it, kill the process instead.
    const guest = await QemuGuest.attach(stateDir, { timeoutMs: 2_000 }).catch(() => null);
    if (guest) await guest.stop();
    else {
      process.kill(pid, 'SIGKILL');
      const deadline = Date.now() + STOP_TIMEOUT_MS;
      while ((await pidIfRunning(stateDir)) !== null && Date.now() < deadline) await sleep(25);
    }
  }
  await rm(stateDir, { recursive: true, force: true });
}
