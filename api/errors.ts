// Errors the API answers with. One class, two renderings: Nova's (`{"itemNotFound": {"code": 404,
// "message": ...}}`) under /v2.1 and at /, ferry's own (`{"error": {"code": "not_found", "status": 404,
// "message": ...}}`) everywhere else. Every error body carries a code and a message.
import { z } from 'zod';

export type ErrorKind =
  | 'bad_request'
  | 'unauthorized'
  | 'forbidden'
  | 'not_found'
  | 'method_not_allowed'
  | 'not_acceptable'
  | 'conflict'
  | 'unsupported_media_type'
  | 'internal'
  | 'unavailable';

const STATUS: Record<ErrorKind, number> = {
  bad_request: 400,
  unauthorized: 401,
  forbidden: 403,
  not_found: 404,
  method_not_allowed: 405,
  not_acceptable: 406,
  conflict: 409,
  unsupported_media_type: 415,
  internal: 500,
  unavailable: 503,
};

/** Nova's fault names (nova/api/openstack/wsgi.py Fault._error_names; others are computeFault). */
const NOVA_FAULT: Partial<Record<number, string>> = {
  400: 'badRequest',
  401: 'unauthorized',
  403: 'forbidden',
  404: 'itemNotFound',
  405: 'badMethod',
  409: 'conflictingRequest',
  413: 'overLimit',
  415: 'badMediaType',
  429: 'overLimit',
  501: 'notImplemented',
  503: 'serviceUnavailable',
};

export class ApiError extends Error {
  override name = 'ApiError';
  readonly status: number;
  constructor(
    readonly kind: ErrorKind,
    message: string,
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
    this.status = STATUS[kind];
  }
}

export const badRequest = (message: string) => new ApiError('bad_request', message);
export const notFound = (message: string) => new ApiError('not_found', message);
export const conflict = (message: string) => new ApiError('conflict', message);
export const unavailable = (message: string) => new ApiError('unavailable', message);

export function kindForStatus(status: number): ErrorKind {
  const found = (Object.entries(STATUS) as [ErrorKind, number][]).find(([, s]) => s === status);
  if (found) return found[0];
  return status >= 500 ? 'internal' : 'bad_request';
}

export function novaFaultName(status: number): string {
  return NOVA_FAULT[status] ?? 'computeFault';
}

export function novaErrorBody(status: number, message: string): Record<string, { code: number; message: string }> {
  return { [novaFaultName(status)]: { code: status, message } };
}

export function v1ErrorBody(kind: ErrorKind, status: number, message: string): V1Error {
  return { error: { code: kind, status, message } };
}

export const V1ErrorSchema = z
  .object({
    error: z.object({
      code: z.string().meta({ description: 'Machine-readable error code, e.g. not_found, conflict.' }),
      status: z.number().int(),
      message: z.string(),
    }),
  })
  .meta({ id: 'Error', description: "ferry's error body." });
export type V1Error = z.infer<typeof V1ErrorSchema>;

export const NovaErrorSchema = z
  .record(z.string(), z.object({ code: z.number().int(), message: z.string() }))
  .meta({
    id: 'NovaError',
    description: 'Nova error body: one key naming the fault (badRequest, itemNotFound, conflictingRequest, ...).',
  });

/** Turns a zod error into one readable line naming the fields. */
export function describeZodError(error: z.ZodError): string {
  return error.issues
    .map((issue) => {
      const path = issue.path.map(String).join('.');
      return path ? `${path}: ${issue.message}` : issue.message;
    })
    .join('; ');
}
