// The dom0 plugin `migration` (host.call_plugin(host, "migration", fn, args)), with the names and
// arguments of Nova's (os-xenapi dom0/etc/xapi.d/plugins/migration.py and utils.py), moving real
// bytes with real rsync over the cluster's real sshd (simulator/sshd.ts):
//   transfer_vhd {instance_uuid, host, vdi_uuid, sr_path, seq_num}   on the source host: hard-links
//     the VDI's file into a staging directory inside the SR as <seq_num>.<ext>, then
//     `rsync -a --partial --inplace --stats` of it to root@<host>:/images/instance<instance_uuid>/.
//   move_vhds_into_sr {instance_uuid, sr_path, uuid_stack}   on the destination host: renames the
//     staged <n>.<ext> to <uuid>.<ext> (uuids popped from the end of uuid_stack, a JSON array),
//     links each file to the next as its parent (vhd-util modify -p), moves them into the SR and
//     removes the staging directory; the caller then runs SR.scan.
//   remove_staged_vhds {instance_uuid}   ferry's addition, on the destination: removes what was staged
//     for the instance (a rollback before move_vhds_into_sr). Idempotent.
// Where it differs from Nova's: arguments are plain strings (uuid_stack a JSON array) instead of a
// pickled `params`, answers are JSON, the files are the simulator's .img/.cow (vdi-chain.ts) rather
// than .vhd, "/images" of a host is <stateDir>/<host>/images (reached as
// <stateDir>/by-address/<address>/images), sr_path /var/run/sr-mount/<SR uuid> is mapped to the
// SR's directory, the rsync is limited to the host's link bandwidth, a second identical
// transfer_vhd joins the running one instead of starting another, and the answer of transfer_vhd
// carries rsync's --stats (literal and matched bytes: a resumed transfer sends fewer).
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, linkSync, mkdtempSync, readdirSync, readlinkSync, realpathSync, renameSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { XenApiCode, XenApiError } from '../xenapi/errors';
import type { CallContext } from './api';
import type { SimHost } from './host';
import { hostDirByAddress, migrationAddress } from './options';
import { sshCommand } from './sshd';
import { DiskChain, findDiskFile, writeCowHeader } from './vdi-chain';

export const MIGRATION_PLUGIN_FUNCTIONS = ['transfer_vhd', 'move_vhds_into_sr', 'remove_staged_vhds'];

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const SR_MOUNT = /^\/var\/run\/sr-mount\/([0-9a-f-]{36})\/?$/;
const STAGED = /^(\d+)\.(img|cow)$/;
/** Nova passes the instance uuid, or <uuid>_ephemeral_<n> for an ephemeral disk's chain (vm_utils.migrate_vhd). */
const CHAIN_LABEL = /^[0-9A-Za-z][0-9A-Za-z_-]{0,127}$/;

function failure(fn: string, cls: string, message: string): XenApiError {
  return new XenApiError(XenApiCode.XENAPI_PLUGIN_FAILURE, [fn, cls, message]);
}

function arg(fn: string, args: Record<string, unknown>, name: string, pattern?: RegExp): string {
  const v = args[name];
  if (typeof v !== 'string') throw failure(fn, 'TypeError', `argument ${name} must be a string, got ${v === undefined ? 'nothing' : typeof v}`);
  if (pattern && !pattern.test(v)) throw failure(fn, 'ValueError', `argument ${name} is not valid: ${JSON.stringify(v)}`);
  return v;
}

/** The directory of the SR at sr_path (/var/run/sr-mount/<SR uuid>), which must be plugged on this host (a PBD). */
function srDirOf(fn: string, host: SimHost, srPath: string): { dir: string; srRef: string } {
  const m = SR_MOUNT.exec(srPath);
  if (!m) throw failure(fn, 'ValueError', `sr_path must be /var/run/sr-mount/<SR uuid>, got ${JSON.stringify(srPath)}`);
  const s = host.store;
  const srRef = s.find('SR', (r) => r.uuid === m[1])[0];
  const plugged = srRef && s.find('PBD', (r) => r.SR === srRef && r.host === host.hostRef && r.currently_attached === true).length > 0;
  if (!srRef || !plugged) throw failure(fn, 'OSError', `[Errno 2] No such file or directory: '${srPath}' (no SR ${m[1]} is plugged on ${host.name})`);
  return { dir: host.pool.srDir(srRef), srRef };
}

/** What rsync --stats reported. */
export interface RsyncStats {
  literalBytes: number;
  matchedBytes: number;
  sentBytes: number;
  fileBytes: number;
}

