// Nova's os-services (nova/api/openstack/compute/services.py, schemas/services.py): each host of
// temporal.yaml is one nova-compute service. ferry runs no other Nova service, so the list has only
// those. Its state comes from the host inventory (the agents' reports): status enabled/disabled and
// disabled_reason are what the host's xapi holds (host.enabled, the reason in host.other_config),
// state up/down is the inventory's liveness, updated_at the agent's last report. An update runs on
// the host's agent (the hostService workflow: xapi's host.disable / host.enable), so a disabled host
// is refused by xapi itself and skipped by the scheduler, and the state outlives every ferry process.
//   GET /v2.1/os-services                           filters host, binary (unknown ones refused from 2.75)
//   PUT /v2.1/os-services/{service_id}        2.53+ {status, disabled_reason, forced_down}
//   PUT /v2.1/os-services/enable|disable|disable-log-reason   2.1 to 2.52, {host, binary[, disabled_reason]}
//   PUT /v2.1/os-services/force-down          2.11 to 2.52, {host, binary, forced_down}
// The service id is the host's position in temporal.yaml (from 1) below 2.53 and, from 2.53, a UUID
// derived from the host's name (stable whatever the order).
import { createHash } from 'node:crypto';
import type { FastifyPluginAsync } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import type { HostServiceChange, HostServiceState, HostView } from '../../workflows/definitions';
import type { PluginOptions } from '../context';
import { ApiError } from '../errors';
import type { FerryService } from '../ferry-service';
import { atLeast, type Microversion } from '../microversion';
import { novaTime } from '../nova-views';
import { json, routeSchema, type RouteConfig } from '../route';

export const COMPUTE_BINARY = 'nova-compute';
/** Nova's default_availability_zone: ferry has no aggregates. */
const ZONE = 'nova';

