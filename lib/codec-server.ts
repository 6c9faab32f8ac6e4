// Temporal's remote codec protocol, for those who hold the key: the web UI (started with
// --ui-codec-endpoint) and `temporal ... --codec-endpoint` POST {payloads: [...]} (each payload in
// proto3 JSON form: metadata values and data in base64) to /encode or /decode and get the same shape
// back. CORS lets the web UI's origin call it (the UI sends X-Namespace, and Authorization when it
// passes a token); with codecServer.authTokenEnv every POST must carry that token.
import { timingSafeEqual } from 'node:crypto';
import type { Payload, PayloadCodec } from '@temporalio/common';
import Fastify, { type FastifyInstance } from 'fastify';
import { z } from 'zod';
import type { Logger } from './logger';

const JsonPayload = z.object({
  metadata: z.record(z.string(), z.string()).nullish(),
  data: z.string().nullish(),
});
// An empty list arrives as `{}` (protojson omits empty repeated fields: an update or signal without arguments).
const Body = z.object({ payloads: z.array(JsonPayload).default([]) }).strict();
type JsonPayload = z.infer<typeof JsonPayload>;

function fromJson({ metadata, data }: JsonPayload): Payload {
  return {
    metadata: Object.fromEntries(Object.entries(metadata ?? {}).map(([k, v]) => [k, Buffer.from(v, 'base64')])),
    data: data ? Buffer.from(data, 'base64') : undefined,
  };
}

function toJson({ metadata, data }: Payload): JsonPayload {
  return {
    metadata: Object.fromEntries(Object.entries(metadata ?? {}).map(([k, v]) => [k, Buffer.from(v).toString('base64')])),
    data: data ? Buffer.from(data).toString('base64') : undefined,
  };
}

export interface CodecServerOptions {
  codec: PayloadCodec;
  /** Origins whose pages may call the endpoint (the web UI's). */
  corsOrigins: string[];
  /** Required in Authorization (`Bearer <token>` or the bare token); omitted: no auth. */
  authToken?: string;
  logger?: Logger;
}

function sameSecret(given: string, expected: string): boolean {
  const a = Buffer.from(given);
  const b = Buffer.from(expected);
  return a.length === b.length && timingSafeEqual(a, b);
}

export function buildCodecServer(options: CodecServerOptions): FastifyInstance {
  // No request logging: a request's body is exactly what must not reach a log.
  const app = Fastify({ logger: false, bodyLimit: 16 * 1024 * 1024 });
  const origins = new Set(options.corsOrigins);

  app.addHook('onRequest', async (request, reply) => {
    const origin = request.headers.origin;
    if (origin && origins.has(origin)) {
      reply.header('Access-Control-Allow-Origin', origin);
      reply.header('Access-Control-Allow-Credentials', 'true');
      reply.header('Vary', 'Origin');
    }
    if (request.method === 'OPTIONS') {
      reply.header('Access-Control-Allow-Methods', 'POST, OPTIONS');
      reply.header('Access-Control-Allow-Headers', 'Content-Type, X-Namespace, Authorization');
      reply.header('Access-Control-Max-Age', '600');
      return reply.code(204).send();
    }
    if (request.method === 'POST' && options.authToken) {
      const given = (request.headers.authorization ?? '').replace(/^Bearer\s+/i, '');
      if (!sameSecret(given, options.authToken)) return reply.code(401).send({ error: 'unauthorized' });
    }
  });

  app.get('/healthz', async () => ({ ok: true }));

  for (const op of ['encode', 'decode'] as const) {
    app.post(`/${op}`, async (request, reply) => {
      const parsed = Body.safeParse(request.body);
      if (!parsed.success) return reply.code(400).send({ error: 'the body must be {"payloads": [{"metadata": {...}, "data": "..."}]}' });
      try {
        const payloads = await options.codec[op](parsed.data.payloads.map(fromJson));
        return { payloads: payloads.map(toJson) };
      } catch (err) {
        options.logger?.warn({ op, namespace: request.headers['x-namespace'], error: (err as Error).message }, 'codec request failed');
        return reply.code(400).send({ error: (err as Error).message });
      }
    });
  }
  return app;
}
