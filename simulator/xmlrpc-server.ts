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
const dateFormatter = require('xmlrpc/lib/date_formatter') as { encodeIso8601(d: Date): string };
// eslint-disable-next-line @typescript-eslint/no-require-imports
const CustomType = require('xmlrpc/lib/customtype') as new (raw: unknown) => object;
import { XenApiError } from '../xenapi/errors';

/** An XML-RPC <int> (xapi's int32 values, e.g. event.from's valid_ref_counts); other numbers go out as <double>. */
export class XmlRpcInt extends CustomType {
  tagName = 'int';
  constructor(n: number) {
    super(String(Math.trunc(n)));
  }
}

const escapeXml = (s: string) => s.replace(/[&<>]/g, (c) => (c === '&' ? '&amp;' : c === '<' ? '&lt;' : '&gt;'));

/**
 * One XML-RPC value, as the xmlrpc package writes it except that every JS number is a <double>
 * (int64 values travel as strings; xapi's int32 as XmlRpcInt). Written by hand: the package's
 * xmlbuilder took milliseconds per answer, a large share of a migration's cost in the simulator.
 */
function writeValue(v: unknown, out: string[]): void {
  out.push('<value>');
  if (typeof v === 'string') out.push(v ? `<string>${escapeXml(v)}</string>` : '<string/>');
  else if (typeof v === 'number') out.push(`<double>${v}</double>`);
  else if (typeof v === 'boolean') out.push(`<boolean>${v ? 1 : 0}</boolean>`);
  else if (v === null || v === undefined) out.push('<nil/>');
  else if (v instanceof Date) out.push(`<dateTime.iso8601>${dateFormatter.encodeIso8601(v)}</dateTime.iso8601>`);
  else if (Buffer.isBuffer(v)) out.push(`<base64>${v.toString('base64')}</base64>`);
  else if (v instanceof CustomType) {
    const c = v as { tagName: string; raw: unknown };
    out.push(`<${c.tagName}>${escapeXml(String(c.raw))}</${c.tagName}>`);
  } else if (Array.isArray(v)) {
    out.push('<array><data>');
    for (const x of v) writeValue(x, out);
    out.push('</data></array>');
  } else {
    out.push('<struct>');
    for (const [k, x] of Object.entries(v as Record<string, unknown>)) {
      if (x === undefined) continue;
      out.push(`<member><name>${escapeXml(k)}</name>`);
      writeValue(x, out);
      out.push('</member>');
    }
    out.push('</struct>');
  }
  out.push('</value>');
}

export function serializeMethodResponse(value: unknown): string {
  const out = ['<?xml version="1.0"?><methodResponse><params><param>'];
  writeValue(value, out);
  out.push('</param></params></methodResponse>');
  return out.join('');
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
    const xml = serializeMethodResponse(envelope);
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
