// ferry's /v1 API over fetch: JSON calls checked against the API's own zod schemas (an answer that
// does not match says which field, instead of a TypeError three calls later), error bodies turned
// into ApiCallErrors, and the Server-Sent Events stream of a migration parsed by eventsource-parser.
import { createParser, type EventSourceMessage } from 'eventsource-parser';
import { z } from 'zod';
import { V1ErrorSchema, describeZodError } from '../api/errors';
import { MigrationSchema } from '../api/schemas';
import { MigrationEventSchema, StreamErrorSchema } from '../api/routes/v1-migrations';
import type { Migration } from './render';

export class ApiCallError extends Error {
  override name = 'ApiCallError';
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

/** The API could not be reached at all. */
export class UnreachableError extends Error {
  override name = 'UnreachableError';
}

/** The API answered 2xx with something its own schema does not allow. */
export class UnexpectedAnswerError extends Error {
  override name = 'UnexpectedAnswerError';
}

/** The events of GET /v1/migrations/{id}/events. */
export type MigrationEvent =
  | { event: 'migration' | 'end'; data: Migration }
  | { event: 'error'; data: z.infer<typeof StreamErrorSchema> };

/**
 * Parses one event of the stream: the wire event (MigrationEventSchema: its name and a JSON data
 * line), then its data by the event's name (a Migration, or a StreamError).
 */
export function parseMigrationEvent(message: EventSourceMessage): MigrationEvent {
  const wire = MigrationEventSchema.safeParse({ event: message.event, data: message.data });
  if (!wire.success) throw new UnexpectedAnswerError(`progress stream: an event that is not a MigrationEvent: ${describeZodError(wire.error)}`);
  const { event, data: text } = wire.data;
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch {
    throw new UnexpectedAnswerError(`progress stream: the data of a "${event}" event is not JSON: ${text.slice(0, 200)}`);
  }
  const check = <T>(schema: z.ZodType<T>): T => {
    const parsed = schema.safeParse(data);
    if (!parsed.success) throw new UnexpectedAnswerError(`progress stream: a "${event}" event does not match its schema: ${describeZodError(parsed.error)}`);
    return parsed.data;
  };
  return event === 'error' ? { event, data: check(StreamErrorSchema) } : { event, data: check(MigrationSchema) };
}

/** Every event of a whole progress stream (a finished response's text), parsed and checked. */
export function parseEventStream(text: string): MigrationEvent[] {
  const messages: EventSourceMessage[] = [];
  const parser = createParser({ onEvent: (message) => messages.push(message) });
  parser.feed(text);
  parser.feed('\n\n'); // a last event without its blank line
  return messages.map(parseMigrationEvent);
}

/** One `event:`/`data:` block of a stream (split at blank lines), or null for a comment or nothing. */
export function parseSseBlock(block: string): MigrationEvent | null {
  return parseEventStream(block)[0] ?? null;
}

export class FerryApiClient {
  constructor(
    readonly baseUrl: string,
    private readonly token?: string,
  ) {}

  private headers(json: boolean): Record<string, string> {
    const headers: Record<string, string> = { accept: json ? 'application/json' : 'text/event-stream' };
    if (this.token) headers.authorization = `Bearer ${this.token}`;
    return headers;
  }

  private async fetch(path: string, init: RequestInit & { json?: boolean } = {}): Promise<Response> {
    try {
      return await fetch(new URL(path, this.baseUrl), { ...init, headers: { ...this.headers(init.json !== false), ...(init.headers as Record<string, string>) } });
    } catch (err) {
      const cause = (err as { cause?: { code?: string; message?: string } }).cause;
      throw new UnreachableError(`cannot reach the ferry API at ${this.baseUrl}: ${cause?.code ?? cause?.message ?? (err as Error).message}`);
    }
  }

  private static async failure(res: Response): Promise<ApiCallError> {
    const text = await res.text();
    let body: unknown;
    try {
      body = JSON.parse(text);
    } catch {
      // not JSON: the text itself
    }
    const parsed = V1ErrorSchema.safeParse(body);
    if (parsed.success) return new ApiCallError(res.status, parsed.data.error.code, parsed.data.error.message);
    return new ApiCallError(res.status, String(res.status), text.slice(0, 200) || res.statusText);
  }

  /** Calls the API; a 2xx answer is checked against `schema` and returned as sent (`raw`) and parsed. */
  async request<T>(
    schema: z.ZodType<T>,
    method: 'GET' | 'POST' | 'DELETE',
    path: string,
    body?: unknown,
  ): Promise<{ status: number; body: T; raw: unknown; headers: Headers }> {
    const res = await this.fetch(path, {
      method,
      body: body === undefined ? undefined : JSON.stringify(body),
      headers: body === undefined ? {} : { 'content-type': 'application/json' },
    });
    if (!res.ok) throw await FerryApiClient.failure(res);
    const text = await res.text();
    let raw: unknown;
    try {
      raw = text ? JSON.parse(text) : null;
    } catch {
      throw new UnexpectedAnswerError(`${method} ${path} answered ${res.status} with something that is not JSON: ${text.slice(0, 200)}`);
    }
    const parsed = schema.safeParse(raw);
    if (!parsed.success) {
      throw new UnexpectedAnswerError(`${method} ${path} answered ${res.status} with a body that does not match its schema: ${describeZodError(parsed.error)}`);
    }
    return { status: res.status, body: parsed.data, raw, headers: res.headers };
  }

  get<T>(schema: z.ZodType<T>, path: string): Promise<{ body: T; raw: unknown }> {
    return this.request(schema, 'GET', path);
  }

  /** Yields the events of /v1/migrations/{id}/events until the server ends the stream. */
  async *events(id: string, signal?: AbortSignal): AsyncGenerator<MigrationEvent> {
    const res = await this.fetch(`/v1/migrations/${encodeURIComponent(id)}/events`, { method: 'GET', json: false, signal });
    if (!res.ok) throw await FerryApiClient.failure(res);
    if (!res.body) return;
    const pending: EventSourceMessage[] = [];
    const parser = createParser({ onEvent: (message) => pending.push(message) });
    const decoder = new TextDecoder();
    for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
      parser.feed(decoder.decode(chunk, { stream: true }));
      while (pending.length > 0) yield parseMigrationEvent(pending.shift() as EventSourceMessage);
    }
  }
}
