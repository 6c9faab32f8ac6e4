// ferry's /v1 API over fetch: JSON calls that turn error bodies into ApiCallErrors, and the
// Server-Sent Events stream of a migration's progress.
import type { MigrationStatusView } from '../workflows/definitions';

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

export interface SseEvent {
  event: string;
  data: unknown;
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
    try {
      const body = JSON.parse(text) as { error?: { code?: string; message?: string } };
      if (body.error?.message) return new ApiCallError(res.status, body.error.code ?? String(res.status), body.error.message);
    } catch {
      // not JSON: fall through
    }
    return new ApiCallError(res.status, String(res.status), text.slice(0, 200) || res.statusText);
  }

  async request<T>(method: 'GET' | 'POST' | 'DELETE', path: string, body?: unknown): Promise<{ status: number; body: T; headers: Headers }> {
    const res = await this.fetch(path, {
      method,
      body: body === undefined ? undefined : JSON.stringify(body),
      headers: body === undefined ? {} : { 'content-type': 'application/json' },
    });
    if (!res.ok) throw await FerryApiClient.failure(res);
    const text = await res.text();
    return { status: res.status, body: (text ? JSON.parse(text) : null) as T, headers: res.headers };
  }

  get<T>(path: string): Promise<T> {
    return this.request<T>('GET', path).then((r) => r.body);
  }

  /** Yields the events of /v1/migrations/{id}/events until the server ends the stream. */
  async *events(id: string, signal?: AbortSignal): AsyncGenerator<SseEvent> {
    const res = await this.fetch(`/v1/migrations/${encodeURIComponent(id)}/events`, { method: 'GET', json: false, signal });
    if (!res.ok) throw await FerryApiClient.failure(res);
    if (!res.body) return;
    const decoder = new TextDecoder();
    let buffer = '';
    for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
      buffer += decoder.decode(chunk, { stream: true });
      let end: number;
      while ((end = buffer.indexOf('\n\n')) >= 0) {
        const block = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        const event = parseSseBlock(block);
        if (event) yield event;
      }
    }
  }
}

export function parseSseBlock(block: string): SseEvent | null {
  let event = 'message';
  const data: string[] = [];
  for (const line of block.split('\n')) {
    if (line.startsWith(':') || line === '') continue;
    const colon = line.indexOf(':');
    const field = colon < 0 ? line : line.slice(0, colon);
    const value = colon < 0 ? '' : line.slice(colon + 1).replace(/^ /, '');
    if (field === 'event') event = value;
    else if (field === 'data') data.push(value);
  }
  if (data.length === 0) return null;
  const text = data.join('\n');
  try {
    return { event, data: JSON.parse(text) as unknown };
  } catch {
    return { event, data: text };
  }
}

export type { MigrationStatusView };
