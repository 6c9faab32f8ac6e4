// The xapi XML-RPC envelope (DESIGN section 3): POST on any path, always HTTP 200 with
// {Status: "Success", Value} or {Status: "Failure", ErrorDescription: [code, ...params]},
// never an XML-RPC <fault>. JS numbers go out as <double> (int64 values are strings already).
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { Readable } from 'node:stream';
// The package ships these modules without typings of their own.
// eslint-disable-next-line @typescript-eslint/no-require-imports
const Deserializer = require('xmlrpc/lib/deserializer') as new () => {
  deserializeMethodCall(stream: Readable, cb: (err: Error | null, method: string, params: unknown[]) => void): void;
};
// eslint-disable-next-line @typescript-eslint/no-require-imports
const Serializer = require('xmlrpc/lib/serializer') as { serializeMethodResponse(v: unknown): string };
// eslint-disable-next-line @typescript-eslint/no-require-imports
const CustomType = require('xmlrpc/lib/customtype') as new (raw: unknown) => object;
import { XenApiError } from '../xenapi/errors';

class XmlRpcDouble extends CustomType {
  tagName = 'double';
}

/** An XML-RPC <int> (xapi's int32 values, e.g. event.from's valid_ref_counts); other numbers go out as <double>. */
export class XmlRpcInt extends CustomType {
  tagName = 'int';
  constructor(n: number) {
    super(String(Math.trunc(n)));
  }
}

function encodeNumbers(v: unknown): unknown {
  if (typeof v === 'number') return new XmlRpcDouble(String(v));
  if (v instanceof CustomType) return v;
  if (Array.isArray(v)) return v.map(encodeNumbers);
  if (v && typeof v === 'object' && !(v instanceof Date) && !Buffer.isBuffer(v)) {
    return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, encodeNumbers(x)]));
  }
  return v;
}

export type Dispatch = (method: string, params: unknown[]) => Promise<unknown>;

export interface XmlRpcServerHooks {
  /** Frozen: requests are accepted and never answered (until thawed). */
  isFrozen(): boolean;
  /** Extra latency per call, ms. */
  delayMs(): number;
  onFrozenRelease(cb: () => void): void;
}

export function createXmlRpcServer(dispatch: Dispatch, hooks: XmlRpcServerHooks, onError: (err: unknown) => void): Server {
  const handle = async (req: IncomingMessage, res: ServerResponse) => {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const body = Buffer.concat(chunks);
    if (hooks.isFrozen()) {
      // Like a host that accepted the connection and hung: hold it until thawed.
      await new Promise<void>((r) => hooks.onFrozenRelease(r));
    }
    const delay = hooks.delayMs();
    if (delay > 0) await new Promise((r) => setTimeout(r, delay));
    let envelope: unknown;
    try {
      const [method, params] = await new Promise<[string, unknown[]]>((resolve, reject) => {
        new Deserializer().deserializeMethodCall(Readable.from([body]), (err, m, p) => (err ? reject(err) : resolve([m, p])));
      });
      const value = await dispatch(method, params);
      envelope = { Status: 'Success', Value: value === undefined ? '' : value };
    } catch (err) {
      if (!(err instanceof XenApiError)) onError(err);
      const description =
        err instanceof XenApiError ? err.errorDescription : ['INTERNAL_ERROR', (err as Error)?.message ?? String(err)];
      envelope = { Status: 'Failure', ErrorDescription: description };
    }
    const xml = Serializer.serializeMethodResponse(encodeNumbers(envelope));
    res.writeHead(200, { 'Content-Type': 'text/xml', 'Content-Length': Buffer.byteLength(xml) });
    res.end(xml);
  };
  const server = createServer((req, res) => {
    handle(req, res).catch((err) => {
      onError(err);
      if (!res.headersSent) res.writeHead(200, { 'Content-Type': 'text/xml' });
      res.end();
    });
  });
  server.keepAliveTimeout = 5_000;
  return server;
}
