// xapi error codes ferry and the simulator agree on (DESIGN section 3), and the one error class
// that carries them. A XenAPI failure is `{Status: "Failure", ErrorDescription: [code, ...params]}`.

/** Error codes, with their parameters as documented by xapi. */
export const XenApiCode = {
  /** [method] */
  MESSAGE_METHOD_UNKNOWN: 'MESSAGE_METHOD_UNKNOWN',
  /** [method, expected, received] */
  MESSAGE_PARAMETER_COUNT_MISMATCH: 'MESSAGE_PARAMETER_COUNT_MISMATCH',
  /** [handle] */
  SESSION_INVALID: 'SESSION_INVALID',
  /** [user, message] */
  SESSION_AUTHENTICATION_FAILED: 'SESSION_AUTHENTICATION_FAILED',
  /** [class, ref] */
  HANDLE_INVALID: 'HANDLE_INVALID',
  /** [class, uuid] */
  UUID_INVALID: 'UUID_INVALID',
  /** [vm, expected, actual] */
  VM_BAD_POWER_STATE: 'VM_BAD_POWER_STATE',
  /** [needed, available] (bytes, as strings) */
  HOST_NOT_ENOUGH_FREE_MEMORY: 'HOST_NOT_ENOUGH_FREE_MEMORY',
  /** [vdi] */
  VDI_NOT_IN_MAP: 'VDI_NOT_IN_MAP',
  /** [vif] */
  VIF_NOT_IN_MAP: 'VIF_NOT_IN_MAP',
  /** [vm, source, dest, message] */
  VM_MIGRATE_FAILED: 'VM_MIGRATE_FAILED',
  /** [limit] */
  TOO_MANY_STORAGE_MIGRATES: 'TOO_MANY_STORAGE_MIGRATES',
  /** [host] */
  HOST_OFFLINE: 'HOST_OFFLINE',
  /** [host] */
  CANNOT_CONTACT_HOST: 'CANNOT_CONTACT_HOST',
  /** [task] */
  TASK_CANCELLED: 'TASK_CANCELLED',
  /** [vm, sr] */
  VM_REQUIRES_SR: 'VM_REQUIRES_SR',
  /** [vm, host, reason] */
  VM_INCOMPATIBLE_WITH_THIS_HOST: 'VM_INCOMPATIBLE_WITH_THIS_HOST',
  /** [ref, allowed operations, op] */
  OPERATION_NOT_ALLOWED: 'OPERATION_NOT_ALLOWED',
  /** [class, ref, operation, task] (xapi_vm_lifecycle.ml: report_concurrent_operations_error) */
  OTHER_OPERATION_IN_PROGRESS: 'OTHER_OPERATION_IN_PROGRESS',
  /** [master address]: login on a pool member that is not the master (xapi_session.ml) */
  HOST_IS_SLAVE: 'HOST_IS_SLAVE',
  /** [name]: host.call_plugin of a plugin the host does not have */
  XENAPI_MISSING_PLUGIN: 'XENAPI_MISSING_PLUGIN',
  /** [status, stdout, stderr]: a plugin call that failed */
  XENAPI_PLUGIN_FAILURE: 'XENAPI_PLUGIN_FAILURE',
  /** [] */
  NOT_IMPLEMENTED: 'NOT_IMPLEMENTED',
  /** [value] */
  INVALID_VALUE: 'INVALID_VALUE',
  /** [message] */
  INTERNAL_ERROR: 'INTERNAL_ERROR',
  /** [field, value] */
  MAP_DUPLICATE_KEY: 'MAP_DUPLICATE_KEY',
  /** [vm] */
  VM_IS_TEMPLATE: 'VM_IS_TEMPLATE',
  /** [vm, power state] */
  VM_HAS_VBDS_OR_VIFS: 'VM_HAS_VBDS_OR_VIFS',
  /** [vdi, operation]: the VDI is attached to a running VM (xapi_vdi.ml check_operation_error) */
  VDI_IN_USE: 'VDI_IN_USE',
  /** [vdi]: a VDI the system does not manage, e.g. a hidden VHD parent "base copy" (xapi_vdi_helpers.ml assert_managed) */
  VDI_NOT_MANAGED: 'VDI_NOT_MANAGED',
  /** []: not static_min <= dynamic_min <= dynamic_max <= static_max (xapi_vm_memory_constraints.ml) */
  MEMORY_CONSTRAINT_VIOLATION_ORDER: 'MEMORY_CONSTRAINT_VIOLATION_ORDER',
  /** [code, message, ""]: SM's VDISize error (code 79, "VDI Invalid size"), e.g. a VHD shrink */
  SR_BACKEND_FAILURE_79: 'SR_BACKEND_FAILURE_79',
  /** [vm, timeout]: the guest did not shut down within the timeout of VM.clean_shutdown (xapi_xenops.ml, Failed_to_shutdown) */
  VM_SHUTDOWN_TIMEOUT: 'VM_SHUTDOWN_TIMEOUT',
  /** [vdi]: VDI.snapshot of a sharable VDI (xapi_vdi.ml check_operation_error) */
  VDI_IS_SHARABLE: 'VDI_IS_SHARABLE',
  /** [token]: event.from with a token it cannot parse (xapi_event.ml) */
  EVENT_FROM_TOKEN_PARSE_FAILURE: 'EVENT_FROM_TOKEN_PARSE_FAILURE',
} as const;

export type XenApiCodeName = (typeof XenApiCode)[keyof typeof XenApiCode];

/** A XenAPI failure: `code` is ErrorDescription[0], `params` the rest. */
export class XenApiError extends Error {
  override name = 'XenApiError';
  constructor(
    readonly code: string,
    readonly params: string[] = [],
    /** The method whose call failed, when known (for messages and logs). */
    readonly method?: string,
  ) {
    super(`${code}${params.length ? ` [${params.join(', ')}]` : ''}${method ? ` (in ${method})` : ''}`);
  }

  /** The xapi wire form, `[code, ...params]`. */
  get errorDescription(): string[] {
    return [this.code, ...this.params];
  }

  static fromDescription(description: unknown, method?: string): XenApiError {
    const parts = Array.isArray(description) ? description.map((d) => String(d)) : [String(description)];
    return new XenApiError(parts[0] ?? 'INTERNAL_ERROR', parts.slice(1), method);
  }
}

export function isXenApiError(err: unknown, code?: string): err is XenApiError {
  return err instanceof XenApiError && (code === undefined || err.code === code);
}

/** A call that got no answer within its timeout, or whose transport failed (not a xapi failure). */
export class XenApiTransportError extends Error {
  override name = 'XenApiTransportError';
  constructor(
    message: string,
    readonly method: string,
    readonly timedOut: boolean,
  ) {
    super(message);
  }
}
