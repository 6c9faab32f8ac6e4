// Typed XenAPI records, parsed with zod. Only the fields ferry reads are listed; every schema is
// loose (unknown fields pass through) so a newer xapi with more fields still parses.
// int64 fields travel as strings (DESIGN section 3) and stay strings here: use BigInt/Number at
// the point of arithmetic.
import { z } from 'zod';

export const Ref = z.string().regex(/^OpaqueRef:/, 'must be an OpaqueRef');
export const NULL_REF = 'OpaqueRef:NULL';
const Int64 = z.string().regex(/^-?\d+$/, 'int64 as a decimal string');
const StringMap = z.record(z.string(), z.string());

export const PoolRecord = z.looseObject({
  uuid: z.string(),
  name_label: z.string(),
  master: Ref,
  default_SR: Ref,
  other_config: StringMap,
});

export const HostRecord = z.looseObject({
  uuid: z.string(),
  name_label: z.string(),
  name_description: z.string(),
  enabled: z.boolean(),
  address: z.string(),
  API_version_major: Int64,
  API_version_minor: Int64,
  software_version: StringMap,
  cpu_info: StringMap,
  metrics: Ref,
  resident_VMs: z.array(Ref),
  PIFs: z.array(Ref),
  other_config: StringMap,
});

export const HostMetricsRecord = z.looseObject({
  uuid: z.string(),
  memory_total: Int64,
  memory_free: Int64,
  live: z.boolean(),
});

export const NetworkRecord = z.looseObject({
  uuid: z.string(),
  name_label: z.string(),
  bridge: z.string(),
  PIFs: z.array(Ref),
  VIFs: z.array(Ref),
  other_config: StringMap,
});

export const PifRecord = z.looseObject({
  uuid: z.string(),
  device: z.string(),
  network: Ref,
  host: Ref,
  MAC: z.string(),
  IP: z.string(),
  management: z.boolean(),
  currently_attached: z.boolean(),
});

export const SrRecord = z.looseObject({
  uuid: z.string(),
  name_label: z.string(),
  type: z.string(),
  shared: z.boolean(),
  content_type: z.string(),
  physical_size: Int64,
  physical_utilisation: Int64,
  VDIs: z.array(Ref),
  other_config: StringMap,
});

export const VdiRecord = z.looseObject({
  uuid: z.string(),
  name_label: z.string(),
  SR: Ref,
  virtual_size: Int64,
  physical_utilisation: Int64,
  type: z.string(),
  sharable: z.boolean(),
  read_only: z.boolean(),
  VBDs: z.array(Ref),
  other_config: StringMap,
});

export const VbdRecord = z.looseObject({
  uuid: z.string(),
  VM: Ref,
  VDI: Ref,
  userdevice: z.string(),
  device: z.string(),
  bootable: z.boolean(),
  mode: z.enum(['RO', 'RW']),
  type: z.enum(['CD', 'Disk', 'Floppy']),
  empty: z.boolean(),
  currently_attached: z.boolean(),
});

export const VifRecord = z.looseObject({
  uuid: z.string(),
  device: z.string(),
  network: Ref,
  VM: Ref,
  MAC: z.string(),
  MTU: Int64,
  currently_attached: z.boolean(),
});

export const PowerState = z.enum(['Halted', 'Paused', 'Running', 'Suspended']);
export type PowerState = z.infer<typeof PowerState>;

export const VmRecord = z.looseObject({
  uuid: z.string(),
  name_label: z.string(),
  name_description: z.string(),
  power_state: PowerState,
  is_a_template: z.boolean(),
  is_a_snapshot: z.boolean(),
  is_control_domain: z.boolean(),
  memory_static_max: Int64,
  memory_dynamic_max: Int64,
  memory_dynamic_min: Int64,
  memory_static_min: Int64,
  memory_target: Int64,
  VCPUs_max: Int64,
  VCPUs_at_startup: Int64,
  VCPUs_params: StringMap,
  domid: Int64,
  resident_on: Ref,
  affinity: Ref,
  VBDs: z.array(Ref),
  VIFs: z.array(Ref),
  allowed_operations: z.array(z.string()),
  current_operations: z.record(z.string(), z.string()),
  other_config: StringMap,
  /** A set of strings (datamodel_vm.ml), changed with VM.add_tags / VM.remove_tags / VM.set_tags. */
  tags: z.array(z.string()),
});

export const TaskStatus = z.enum(['pending', 'success', 'failure', 'cancelling', 'cancelled']);
export type TaskStatus = z.infer<typeof TaskStatus>;

export const TaskRecord = z.looseObject({
  uuid: z.string(),
  name_label: z.string(),
  status: TaskStatus,
  progress: z.number(),
  result: z.string(),
  error_info: z.array(z.string()),
  allowed_operations: z.array(z.string()),
  resident_on: Ref,
  other_config: StringMap,
});

/** Token map returned by host.migrate_receive and passed as `dest` to VM.migrate_send. */
export const MigrateReceiveToken = z.looseObject({
  SM: z.string(),
  host: Ref,
  xenops: z.string(),
  session_id: z.string(),
  master: z.string(),
});

/** One event of event.from: the object's class (lowercase), ref and, for add and mod, its record. */
export const XenEvent = z.looseObject({
  id: z.string(),
  class: z.string(),
  operation: z.enum(['add', 'mod', 'del']),
  ref: z.string(),
  snapshot: z.unknown().optional(),
});

/** What event.from returns (xapi_event.ml): the events, the row count of every class, the next token. */
export const EventBatch = z.looseObject({
  events: z.array(XenEvent),
  valid_ref_counts: z.record(z.string(), z.number()),
  token: z.string(),
});

export type PoolRecord = z.infer<typeof PoolRecord>;
export type HostRecord = z.infer<typeof HostRecord>;
export type HostMetricsRecord = z.infer<typeof HostMetricsRecord>;
export type NetworkRecord = z.infer<typeof NetworkRecord>;
export type PifRecord = z.infer<typeof PifRecord>;
export type SrRecord = z.infer<typeof SrRecord>;
export type VdiRecord = z.infer<typeof VdiRecord>;
export type VbdRecord = z.infer<typeof VbdRecord>;
export type VifRecord = z.infer<typeof VifRecord>;
export type VmRecord = z.infer<typeof VmRecord>;
export type TaskRecord = z.infer<typeof TaskRecord>;
export type MigrateReceiveToken = z.infer<typeof MigrateReceiveToken>;
export type XenEvent = z.infer<typeof XenEvent>;
export type EventBatch = z.infer<typeof EventBatch>;

/** Schema per XenAPI class name, for the client's typed record getters. */
export const recordSchemas = {
  pool: PoolRecord,
  host: HostRecord,
  host_metrics: HostMetricsRecord,
  network: NetworkRecord,
  PIF: PifRecord,
  SR: SrRecord,
  VDI: VdiRecord,
  VBD: VbdRecord,
  VIF: VifRecord,
  VM: VmRecord,
  task: TaskRecord,
} as const;

export type XenApiClass = keyof typeof recordSchemas;
export type RecordOf<C extends XenApiClass> = z.infer<(typeof recordSchemas)[C]>;