/** The 2.53+ id of a host's nova-compute service: a name-based UUID (RFC 4122 version 5 layout), stable per host. */
export function serviceUuid(host: string): string {
  const h = createHash('sha1').update(`ferry:nova-compute:${host}`).digest();
  h[6] = ((h[6] as number) & 0x0f) | 0x50;
  h[8] = ((h[8] as number) & 0x3f) | 0x80;
  const hex = h.subarray(0, 16).toString('hex');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20, 32)}`;
}

const ServiceSchema = z
  .object({
    id: z.union([z.uuid(), z.number().int()]).meta({ description: 'A UUID from 2.53 (stable per host); below, the host\'s position in temporal.yaml.' }),
    binary: z.string(),
    host: z.string(),
    zone: z.string(),
    status: z.enum(['enabled', 'disabled']),
    state: z.enum(['up', 'down']),
    updated_at: z.string().nullable().meta({ description: "The host agent's last report (Nova's service heartbeat)." }),
    disabled_reason: z.string().nullable(),
    forced_down: z.boolean().optional().meta({ description: '2.11+.' }),
  })
  .strict()
  .meta({ id: 'NovaService' });
type ServiceOut = z.infer<typeof ServiceSchema>;

const ActionResultSchema = z
  .object({
    service: z.union([
      z.object({ host: z.string(), binary: z.string(), status: z.enum(['enabled', 'disabled']), disabled_reason: z.string().optional() }).strict(),
      z.object({ host: z.string(), binary: z.string(), forced_down: z.boolean() }).strict(),
    ]),
  })
  .strict();

/** Nova's parameter_types.boolean. */
const TRUE_STRINGS = ['True', 'TRUE', 'true', '1', 'ON', 'On', 'on', 'YES', 'Yes', 'yes'];
const FALSE_STRINGS = ['False', 'FALSE', 'false', '0', 'OFF', 'Off', 'off', 'NO', 'No', 'no'];
const NovaBoolean = z
  .union([z.boolean(), z.enum([...TRUE_STRINGS, ...FALSE_STRINGS] as [string, ...string[]])])
  .transform((v) => v === true || TRUE_STRINGS.includes(String(v)));
const Reason = z.string().min(1).max(255);

/**
 * The 2.53 body: Nova's schema has no required field and checks the rest in code (400 for nothing to
 * update, or a reason with status enabled); here those rules are the schema's, so that every body the
 * document allows is one Nova accepts.
 */
const UpdateBody = z.union([
  z.object({ status: z.literal('disabled'), disabled_reason: Reason.optional(), forced_down: NovaBoolean.optional() }).strict(),
  z.object({ status: z.literal('enabled'), forced_down: NovaBoolean.optional() }).strict(),
  z.object({ forced_down: NovaBoolean }).strict(),
]);

const Fqdn = z.string().min(1).max(255).regex(/^[a-zA-Z0-9-._]*$/);
const Binary = z.string().min(1).max(255);
/** The body of the actions before 2.53 (schemas/services.py update and update_v211). */
const ActionBody = z.object({ host: Fqdn, binary: Binary, disabled_reason: Reason.optional(), forced_down: NovaBoolean.optional() }).strict();
const ReasonBody = z.object({ host: Fqdn, binary: Binary, disabled_reason: Reason, forced_down: NovaBoolean.optional() }).strict();
const ForceDownBody = z.object({ host: Fqdn, binary: Binary, disabled_reason: Reason.optional(), forced_down: NovaBoolean }).strict();

/** Below 2.75 Nova lets unknown query parameters through; from 2.75 they are a 400. */
const ListQuery = z
  .looseObject({
    host: z.string().optional().meta({ description: 'Only this host\'s service (an empty value: every host).' }),
    binary: z.string().optional().meta({ description: 'Only services of this binary: ferry has only nova-compute.' }),
  });

function serviceId(config: { hosts: { name: string }[] }, host: string, v: Microversion): string | number {
  return atLeast(v, 53) ? serviceUuid(host) : config.hosts.findIndex((h) => h.name === host) + 1;
}

/** One host's nova-compute service as Nova's _get_service_detail shows it; `state` overrides the report with what xapi just answered. */
function serviceOut(id: string | number, host: HostView, v: Microversion, state?: HostServiceState): ServiceOut {
  const enabled = state?.enabled ?? host.enabled;
  const forcedDown = state?.forcedDown ?? host.forcedDown ?? false;
  const reportedAt = (host as HostView & { reportedAt?: string | null }).reportedAt ?? null;
  const out: ServiceOut = {
    id,
    binary: COMPUTE_BINARY,
    host: host.name,
    zone: ZONE,
    status: enabled ? 'enabled' : 'disabled',
    state: host.up && !forcedDown ? 'up' : 'down',
    updated_at: reportedAt ? novaTime(reportedAt) : null,
    disabled_reason: enabled ? null : ((state ? state.disabledReason : host.disabledReason) ?? null),
  };
  if (atLeast(v, 11)) out.forced_down = forcedDown;
  return out;
}

function unexpected(names: string[]): ApiError {
  const named = names.map((n) => `'${n}'`).join(', ');
  return new ApiError('bad_request', `Invalid input for query parameters: Additional properties are not allowed (${named} ${names.length === 1 ? 'was' : 'were'} unexpected)`);
}

async function hostOf(service: FerryService, name: string): Promise<HostView> {
  const host = (await service.describeCluster({ fresh: true })).hosts.find((h) => h.name === name);
  if (!host) throw new ApiError('not_found', `Could not find binary ${COMPUTE_BINARY} on host ${name}.`);
  return host;
}

const LIST: RouteConfig = { role: 'read', family: 'nova' };
const UPDATE: RouteConfig = { role: 'operator', family: 'nova', versions: { min: '2.53' } };
const ACTION: RouteConfig = { role: 'operator', family: 'nova', versions: { min: '2.1', max: '2.52' } };
const FORCE_DOWN: RouteConfig = { role: 'operator', family: 'nova', versions: { min: '2.11', max: '2.52' } };

export const novaServiceRoutes: FastifyPluginAsync<PluginOptions> = async (fastify, { ctx }) => {
  const app = fastify.withTypeProvider<ZodTypeProvider>();
  const { service, config } = ctx;
  const tags = ['nova'];

  app.route({
    method: 'GET',
    url: '/v2.1/os-services',
    config: { ferry: LIST },
    schema: routeSchema(
      LIST,
      {
        operationId: 'novaListServices',
        summary: "Each host's nova-compute service: enabled or disabled (and why), up or down, from the host inventory.",
        description:
          'status and disabled_reason are what the host\'s xapi holds (host.enabled; the reason in host.other_config), state is the ' +
          "inventory's liveness (the agent's reports), updated_at the last report. id: an integer below 2.53, a UUID from 2.53; " +
          'forced_down from 2.11. Filters host and binary match exactly (an empty one is no filter); other parameters are ignored ' +
          'below 2.75 and a 400 naming them from 2.75, as in Nova.',
        tags,
      },
      { querystring: ListQuery },
      { 200: json('Services.', z.object({ services: z.array(ServiceSchema) }).strict()) },
      { backend: true, more: { 400: 'From 2.75: an unknown query parameter (named).' } },
    ),
    handler: async (req) => {
      const { host, binary, ...rest } = req.query;
      if (atLeast(req.microversion, 75) && Object.keys(rest).length > 0) throw unexpected(Object.keys(rest));
      const cluster = await service.describeCluster();
      const services = cluster.hosts
        .filter((h) => config.hosts.some((c) => c.name === h.name))
        .filter((h) => !host || h.name === host)
        .filter(() => !binary || binary === COMPUTE_BINARY)
        .map((h) => serviceOut(serviceId(config, h.name, req.microversion), h, req.microversion));
      return { services };
    },
  });

  app.route({
    method: 'PUT',
    url: '/v2.1/os-services/:service_id',
    config: { ferry: UPDATE },
    schema: routeSchema(
      UPDATE,
      {
        operationId: 'novaUpdateService',
        summary: "Enable or disable a host's nova-compute service (with a reason), or force it down; answers the service.",
        description:
          "Done by the host's agent in xapi (host.disable with auto_enable false, or host.enable; the reason in host.other_config), " +
          'so xapi refuses new VMs there and the scheduler skips the host until it is enabled again, across restarts. ' +
          'disabled_reason only with status disabled; a body must name status or forced_down (Nova checks both in code). ' +
          'A forced-down host counts as down. 409 when the host\'s agent does not do it (it is down).',
        tags,
      },
      { params: z.object({ service_id: z.uuid().meta({ description: 'The service UUID from GET /os-services (2.53+).' }) }), body: UpdateBody },
      { 200: json('The service after the update.', z.object({ service: ServiceSchema }).strict()) },
      { backend: true, more: { 404: 'No such service.', 409: "The host's agent did not do it: the message says why." } },
    ),
    handler: async (req) => {
      const name = config.hosts.find((h) => serviceUuid(h.name) === req.params.service_id.toLowerCase())?.name;
      if (!name) throw new ApiError('not_found', `Service ${req.params.service_id} could not be found.`);
      const body = req.body;
      const change: HostServiceChange = {};
      if ('status' in body) {
        change.enabled = body.status === 'enabled';
        if (body.status === 'disabled') change.disabledReason = body.disabled_reason ?? null;
      }
      if (body.forced_down !== undefined) change.forcedDown = body.forced_down;
      const state = await service.updateHostService(name, change);
      return { service: serviceOut(serviceUuid(name), await hostOf(service, name), req.microversion, state) };
    },
  });

  /** The actions before 2.53: the service named by host and binary in the body. */
  const action = (url: string, routeConfig: RouteConfig, operationId: string, summary: string, body: typeof ActionBody, apply: (b: z.output<typeof ActionBody>) => HostServiceChange) =>
    app.route({
      method: 'PUT',
      url,
      config: { ferry: routeConfig },
      schema: routeSchema(
        routeConfig,
        { operationId, summary, description: 'Identified by host and binary; only nova-compute services can be updated (400 otherwise, as Nova).', tags },
        { body },
        { 200: json('What was set.', ActionResultSchema) },
        { backend: true, more: { 400: 'Invalid body, or a binary other than nova-compute.', 404: 'No such host.', 409: "The host's agent did not do it." } },
      ),
      handler: async (req) => {
        const b = req.body as z.output<typeof ActionBody>;
        if (!atLeast(req.microversion, 11) && (req.body as Record<string, unknown>).forced_down !== undefined) {
          throw new ApiError('bad_request', "Invalid input for field/attribute: Additional properties are not allowed ('forced_down' was unexpected)");
        }
        if (b.binary !== COMPUTE_BINARY) {
          throw new ApiError('bad_request', `Updating a ${b.binary} service is not supported. Only ${COMPUTE_BINARY} services can be updated.`);
        }
        await hostOf(service, b.host);
        const change = apply(b);
        await service.updateHostService(b.host, change);
        if (change.enabled === undefined) return { service: { host: b.host, binary: b.binary, forced_down: change.forcedDown ?? false } };
        const reason = change.enabled ? null : (change.disabledReason ?? null);
        return { service: { host: b.host, binary: b.binary, status: change.enabled ? ('enabled' as const) : ('disabled' as const), ...(reason ? { disabled_reason: reason } : {}) } };
      },
    });

  action('/v2.1/os-services/enable', ACTION, 'novaEnableService', 'Enable scheduling to a host (before 2.53).', ActionBody, () => ({ enabled: true }));
  action('/v2.1/os-services/disable', ACTION, 'novaDisableService', 'Disable scheduling to a host, without a reason (before 2.53).', ActionBody, () => ({ enabled: false, disabledReason: null }));
  action('/v2.1/os-services/disable-log-reason', ACTION, 'novaDisableServiceLogReason', 'Disable scheduling to a host with a reason (before 2.53).', ReasonBody as unknown as typeof ActionBody, (b) => ({
    enabled: false,
    disabledReason: b.disabled_reason ?? null,
  }));
  action('/v2.1/os-services/force-down', FORCE_DOWN, 'novaForceDownService', 'Set or unset forced_down (2.11 to 2.52).', ForceDownBody as unknown as typeof ActionBody, (b) => ({
    forcedDown: b.forced_down ?? false,
  }));
};

