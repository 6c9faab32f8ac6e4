import { createServer } from 'node:net';

// Ports below Linux's ephemeral range (32768 and up by default): a port taken from the ephemeral
// range can be handed to some outgoing connection as its local port while a simulated host is
// down, and the host could not listen on it again after a restart.
const LOW = 20_000;
const HIGH = 32_000;
/** "ip:port" pairs handed out by this process. */
const handedOut = new Set<string>();

/** Whether a server could listen on ip:port now (default 127.0.0.1; any 127/8 address is loopback on Linux). */
export function canListen(port: number, ip = '127.0.0.1'): Promise<boolean> {
  return new Promise((resolveListen) => {
    const server = createServer();
    server.once('error', () => resolveListen(false));
    server.listen(port, ip, () => server.close(() => resolveListen(true)));
  });
}

/** Claims ip:port when it is free and not handed out before by this process. */
export async function claimPort(port: number, ip = '127.0.0.1'): Promise<boolean> {
  const key = `${ip}:${port}`;
  if (handedOut.has(key) || !(await canListen(port, ip))) return false;
  handedOut.add(key);
  return true;
}

/** A free loopback port on `ip` (default 127.0.0.1), not handed out before by this process. */
export async function freePort(ip = '127.0.0.1'): Promise<number> {
  for (let attempt = 0; attempt < 200; attempt++) {
    const port = LOW + Math.floor(Math.random() * (HIGH - LOW));
    if (await claimPort(port, ip)) return port;
  }
  throw new Error(`no free port between ${LOW} and ${HIGH} on ${ip}`);
}
