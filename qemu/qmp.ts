// A small QMP client: JSON objects, one per line, on QEMU's unix socket. QEMU greets, the client
// leaves capabilities negotiation with qmp_capabilities, then each command carries an id its reply
// echoes; events (no id) may arrive between replies. Every call has a deadline. No npm package for
// QMP is kept up to date for Node, and the protocol is this small (qemu docs/interop/qmp-spec.rst).
import { EventEmitter, on } from 'node:events';
import { createConnection, type Socket } from 'node:net';
import { createInterface } from 'node:readline';
import { z } from 'zod';

const DEFAULT_TIMEOUT_MS = 10_000;

const greetingSchema = z.object({
  QMP: z.object({
    version: z.object({
      qemu: z.object({ major: z.number(), minor: z.number(), micro: z.number() }),
      package: z.string(),
    }),
    capabilities: z.array(z.string()),
  }),
});
const replySchema = z.union([
  z.object({ id: z.string(), return: z.unknown() }),
  z.object({ id: z.string().optional(), error: z.object({ class: z.string(), desc: z.string() }) }),
]);
const eventSchema = z.object({
  event: z.string(),
  data: z.record(z.string(), z.unknown()).optional(),
  timestamp: z.object({ seconds: z.number(), microseconds: z.number() }),
});

export type QmpGreeting = z.infer<typeof greetingSchema>['QMP'];
export interface QmpEvent {
  event: string;
  data: Record<string, unknown>;
  /** QEMU's clock when it emitted the event, ms since the epoch. */
  atMs: number;
}

/** QEMU refused a command: its error class (GenericError, CommandNotFound, DeviceNotFound...) and text. */
export class QmpCommandError extends Error {
  constructor(
    readonly command: string,
    readonly errorClass: string,
    readonly desc: string,
  ) {
    super(`QMP ${command}: ${errorClass}: ${desc}`);
    this.name = 'QmpCommandError';
  }
}

/** No answer in time, or the socket closed: QEMU may have exited. */
export class QmpUnavailableError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'QmpUnavailableError';
  }
}

interface Pending {
  command: string;
  resolve: (value: unknown) => void;
  reject: (err: Error) => void;
  timer: NodeJS.Timeout;
}

export class QmpClient {
  private nextId = 1;
  private readonly pending = new Map<string, Pending>();
  private readonly emitter = new EventEmitter();
  private closedReason: string | null = null;

  private constructor(
    private readonly socket: Socket,
    readonly greeting: QmpGreeting,
    readonly socketPath: string,
  ) {
    // Many waiters may watch the same QEMU (a migration's follower and its tests).
    this.emitter.setMaxListeners(100);
  }

  /** Connects, reads the greeting and leaves capabilities negotiation, all within timeoutMs. */
  static async connect(socketPath: string, { timeoutMs = DEFAULT_TIMEOUT_MS } = {}): Promise<QmpClient> {
    const socket = createConnection(socketPath);
    const lines = createInterface({ input: socket, crlfDelay: Infinity });
    // readline re-emits the socket's errors; the socket's own listener below handles them.
    lines.on('error', () => undefined);
    let timer: NodeJS.Timeout | undefined;
    // Until the client owns the socket, every failure rejects this one promise (and is never
    // left unhandled). QEMU serves one QMP client per socket at a time: a second one gets no
    // greeting until the first disconnects, which the deadline turns into an error.
    let fail: (err: Error) => void = () => undefined;
    const onError = (err: Error) => fail(err);
    const onClose = () => fail(new QmpUnavailableError(`QMP ${socketPath}: closed before its greeting`));
    socket.on('error', onError);
    socket.on('close', onClose);
    try {
      const greeting = await new Promise<QmpGreeting>((resolve, reject) => {
        fail = reject;
        timer = setTimeout(() => reject(new QmpUnavailableError(`QMP ${socketPath}: no greeting within ${timeoutMs} ms (QEMU busy, gone, or another client connected)`)), timeoutMs);
        lines.once('line', (line) => {
          try {
            resolve(greetingSchema.parse(JSON.parse(line)).QMP);
          } catch (err) {
            reject(err instanceof Error ? err : new Error(String(err)));
          }
        });
      });
      const client = new QmpClient(socket, greeting, socketPath);
      lines.on('line', (line) => client.onLine(line));
      socket.off('close', onClose);
      fail = (err) => client.onClose(err.message);
      socket.on('close', () => client.onClose('socket closed'));
      await client.execute('qmp_capabilities', undefined, { timeoutMs });
      return client;
    } catch (err) {
      fail = () => undefined;
      socket.destroy();
      throw err;
    } finally {
      clearTimeout(timer);
    }
  }