function parseStats(out: string): RsyncStats {
  const num = (label: string) => {
    const m = new RegExp(`${label}: ([\\d,]+)`).exec(out);
    return m ? Number((m[1] as string).replace(/,/g, '')) : 0;
  };
  return { literalBytes: num('Literal data'), matchedBytes: num('Matched data'), sentBytes: num('Total bytes sent'), fileBytes: num('Total file size') };
}

interface Transfer {
  key: string;
  proc?: ChildProcess;
  done: Promise<string>;
  /** Set when a task.cancel asked for the end: the failure is TASK_CANCELLED then. */
  cancelledBy?: string;
  /** Async.host.call_plugin tasks following this transfer: their progress is rsync's. */
  tasks: Set<string>;
}

/** Running transfers per host (each identified by what it moves where). */
const running = new WeakMap<SimHost, Map<string, Transfer>>();

function transfersOf(host: SimHost): Map<string, Transfer> {
  let m = running.get(host);
  if (!m) {
    m = new Map();
    running.set(host, m);
  }
  return m;
}

/** Admin fault: SIGKILL every rsync this host runs for transfer_vhd (the transfers fail; a retry resumes). */
export function killTransfers(host: SimHost): number {
  let n = 0;
  for (const t of transfersOf(host).values()) {
    if (t.proc && t.proc.exitCode === null && t.proc.signalCode === null) {
      t.proc.kill('SIGKILL');
      n++;
    }
  }
  return n;
}

/**
 * The host crashed: the rsyncs it sends die, and so do the rsync servers writing into its /images
 * (sshd runs them outside the simulator; they are found by their working directory, which rsync's
 * receiver sets to its destination). What arrived stays, as on a disk after a power loss.
 */
export function cutTransfers(host: SimHost): void {
  killTransfers(host);
  let pids: string[];
  let images: string;
  try {
    images = realpathSync(host.imagesDir);
    pids = readdirSync('/proc').filter((p) => /^\d+$/.test(p));
  } catch {
    return;
  }
  for (const pid of pids) {
    try {
      const cwd = readlinkSync(`/proc/${pid}/cwd`);
      if (cwd === images || cwd.startsWith(`${images}/`)) process.kill(Number(pid), 'SIGKILL');
    } catch {
      // gone, or not ours to read
    }
  }
}

/** The transfers this host runs now (admin GET /transfers). */
export function runningTransfers(host: SimHost): string[] {
  return [...transfersOf(host).keys()];
}

function transferVhd(host: SimHost, args: Record<string, unknown>, ctx?: CallContext): Promise<string> {
  const fn = 'transfer_vhd';
  const instanceUuid = arg(fn, args, 'instance_uuid', CHAIN_LABEL);
  const destAddress = arg(fn, args, 'host', /^\d{1,3}(\.\d{1,3}){3}$/);
  const vdiUuid = arg(fn, args, 'vdi_uuid', UUID);
  const seqNum = arg(fn, args, 'seq_num', /^\d+$/);
  const { dir } = srDirOf(fn, host, arg(fn, args, 'sr_path'));
  const key = `${instanceUuid}/${seqNum}/${vdiUuid}->${destAddress}`;
  const transfers = transfersOf(host);
  const joined = transfers.get(key);
  const t: Transfer = joined ?? { key, done: Promise.resolve(''), tasks: new Set() };
  if (!joined) {
    t.done = runRsync(host, t, { instanceUuid, destAddress, vdiUuid, seqNum, dir }).finally(() => transfers.delete(key));
    transfers.set(key, t);
  }
  if (ctx?.taskRef) {
    // Async.host.call_plugin: the task can be cancelled while rsync runs (the rsync is killed).
    const taskRef = ctx.taskRef;
    t.tasks.add(taskRef);
    host.pool.store.update('task', taskRef, { allowed_operations: ['cancel'] });
    host.pool.cancelHandlers.set(taskRef, () => {
      t.cancelledBy = taskRef;
      t.proc?.kill('SIGTERM');
    });
  }
  return t.done.then(
    (answer) => answer,
    (err: unknown) => {
      if (t.cancelledBy && ctx?.taskRef === t.cancelledBy) throw new XenApiError(XenApiCode.TASK_CANCELLED, [t.cancelledBy]);
      throw err;
    },
  );
}

