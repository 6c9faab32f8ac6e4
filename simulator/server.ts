// Starts one simulated pool in this process: its database (pool.ts) and, for each member, a
// XenAPI (XML-RPC), a data and an admin server bound to the member's own loopback address. A
// member's XenAPI and data servers stop accepting connections while it is crashed; every member's
// XenAPI is down while the master is crashed (slaves forward to the master).
import type { Server } from 'node:http';
import type { Server as NetServer, Socket } from 'node:net';
import { createAdminServer } from './admin';
import { createDispatcher } from './dispatch';
import { startWorker } from './hasher';
import type { SimHost } from './host';
import { migrationAddress, validatePool, type PoolOptions } from './options';
import { SimPool } from './pool';
import { createDataServer } from './receiver';
import { createXmlRpcServer } from './xmlrpc-server';

export interface RunningPool {
  pool: SimPool;
  close(): Promise<void>;
}

/** A server that can stop accepting connections (dropping the open ones) and listen again. */
class Switchable {
  private listening = false;
  private readonly sockets = new Set<Socket>();
  private queue: Promise<void> = Promise.resolve();

  constructor(
    private readonly server: Server | NetServer,
    private readonly ip: string,
    private readonly port: number,
    private readonly what: string,
  ) {
    server.on('connection', (socket: Socket) => {
      this.sockets.add(socket);
      socket.on('close', () => this.sockets.delete(socket));
    });
  }

  set(up: boolean): Promise<void> {
    this.queue = this.queue.then(() => (up ? this.open() : this.shut()));
    return this.queue;
  }

  private async open(): Promise<void> {
    if (this.listening) return;
    await new Promise<void>((resolve, reject) => {
      const onError = (err: Error) => reject(new Error(`cannot listen on ${this.ip}:${this.port} (${this.what}): ${err.message}`));
      this.server.once('error', onError);
      this.server.listen(this.port, this.ip, () => {
        this.server.off('error', onError);
        resolve();
      });
    });
    this.listening = true;
  }

  private async shut(): Promise<void> {
    if (!this.listening) return;
    this.listening = false;
    const closed = new Promise<void>((r) => this.server.close(() => r()));
    for (const s of this.sockets) s.destroy();
    await closed;
  }
}

function startMember(host: SimHost): { sync(): Promise<void>; close(): Promise<void> } {
  const o = host.opts;
  const dispatch = createDispatcher(host);
  const xmlrpc = new Switchable(
    createXmlRpcServer(
      dispatch,
      { isFrozen: () => host.faults.frozen, delayMs: () => host.faults.delayMs, onFrozenRelease: (cb) => host.faults.onThaw(cb) },
      (err) => host.log.error({ err }, 'XML-RPC call failed unexpectedly'),
    ),
    o.ip,
    o.xenapiPort,
    `${o.name} XenAPI`,
  );
  const data = new Switchable(createDataServer(host), o.ip, o.dataPort, `${o.name} data`);
  // The same data server on the host's PIF of the storage/migration network (a second address).
  const second = migrationAddress(o);
  const migrationData = second ? new Switchable(createDataServer(host), second, o.dataPort, `${o.name} data on the migration network`) : null;
  const admin = new Switchable(createAdminServer(host), o.ip, o.adminPort, `${o.name} admin`);
  const sync = async () => {
    await Promise.all([xmlrpc.set(host.xenapiUp), data.set(!host.crashed), migrationData?.set(!host.crashed)]);
  };
  host.endpoints = { sync };
  return {
    sync: async () => {
      await sync();
      await admin.set(true);
    },
    close: async () => {
      await Promise.all([xmlrpc.set(false), data.set(false), migrationData?.set(false), admin.set(false)]);
    },
  };
}

export async function startSimPool(opts: PoolOptions): Promise<RunningPool> {
  validatePool(opts);
  startWorker();
  const pool = new SimPool(opts);
  const members = pool.members.map(startMember);
  for (const m of members) await m.sync();
  pool.log.info({ members: opts.members.map((m) => `${m.name}@${m.ip}`), xenapiPort: opts.members[0]?.xenapiPort }, 'simulated pool ready');
  return {
    pool,
    close: async () => {
      for (const h of pool.members) for (const ref of [...h.guests.keys()]) h.dropGuest(ref);
      await pool.flush();
      await Promise.all(members.map((m) => m.close()));
    },
  };
}
