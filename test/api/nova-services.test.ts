// os-services on the fake service: the list per microversion, the 2.53 update and the actions before it.
import { describe, expect, it } from 'vitest';
import { serviceUuid } from '../../api/routes/nova-services';
import { OPERATOR, READ, serverPerTest } from './helpers';

const server = serverPerTest();
const at = (v: string, token = OPERATOR) => ({ authorization: `Bearer ${token}`, 'openstack-api-version': `compute ${v}` });

describe('os-services', () => {
  it('lists one nova-compute service per host: integer ids below 2.53, UUIDs from 2.53, forced_down from 2.11', async () => {
    const { app } = server();
    const old = await app.inject({ method: 'GET', url: '/v2.1/os-services', headers: at('2.1', READ) });
    expect(old.statusCode).toBe(200);
    const services = old.json().services as Record<string, unknown>[];
    expect(services.map((s) => [s.id, s.host, s.binary, s.status, s.state, s.zone])).toEqual([
      [1, 'xen-a', 'nova-compute', 'enabled', 'up', 'nova'],
      [2, 'xen-b', 'nova-compute', 'enabled', 'up', 'nova'],
    ]);
    expect(services[0]).not.toHaveProperty('forced_down');
    const v253 = (await app.inject({ method: 'GET', url: '/v2.1/os-services?host=xen-b', headers: at('2.53', READ) })).json().services;
    expect(v253).toEqual([expect.objectContaining({ id: serviceUuid('xen-b'), host: 'xen-b', forced_down: false, disabled_reason: null })]);
    expect((await app.inject({ method: 'GET', url: '/v2.1/os-services?binary=nova-scheduler', headers: at('2.53', READ) })).json().services).toEqual([]);
    // Unknown parameters: ignored below 2.75, a 400 naming them from 2.75.
    expect((await app.inject({ method: 'GET', url: '/v2.1/os-services?foo=1', headers: at('2.74', READ) })).statusCode).toBe(200);
    const refused = await app.inject({ method: 'GET', url: '/v2.1/os-services?foo=1', headers: at('2.75', READ) });
    expect(refused.statusCode).toBe(400);
    expect(refused.json().badRequest.message).toContain("'foo'");
  });

  it('2.53: disables with a reason, enables, refuses a reason with enabled and an empty body', async () => {
    const { app, service } = server();
    const url = `/v2.1/os-services/${serviceUuid('xen-b')}`;
    const disabled = await app.inject({ method: 'PUT', url, headers: at('2.53'), payload: { status: 'disabled', disabled_reason: 'firmware' } });
    expect(disabled.statusCode).toBe(200);
    expect(disabled.json().service).toMatchObject({ id: serviceUuid('xen-b'), status: 'disabled', disabled_reason: 'firmware', state: 'up' });
    expect(service.cluster.hosts.find((h) => h.name === 'xen-b')?.enabled).toBe(false);
    const listed = (await app.inject({ method: 'GET', url: '/v2.1/os-services?host=xen-b', headers: at('2.53', READ) })).json().services[0];
    expect(listed).toMatchObject({ status: 'disabled', disabled_reason: 'firmware' });
    expect((await app.inject({ method: 'PUT', url, headers: at('2.53'), payload: { status: 'enabled', disabled_reason: 'x' } })).statusCode).toBe(400);
    expect((await app.inject({ method: 'PUT', url, headers: at('2.53'), payload: {} })).statusCode).toBe(400);
    expect((await app.inject({ method: 'PUT', url, headers: at('2.53', READ), payload: { status: 'enabled' } })).statusCode).toBe(403);
    const enabled = await app.inject({ method: 'PUT', url, headers: at('2.53'), payload: { status: 'enabled' } });
    expect(enabled.json().service).toMatchObject({ status: 'enabled', disabled_reason: null });
    const forced = await app.inject({ method: 'PUT', url, headers: at('2.53'), payload: { forced_down: 'yes' } });
    expect(forced.json().service).toMatchObject({ forced_down: true, state: 'down' });
    expect((await app.inject({ method: 'PUT', url: `/v2.1/os-services/${serviceUuid('nowhere')}`, headers: at('2.53'), payload: { status: 'enabled' } })).statusCode).toBe(404);
    expect((await app.inject({ method: 'PUT', url, headers: at('2.52'), payload: { status: 'enabled' } })).statusCode).toBe(404);
    // A host whose agent is down cannot be changed: xapi holds the state.
    Object.assign(service.cluster.hosts[0] ?? {}, { up: false, downReason: 'its agent last reported 200 s ago' });
    const down = await app.inject({ method: 'PUT', url: `/v2.1/os-services/${serviceUuid('xen-a')}`, headers: at('2.53'), payload: { status: 'disabled' } });
    expect(down.statusCode).toBe(409);
  });

  it('before 2.53: disable, disable-log-reason, enable and force-down by host and binary, as Nova answers them', async () => {
    const { app, service } = server();
    const put = (action: string, payload: object, v = '2.11') => app.inject({ method: 'PUT', url: `/v2.1/os-services/${action}`, headers: at(v), payload });
    const reason = await put('disable-log-reason', { host: 'xen-a', binary: 'nova-compute', disabled_reason: 'kernel' });
    expect(reason.json()).toEqual({ service: { host: 'xen-a', binary: 'nova-compute', status: 'disabled', disabled_reason: 'kernel' } });
    expect(service.cluster.hosts[0]?.enabled).toBe(false);
    expect((await put('disable-log-reason', { host: 'xen-a', binary: 'nova-compute' })).statusCode).toBe(400);
    expect((await put('enable', { host: 'xen-a', binary: 'nova-compute' })).json()).toEqual({ service: { host: 'xen-a', binary: 'nova-compute', status: 'enabled' } });
    expect((await put('disable', { host: 'xen-a', binary: 'nova-compute' })).json()).toEqual({ service: { host: 'xen-a', binary: 'nova-compute', status: 'disabled' } });
    expect((await put('force-down', { host: 'xen-a', binary: 'nova-compute', forced_down: true })).json()).toEqual({ service: { host: 'xen-a', binary: 'nova-compute', forced_down: true } });
    expect((await put('force-down', { host: 'xen-a', binary: 'nova-compute', forced_down: true }, '2.10')).statusCode).toBe(404);
    expect((await put('disable', { host: 'xen-a', binary: 'nova-compute', forced_down: true }, '2.10')).statusCode).toBe(400);
    const other = await put('disable', { host: 'xen-a', binary: 'nova-scheduler' });
    expect(other.statusCode).toBe(400);
    expect(other.json().badRequest.message).toBe('Updating a nova-scheduler service is not supported. Only nova-compute services can be updated.');
    const unknown = await put('enable', { host: 'nowhere', binary: 'nova-compute' });
    expect(unknown.statusCode).toBe(404);
    expect(unknown.json().itemNotFound.message).toBe('Could not find binary nova-compute on host nowhere.');
    expect((await put('enable', { host: 'xen-a', binary: 'nova-compute' }, '2.53')).statusCode).toBe(404);
  });
});