async function runRsync(host: SimHost, t: Transfer, a: { instanceUuid: string; destAddress: string; vdiUuid: string; seqNum: string; dir: string }): Promise<string> {
  const fn = 'transfer_vhd';
  const file = findDiskFile(a.dir, a.vdiUuid);
  if (!file) throw failure(fn, 'OSError', `[Errno 2] No such file or directory: '${a.vdiUuid}' in the SR`);
  const bytes = statSync(file.path).size;
  // utils.make_staging_area / prepare_staging_area: a directory inside the SR with a hard link.
  const staging = mkdtempSync(join(a.dir, 'tmp'));
  const started = performance.now();
  try {
    linkSync(file.path, join(staging, `${a.seqNum}.${file.kind === 'cow' ? 'cow' : 'img'}`));
    const own = [host.opts.ip, migrationAddress(host.opts)].includes(a.destAddress);
    const destDir = `${join(hostDirByAddress(host.pool.opts.stateDir, a.destAddress), 'images', `instance${a.instanceUuid}`)}/`;
    const ssh = host.pool.opts.ssh;
    if (!own && !ssh) throw failure(fn, 'SubprocessException', `no SSH access to ${a.destAddress} is configured (the simulator was started without sshd)`);
    const kibps = Math.max(1, Math.floor(host.link.bandwidthBytesPerS / 1024));
    // os-xenapi _rsync_vhds: rsync -av --progress [-e ssh] staging/ root@host:/images/instance<uuid>/ (no SSH to itself).
    // --partial and --inplace: the receiver writes into the staged file itself, so whatever arrived
    // stays there even when the receiver dies at once (a crashed destination: no chance to keep a
    // temporary file), and the next run sends only the rest (rsync's delta against it).
    const cmd = ['-a', '--partial', '--inplace', '--stats', '--info=progress2', `--bwlimit=${kibps}`, ...(own ? [] : ['-e', sshCommand(ssh as NonNullable<typeof ssh>).join(' ')]), `${staging}/`, own ? destDir : `root@${a.destAddress}:${destDir}`];
    host.log.info({ instance: a.instanceUuid, vdi: a.vdiUuid, seq: a.seqNum, to: a.destAddress, bytes }, 'plugin migration.transfer_vhd: rsync starts');
    const { code, signal, stdout, stderr } = await new Promise<{ code: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string }>((resolve, reject) => {
      const proc = spawn('rsync', cmd, { stdio: ['ignore', 'pipe', 'pipe'] });
      t.proc = proc;
      let out = '';
      let err = '';
      let shown = 0;
      proc.stdout.on('data', (c: Buffer) => {
        const text = c.toString();
        out = (out + text).slice(-20_000);
        // --info=progress2: "  12,345,678  42%  8.00MB/s  0:00:01" lines, carriage-returned.
        const pct = [...text.matchAll(/\s(\d{1,3})%\s/g)].at(-1)?.[1];
        if (pct !== undefined && Number(pct) / 100 > shown) {
          shown = Math.min(0.99, Number(pct) / 100);
          for (const task of t.tasks) if (host.store.has('task', task) && host.store.raw('task', task).status === 'pending') host.store.update('task', task, { progress: shown });
        }
      });
      proc.stderr.on('data', (c: Buffer) => (err = (err + c.toString()).slice(-4000)));
      proc.once('error', reject);
      proc.once('close', (c, s) => resolve({ code: c, signal: s, stdout: out, stderr: err }));
    });
    if (code !== 0) {
      const said = [...new Set(stderr.split('\n').map((l) => l.trim()).filter(Boolean))].join(' | ').slice(0, 800);
      throw failure(fn, 'SubprocessException', `rsync to ${a.destAddress} ended with ${code ?? signal}: ${said}`);
    }
    const stats = parseStats(stdout);
    const seconds = (performance.now() - started) / 1000;
    host.log.info({ instance: a.instanceUuid, vdi: a.vdiUuid, ...stats, seconds }, 'plugin migration.transfer_vhd: done');
    return JSON.stringify({ instance_uuid: a.instanceUuid, vdi_uuid: a.vdiUuid, seq_num: a.seqNum, host: a.destAddress, bytes, literal_bytes: stats.literalBytes, matched_bytes: stats.matchedBytes, sent_bytes: stats.sentBytes, seconds });
  } finally {
    rmSync(staging, { recursive: true, force: true });
  }
}

