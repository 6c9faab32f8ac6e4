// ferry's XenAPI client over the `xmlrpc` package: one session per client, re-login after
// SESSION_INVALID (a restarted xapi forgets sessions), a timeout on every call, and xapi failures
// turned into XenApiError. A pool member refuses logins with HOST_IS_SLAVE [master address]
// (xapi_session.ml); the client then logs in to the master, as os-xenapi does: the same URL with
// the member's address swapped for the master's, and makes every call there. int64 values are strings both ways (the xmlrpc package would send a JS
// integer as a 32-bit <int>), so callers pass strings for int64 parameters.
import { CustomType, createClient, type Client } from 'xmlrpc';
import { XenApiCode, XenApiError, XenApiTransportError } from './errors';
import { EventBatch, recordSchemas, type RecordOf, type XenApiClass } from './records';

export interface XenApiClientOptions {
  url: string;
  user: string;
  password: string;
  /** Per-call timeout; a call without an answer by then rejects with XenApiTransportError. */
  timeoutMs?: number;
  /** Sent as the originator of session.login_with_password. */
  originator?: string;
}

type XmlRpcValue = unknown;

/** An XML-RPC <double> even for an integral value (the xmlrpc package sends those as <int>). */
class XmlRpcDouble extends CustomType {
  override tagName = 'double';
}

/** The URL with its host swapped for `address`, scheme and port kept (os-xenapi's swap_xapi_host). */
export function swapXapiHost(url: string, address: string): string {
  const u = new URL(url);
  u.hostname = address;
  return u.toString();
}

export class XenApiClient {
  /** Where calls go: the configured URL, or its pool master's after HOST_IS_SLAVE. */
  url: string;
  private rpc: Client;
  private session: string | undefined;
  private loggingIn: Promise<string> | undefined;
  private readonly timeoutMs: number;

  constructor(private readonly options: XenApiClientOptions) {
    this.url = options.url;
    this.timeoutMs = options.timeoutMs ?? 30_000;
    this.rpc = rpcClient(options.url);
  }

  private target(url: string): void {
    this.url = url;
    this.rpc = rpcClient(url);
  }

  /** The current session ref, if logged in. */
  get sessionRef(): string | undefined {
    return this.session;
  }

  async login(): Promise<string> {
    if (!this.loggingIn) {
      this.loggingIn = this.loginFollowingMaster().finally(() => {
        this.loggingIn = undefined;
      });
    }
    this.session = await this.loggingIn;
    return this.session;
  }

  /**
   * Logs in where the configuration points; a member answers HOST_IS_SLAVE with its master's
   * address, and the login goes there. Each fresh login starts from the configured host again, so
   * a pool whose master changed (designate_new_master) is followed too.
   */
  private async loginFollowingMaster(): Promise<string> {
    const credentials = [this.options.user, this.options.password, '2.21', this.options.originator ?? 'ferry'];
    if (this.url !== this.options.url) this.target(this.options.url);
    try {
      return await this.rawCall<string>('session.login_with_password', credentials);
    } catch (err) {
      if (!(err instanceof XenApiError && err.code === XenApiCode.HOST_IS_SLAVE && err.params[0])) throw err;
      this.target(swapXapiHost(this.options.url, err.params[0]));
      return this.rawCall<string>('session.login_with_password', credentials);
    }
  }

  async logout(): Promise<void> {
    const session = this.session;
    this.session = undefined;
    if (session) await this.rawCall('session.logout', [session]).catch(() => undefined);
  }

  /**
   * Calls `method` with the session as first argument (logging in first if needed). On
   * SESSION_INVALID it logs in again and retries once.
   */
  call<T = unknown>(method: string, ...params: XmlRpcValue[]): Promise<T> {
    return this.callWithin<T>(this.timeoutMs, method, params);
  }

  /** The per-call timeout (ms). */
  get callTimeoutMs(): number {
    return this.timeoutMs;
  }

