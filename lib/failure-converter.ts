// Loaded by path by the workers (temporal.encryption on): workflow code runs it inside the sandbox,
// activities in the worker's main thread. A failure's message and stack trace move into an encoded payload, so the payload codec
// encrypts them with everything else (a XenAPI error can name a session or a host's secret).
import { DefaultFailureConverter } from '@temporalio/common';

export const failureConverter = new DefaultFailureConverter({ encodeCommonAttributes: true });
