// A real OpenSSH server for the simulated hosts, so that the dom0 `migration` plugin moves disks
// as Nova's did: `rsync -e ssh` from the source host to the destination host (os-xenapi
// dom0/etc/xapi.d/plugins/migration.py). One sshd serves every host: it listens on each host's
// own loopback address (and its migration-network address) on one port, so a transfer to a host
// really connects to that host's address. Keys are generated into the stack's state directory:
// a host key, and a client key pair whose public half is the only authorized key (root login by
// key only, nothing else). Needs /usr/sbin/sshd, ssh-keygen and ssh (Debian openssh-server and
// openssh-client, installed by scripts/install.sh); we run as root here and in CI.
import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { appendFileSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';
import { claimPort, freePort } from '../lib/ports';

export const SSHD = '/usr/sbin/sshd';
/** OpenSSH's MAX_LISTEN_SOCKS: the most ListenAddress lines one sshd takes. */
const MAX_LISTEN_SOCKS = 16;

/** What a host needs to reach the others over SSH (PoolOptions.ssh). */
export interface SshAccess {
  port: number;
  /** The client's private key (authorized on every simulated host). */
  identityFile: string;
}

export interface SshServer extends SshAccess {
  dir: string;
  /** One sshd per 16 addresses. */
  processes: ChildProcess[];
  stop(): Promise<void>;
}

/** The `-e` of rsync (and the options of ssh) that reach a simulated host as root with the stack's key. */
export function sshCommand(access: SshAccess): string[] {
  return ['ssh', '-i', access.identityFile, '-p', String(access.port), '-o', 'StrictHostKeyChecking=no', '-o', 'UserKnownHostsFile=/dev/null', '-o', 'LogLevel=ERROR', '-o', 'BatchMode=yes', '-o', 'ConnectTimeout=10'];
}

function keygen(path: string): void {
  if (!existsSync(path)) execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'ferry-simulator', '-f', path]);
}

/** A port free on every address (each host is on its own address; sshd listens on all of them). */
async function portFreeOnAll(addresses: string[]): Promise<number> {
  for (let attempt = 0; attempt < 20; attempt++) {
    const port = await freePort(addresses[0]);
    const ok = await Promise.all(addresses.slice(1).map((a) => claimPort(port, a)));
    if (ok.every(Boolean)) return port;
  }
  throw new Error(`no port is free on all of ${addresses.length} simulated host addresses`);
}

function accepts(address: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const sock = connect({ host: address, port });
    const done = (ok: boolean) => {
      sock.destroy();
      resolve(ok);
    };
    sock.setTimeout(1000, () => done(false));
    sock.once('connect', () => done(true));
    sock.once('error', () => done(false));
  });
}

/**
 * Generates the keys (once per state directory), writes sshd_config and starts `sshd -D` listening
 * on every address; resolves when it accepts connections (bounded by timeoutMs).
 */