  get closed(): boolean {
    return this.closedReason !== null;
  }

  /** Runs a command and answers its `return` (unparsed: callers parse with their own schema). */
  execute(command: string, args?: Record<string, unknown>, { timeoutMs = DEFAULT_TIMEOUT_MS } = {}): Promise<unknown> {
    if (this.closedReason !== null) return Promise.reject(new QmpUnavailableError(`QMP ${this.socketPath}: ${this.closedReason}`));
    const id = String(this.nextId++);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new QmpUnavailableError(`QMP ${command}: no reply within ${timeoutMs} ms`));
      }, timeoutMs);
      this.pending.set(id, { command, resolve, reject, timer });
      this.socket.write(`${JSON.stringify({ execute: command, ...(args ? { arguments: args } : {}), id })}\n`);
    });
  }

  /** Runs a command and parses its `return` with `schema`. */
  async query<T>(command: string, schema: z.ZodType<T>, args?: Record<string, unknown>, options?: { timeoutMs?: number }): Promise<T> {
    return schema.parse(await this.execute(command, args, options));
  }

  /** Calls `listener` for every event until the returned function is called. */
  onEvent(listener: (event: QmpEvent) => void): () => void {
    this.emitter.on('event', listener);
    return () => this.emitter.off('event', listener);
  }

  /** Every event from now on, until `signal` aborts or the connection closes. */
  async *events(signal?: AbortSignal): AsyncGenerator<QmpEvent> {
    const closed = new AbortController();
    const stop = () => closed.abort();
    this.emitter.once('close', stop);
    try {
      for await (const [event] of on(this.emitter, 'event', { signal: signal ? AbortSignal.any([signal, closed.signal]) : closed.signal })) {
        yield event as QmpEvent;
      }
    } catch (err) {
      if (!(err instanceof Error && err.name === 'AbortError')) throw err;
    } finally {
      this.emitter.off('close', stop);
    }
  }

  /**
   * The first event named `name` that `match` accepts, from now on: call it before the command
   * that causes the event. Rejects after timeoutMs or when the connection closes.
   */
  waitForEvent(name: string, match: (data: Record<string, unknown>) => boolean = () => true, timeoutMs = DEFAULT_TIMEOUT_MS): Promise<QmpEvent> {
    return new Promise((resolve, reject) => {
      const done = () => {
        clearTimeout(timer);
        this.emitter.off('event', listener);
        this.emitter.off('close', onClose);
      };
      const listener = (event: QmpEvent) => {
        if (event.event !== name || !match(event.data)) return;
        done();
        resolve(event);
      };
      const onClose = (reason: string) => {
        done();
        reject(new QmpUnavailableError(`QMP ${this.socketPath}: ${reason} while waiting for ${name}`));
      };
      const timer = setTimeout(() => {
        done();
        reject(new QmpUnavailableError(`QMP ${this.socketPath}: no ${name} event within ${timeoutMs} ms`));
      }, timeoutMs);
      this.emitter.on('event', listener);
      this.emitter.once('close', onClose);
    });
  }

  close(): void {
    this.socket.end();
    this.socket.destroy();
    this.onClose('closed by ferry');
  }

  private onLine(line: string): void {
    if (line.trim() === '') return;
    let message: unknown;
    try {
      message = JSON.parse(line);
    } catch {
      return;
    }
    const event = eventSchema.safeParse(message);
    if (event.success) {
      const { event: name, data = {}, timestamp } = event.data;
      this.emitter.emit('event', { event: name, data, atMs: timestamp.seconds * 1000 + timestamp.microseconds / 1000 } satisfies QmpEvent);
      return;
    }
    const reply = replySchema.safeParse(message);
    if (!reply.success || reply.data.id === undefined) return;
    const pending = this.pending.get(reply.data.id);
    if (!pending) return; // its caller gave up (timeout)
    this.pending.delete(reply.data.id);
    clearTimeout(pending.timer);
    if ('error' in reply.data) pending.reject(new QmpCommandError(pending.command, reply.data.error.class, reply.data.error.desc));
    else pending.resolve(reply.data.return);
  }

  private onClose(reason: string): void {
    if (this.closedReason !== null) return;
    this.closedReason = reason;
    for (const [id, pending] of this.pending) {
      clearTimeout(pending.timer);
      pending.reject(new QmpUnavailableError(`QMP ${pending.command}: ${reason}`));
      this.pending.delete(id);
    }
    this.emitter.emit('close', reason);
  }
}
