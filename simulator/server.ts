// Starts one simulated host in this process: XML-RPC, data and admin servers on loopback.
import type { Server } from 'node:http';
import type { Server as NetServer } from 'node:net';
import { createAdminServer } from './admin';
import { createDispatcher } from './dispatch';
import { SimHost } from './host';
import type { HostOptions } from './options';
import { createDataServer } from './receiver';
import { createXmlRpcServer } from './xmlrpc-server';

export interface RunningHost {
  host: SimHost;
  close(): Promise<void>;
}

function listen(server: Server | NetServer, port: number): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => resolve());
  });
}

export async function startSimHost(opts: HostOptions, onCrash: () => void = () => process.exit(137)): Promise<RunningHost> {
  const host = new SimHost(opts);
  const dispatch = createDispatcher(host);
  const xmlrpc = createXmlRpcServer(
    dispatch,
    { isFrozen: () => host.faults.frozen, delayMs: () => host.faults.delayMs, onFrozenRelease: (cb) => host.faults.onThaw(cb) },
    (err) => host.log.error({ err }, 'XML-RPC call failed unexpectedly'),
  );
  const data = createDataServer(host);
  const admin = createAdminServer(host, () => {
    // A crash is sudden: no goodbye to clients, guests die (their memory is gone), the database
    // file keeps what was last written, as a host's disk would.
    host.log.warn('crash requested: halting every VM and exiting');
    host.haltAllForCrash();
    onCrash();
  });
  await listen(xmlrpc, opts.xenapiPort);
  await listen(data, opts.dataPort);
  await listen(admin, opts.adminPort);
  const stopWatching = host.watchPeers();
  host.log.info({ xenapiPort: opts.xenapiPort, dataPort: opts.dataPort, adminPort: opts.adminPort }, 'simulated host ready');
  return {
    host,
    close: async () => {
      stopWatching();
      host.haltAllForCrash();
      host.save();
      for (const s of [xmlrpc, data, admin]) {
        (s as Server).closeAllConnections?.();
        await new Promise<void>((r) => s.close(() => r()));
      }
    },
  };
}