export async function startSshd(opts: { stateDir: string; addresses: string[]; logFile?: string; timeoutMs?: number }): Promise<SshServer> {
  if (!existsSync(SSHD)) throw new Error(`${SSHD} is missing: install Debian's openssh-server (scripts/install.sh does)`);
  const addresses = [...new Set(opts.addresses)];
  if (!addresses.length) throw new Error('sshd needs at least one address');
  const dir = join(opts.stateDir, 'ssh');
  mkdirSync(dir, { recursive: true });
  // Debian's sshd refuses to start without its privilege separation directory.
  mkdirSync('/run/sshd', { recursive: true, mode: 0o755 });
  const hostKey = join(dir, 'ssh_host_ed25519_key');
  const identityFile = join(dir, 'id_ed25519');
  keygen(hostKey);
  keygen(identityFile);
  const authorized = join(dir, 'authorized_keys');
  writeFileSync(authorized, readFileSync(`${identityFile}.pub`), { mode: 0o600 });
  // Every command goes through a gate that refuses it when the host at the address the client
  // connected to is crashed (host.ts writes <host dir>/crashed), as a host without power would.
  const gate = join(dir, 'host-gate.sh');
  writeFileSync(
    gate,
    [
      '#!/bin/sh',
      '# sshd ForceCommand of the simulated hosts (simulator/sshd.ts): $3 of SSH_CONNECTION is the address connected to.',
      'set -- $SSH_CONNECTION',
      `if [ -e "${join(opts.stateDir, 'by-address')}/$3/crashed" ]; then echo "ssh: connect to host $3: host is down (simulated crash)" >&2; exit 255; fi`,
      'exec /bin/sh -c "$SSH_ORIGINAL_COMMAND"',
      '',
    ].join('\n'),
    { mode: 0o755 },
  );
  const port = await portFreeOnAll(addresses);
  // OpenSSH listens on at most 16 sockets per server (MAX_LISTEN_SOCKS): one sshd per 16 addresses.
  const groups: string[][] = [];
  for (let i = 0; i < addresses.length; i += MAX_LISTEN_SOCKS) groups.push(addresses.slice(i, i + MAX_LISTEN_SOCKS));
  const started = await Promise.allSettled(groups.map((group, i) => startOne({ dir, index: i, addresses: group, port, hostKey, authorized, gate, logFile: opts.logFile, timeoutMs: opts.timeoutMs ?? 10_000 })));
  const children = started.flatMap((r) => (r.status === 'fulfilled' ? [r.value] : []));
  const failed = started.find((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (failed) {
    for (const c of children) c.kill('SIGKILL');
    throw failed.reason;
  }
  const stopOne = async (child: ChildProcess) => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise<void>((r) => child.once('exit', () => r()));
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), 3_000);
    await exited;
    clearTimeout(timer);
  };
  return {
    dir,
    port,
    identityFile,
    processes: children,
    async stop() {
      await Promise.all(children.map(stopOne));
    },
  };
}

/** Writes sshd_config<index> for up to 16 addresses and starts that sshd; resolves when it accepts connections. */
async function startOne(o: { dir: string; index: number; addresses: string[]; port: number; hostKey: string; authorized: string; gate: string; logFile?: string; timeoutMs: number }): Promise<ChildProcess> {
  const config = join(o.dir, `sshd_config${o.index}`);
  writeFileSync(
    config,
    [
      ...o.addresses.map((a) => `ListenAddress ${a}:${o.port}`),
      `HostKey ${o.hostKey}`,
      `PidFile ${join(o.dir, `sshd${o.index}.pid`)}`,
      `AuthorizedKeysFile ${o.authorized}`,
      `ForceCommand ${o.gate}`,
      'StrictModes no',
      'PermitRootLogin prohibit-password',
      'PubkeyAuthentication yes',
      'PasswordAuthentication no',
      'KbdInteractiveAuthentication no',
      'UsePAM no',
      'PrintMotd no',
      'X11Forwarding no',
      'AllowTcpForwarding no',
      'MaxStartups 64:30:128',
      'LogLevel ERROR',
      '',
    ].join('\n'),
  );
  const child = spawn(SSHD, ['-D', '-e', '-f', config], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr?.on('data', (c: Buffer) => {
    stderr = (stderr + c.toString()).slice(-2000);
    if (o.logFile) appendFileSync(o.logFile, c);
  });
  const deadline = Date.now() + o.timeoutMs;
  const first = o.addresses[0] as string;
  for (;;) {
    if (child.exitCode !== null || child.signalCode !== null) throw new Error(`sshd exited with ${child.exitCode ?? child.signalCode}: ${stderr.trim() || '(no message)'} (config ${config})`);
    if (await accepts(first, o.port)) return child;
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`sshd did not accept connections on ${first}:${o.port} within ${o.timeoutMs} ms: ${stderr.trim()}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
}