function moveVhdsIntoSr(host: SimHost, args: Record<string, unknown>): string {
  const fn = 'move_vhds_into_sr';
  const instanceUuid = arg(fn, args, 'instance_uuid', CHAIN_LABEL);
  const { dir } = srDirOf(fn, host, arg(fn, args, 'sr_path'));
  let stack: unknown;
  try {
    stack = JSON.parse(arg(fn, args, 'uuid_stack'));
  } catch {
    throw failure(fn, 'ValueError', 'uuid_stack must be a JSON array of uuids');
  }
  if (!Array.isArray(stack) || !stack.every((u) => typeof u === 'string' && UUID.test(u))) throw failure(fn, 'ValueError', 'uuid_stack must be a JSON array of uuids');
  const uuids = [...(stack as string[])];
  const staging = join(host.imagesDir, `instance${instanceUuid}`);
  const leafUuid = uuids.at(-1) as string | undefined;
  if (!existsSync(staging)) {
    // Already moved (a retry after the answer was lost): the leaf (first uuid popped) is in the SR.
    if (leafUuid && findDiskFile(dir, leafUuid)) return JSON.stringify({ root: { uuid: leafUuid } });
    throw failure(fn, 'OSError', `[Errno 2] No such file or directory: '/images/instance${instanceUuid}'`);
  }
  // utils._validate_sequenced_vhds: 0..n-1 without a gap (rsync's hidden temporaries are ignored).
  const staged = new Map<number, string>();
  for (const name of readdirSync(staging)) {
    const m = STAGED.exec(name);
    if (m) staged.set(Number(m[1]), name);
  }
  const files: { name: string; kind: 'img' | 'cow'; uuid: string }[] = [];
  for (let seq = 0; seq < staged.size; seq++) {
    const name = staged.get(seq);
    if (!name) throw failure(fn, 'Exception', `Corrupt image. Expected seq number: ${seq}. Files: ${[...staged.values()].join(', ')}`);
    const uuid = uuids.pop();
    if (!uuid) throw failure(fn, 'IndexError', 'pop from empty list (uuid_stack is shorter than the staged disks)');
    files.push({ name, kind: name.endsWith('.cow') ? 'cow' : 'img', uuid });
  }
  if (!files.length) throw failure(fn, 'Exception', `no disk is staged in /images/instance${instanceUuid}`);
  // Rename (0, 1 .. N) -> <uuid>, then relink each to the next (base last): vhd-util modify -p.
  for (const f of files) renameSync(join(staging, f.name), join(staging, `${f.uuid}.${f.kind}`));
  files.forEach((f, i) => {
    const parent = files[i + 1];
    if (f.kind === 'cow') {
      if (!parent) throw failure(fn, 'Exception', `the base ${f.name} is a delta whose parent was not transferred`);
      writeCowHeader(join(staging, `${f.uuid}.cow`), { parent: parent.uuid });
    } else if (parent) {
      throw failure(fn, 'Exception', `disk ${f.name} is a whole disk and cannot have a parent`);
    }
  });
  // utils._validate_vdi_chain: the leaf's chain opens end to end.
  DiskChain.open(staging, (files[0] as { uuid: string }).uuid).close();
  for (const f of files) renameSync(join(staging, `${f.uuid}.${f.kind}`), join(dir, `${f.uuid}.${f.kind}`));
  rmSync(staging, { recursive: true, force: true });
  const root = (files[0] as { uuid: string }).uuid;
  host.log.info({ instance: instanceUuid, disks: files.map((f) => f.uuid) }, 'plugin migration.move_vhds_into_sr');
  return JSON.stringify({ root: { uuid: root } });
}

/**
 * ferry's addition (Nova has none: a resize that failed after a transfer left /images/instance<uuid>
 * on the destination): removes what transfer_vhd staged for the instance on this host. Idempotent.
 */
function removeStagedVhds(host: SimHost, args: Record<string, unknown>): string {
  const fn = 'remove_staged_vhds';
  const instanceUuid = arg(fn, args, 'instance_uuid', CHAIN_LABEL);
  const staging = join(host.imagesDir, `instance${instanceUuid}`);
  const existed = existsSync(staging);
  rmSync(staging, { recursive: true, force: true });
  host.log.info({ instance: instanceUuid, existed }, 'plugin migration.remove_staged_vhds');
  return JSON.stringify({ removed: existed });
}

/** What is staged in this host's /images (admin GET /state): directory -> files. */
export function stagedFiles(host: SimHost): Record<string, string[]> {
  const out: Record<string, string[]> = {};
  try {
    for (const d of readdirSync(host.imagesDir)) out[d] = readdirSync(join(host.imagesDir, d));
  } catch {
    // no /images yet
  }
  return out;
}

export async function callMigrationPlugin(host: SimHost, fn: string, args: Record<string, unknown>, ctx?: CallContext): Promise<string> {
  if (fn === 'transfer_vhd') return transferVhd(host, args, ctx);
  if (fn === 'remove_staged_vhds') return removeStagedVhds(host, args);
  return moveVhdsIntoSr(host, args);
}
