// Exit codes of `ferry`, for scripts. Documented in docs/api.md; do not renumber.
export const EXIT = {
  /** The command did what was asked (a watched migration completed). */
  ok: 0,
  /** A watched migration ended failed, cancelled or in error. */
  migrationFailed: 1,
  /** Bad command line, or the API rejected the request as invalid (400). */
  usage: 2,
  /** No such migration, instance or host (404). */
  notFound: 3,
  /** Conflict or refusal (409): already migrating, not abortable now, already finished. */
  conflict: 4,
  /** The API cannot be reached, or it cannot reach Temporal (5xx). */
  unreachable: 5,
  /** No token, a wrong token, or a token without the operator role (401, 403). */
  unauthorized: 6,
} as const;

export type ExitCode = (typeof EXIT)[keyof typeof EXIT];

export function exitCodeForStatus(status: number): ExitCode {
  if (status === 400 || status === 406 || status === 415) return EXIT.usage;
  if (status === 401 || status === 403) return EXIT.unauthorized;
  if (status === 404) return EXIT.notFound;
  if (status === 409) return EXIT.conflict;
  return EXIT.unreachable;
}