  /**
   * event.from(classes, token, timeout): waits on the server up to `timeoutS` seconds for changes
   * of the subscribed classes ("task", "*") or objects ("task/OpaqueRef:..."); the call itself gets
   * that long plus the client's per-call timeout. Pass back the returned token; "" starts afresh
   * (every current object comes back as an "add").
   */
  async eventFrom(classes: string[], token: string, timeoutS: number): Promise<EventBatch> {
    const value = await this.callWithin(timeoutS * 1000 + this.timeoutMs, 'event.from', [classes, token, new XmlRpcDouble(String(timeoutS))]);
    return EventBatch.parse(value);
  }

  private async callWithin<T>(timeoutMs: number, method: string, params: XmlRpcValue[]): Promise<T> {
    const session = this.session ?? (await this.login());
    try {
      return await this.rawCall<T>(method, [session, ...params], timeoutMs);
    } catch (err) {
      if (err instanceof XenApiError && err.code === XenApiCode.SESSION_INVALID) {
        if (this.session === session) this.session = undefined;
        const fresh = this.session ?? (await this.login());
        return this.rawCall<T>(method, [fresh, ...params], timeoutMs);
      }
      throw err;
    }
  }

  /** A call without a session argument (session.* methods), with the xapi envelope unwrapped. */
  rawCall<T = unknown>(method: string, params: XmlRpcValue[], timeoutMs = this.timeoutMs): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      let settled = false;
      const timer = setTimeout(() => {
        settled = true;
        reject(new XenApiTransportError(`${method}: no answer from ${this.url} within ${timeoutMs} ms`, method, true));
      }, timeoutMs);
      this.rpc.methodCall(method, params, (err: unknown, reply: unknown) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        if (err) {
          reject(new XenApiTransportError(`${method}: ${(err as Error).message ?? String(err)}`, method, false));
          return;
        }
        const envelope = reply as { Status?: string; Value?: unknown; ErrorDescription?: unknown };
        if (envelope?.Status === 'Success') resolve(envelope.Value as T);
        else if (envelope?.Status === 'Failure') reject(XenApiError.fromDescription(envelope.ErrorDescription, method));
        else reject(new XenApiTransportError(`${method}: reply without a xapi Status`, method, false));
      });
    });
  }

  // Typed helpers for the record calls every caller needs.

  async getRecord<C extends XenApiClass>(cls: C, ref: string): Promise<RecordOf<C>> {
    return recordSchemas[cls].parse(await this.call(`${cls}.get_record`, ref)) as RecordOf<C>;
  }

  async getAllRecords<C extends XenApiClass>(cls: C): Promise<Record<string, RecordOf<C>>> {
    return this.parseRecordMap(cls, await this.call(`${cls}.get_all_records`));
  }

  async getAllRecordsWhere<C extends XenApiClass>(cls: C, expr: string): Promise<Record<string, RecordOf<C>>> {
    return this.parseRecordMap(cls, await this.call(`${cls}.get_all_records_where`, expr));
  }

  getByUuid(cls: XenApiClass, uuid: string): Promise<string> {
    return this.call<string>(`${cls}.get_by_uuid`, uuid);
  }

  getByNameLabel(cls: XenApiClass, name: string): Promise<string[]> {
    return this.call<string[]>(`${cls}.get_by_name_label`, name);
  }

  /** host.call_plugin: runs a dom0 plugin function on `hostRef` (args are strings, so is the answer). */
  callPlugin(hostRef: string, plugin: string, fn: string, args: Record<string, string>): Promise<string> {
    return this.call<string>('host.call_plugin', hostRef, plugin, fn, args);
  }

  private parseRecordMap<C extends XenApiClass>(cls: C, value: unknown): Record<string, RecordOf<C>> {
    const out: Record<string, RecordOf<C>> = {};
    for (const [ref, rec] of Object.entries(value as Record<string, unknown>)) {
      out[ref] = recordSchemas[cls].parse(rec) as RecordOf<C>;
    }
    return out;
  }
}

function rpcClient(url: string): Client {
  const u = new URL(url);
  return createClient({ host: u.hostname, port: Number(u.port || (u.protocol === 'https:' ? 443 : 80)), path: u.pathname || '/' });
}
