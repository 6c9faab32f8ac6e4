// A real Keystone (PyPI keystone, .tools/keystone from scripts/install.sh) for tests and the demo:
// SQLite and fernet keys in a state folder, bootstrapped with keystone-manage, served by gunicorn on
// a loopback port, then populated through Keystone's own REST API: ferry's service user, the
// `compute` service whose endpoints point at ferry's API, and a demo project with an admin, a member
// and a reader. See DESIGN.md §9.
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, openSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir, userInfo } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { stringify as toYaml } from 'yaml';
import { projectRoot } from './paths';
import { freePort } from './ports';

const run = promisify(execFile);

export const keystoneBin = resolve(projectRoot, '.tools', 'keystone', 'bin');
/** openstackclient, installed next to Keystone. */
export const openstackCliPath = resolve(keystoneBin, 'openstack');

export const DEMO_PROJECT = 'demo';
export const SERVICE_PROJECT = 'service';
export const FERRY_SERVICE_USER = 'ferry';

export interface KeystoneUser {
  name: string;
  password: string;
  id: string;
  project: string;
  roles: string[];
}

export interface StartKeystoneOptions {
  /** Keeps the database, keys, config and log here; omitted: a temporary folder removed by stop(). */
  stateDir?: string;
  /** ferry's API (http://host:port): the `compute` service's endpoints point at its /v2.1. */
  computeUrl?: string;
  /** Keystone's bcrypt rounds; 4 (its minimum) makes a password token about 60 ms instead of 0.3 s. */
  passwordHashRounds?: number;
  /** gunicorn's and keystone-manage's output; default <stateDir>/keystone.log. */
  logFile?: string;
}

export interface RunningKeystone {
  /** http://127.0.0.1:PORT/v3 */
  url: string;
  stateDir: string;
  logFile: string;
  adminPassword: string;
  /** ferry's own user (role `service` on project `service`), as temporal.yaml's api.auth names it. */
  service: KeystoneUser;
  /** Users of the demo project: admin (admin role), member (member) and reader (reader). */
  users: { admin: KeystoneUser; member: KeystoneUser; reader: KeystoneUser };
  /** Registers (or points again) the `compute` service's public/internal/admin endpoints at ferry's API. */
  registerCompute(apiUrl: string): Promise<void>;
  /** A project-scoped token for a user (password auth). */
  issueToken(user: Pick<KeystoneUser, 'name' | 'password' | 'project'>): Promise<string>;
  /** Writes a clouds.yaml with one cloud per demo user (ferry-admin, ferry-member, ferry-reader); returns its path. */
  writeCloudsYaml(dir: string): string;
  stop(): Promise<void>;
}

function password(): string {
  return randomBytes(12).toString('base64url');
}

async function userGroup(): Promise<{ user: string; group: string }> {
  const user = userInfo().username;
  const { stdout } = await run('id', ['-gn']);
  return { user, group: stdout.trim() };
}

function configText(stateDir: string, rounds: number): string {
  return [
    '# Written by lib/keystone.ts',
    '[DEFAULT]',
    'debug = false',
    '[database]',
    `connection = sqlite:///${join(stateDir, 'keystone.db')}`,
    '[token]',
    'provider = fernet',
    '[fernet_tokens]',
    `key_repository = ${join(stateDir, 'fernet-keys')}`,
    '[fernet_receipts]',
    `key_repository = ${join(stateDir, 'fernet-receipts')}`,
    '[credential]',
    `key_repository = ${join(stateDir, 'credential-keys')}`,
    '[identity]',
    `password_hash_rounds = ${rounds}`,
    '',
  ].join('\n');
}

async function waitUntilServing(url: string, child: ChildProcess, logFile: string, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`Keystone (gunicorn) exited with status ${child.exitCode}; see ${logFile}`);
    try {
      const answer = await fetch(url, { signal: AbortSignal.timeout(2_000) });
      if (answer.ok) return;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) throw new Error(`Keystone did not answer at ${url} within ${timeoutMs / 1000} s; see ${logFile}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

/** A client of Keystone's admin API with the bootstrap admin's token. */
class KeystoneAdmin {
  private token = '';
  constructor(private readonly url: string) {}

  async login(name: string, pass: string, project: string): Promise<void> {
    this.token = await issueToken(this.url, { name, password: pass, project });
  }

  async call<T>(method: string, path: string, body?: unknown): Promise<T> {
    const answer = await fetch(`${this.url}${path}`, {
      method,
      headers: { 'x-auth-token': this.token, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    if (!answer.ok) throw new Error(`Keystone ${method} ${path}: ${answer.status} ${await answer.text()}`);
    return (answer.status === 204 ? {} : await answer.json()) as T;
  }

  async idOf(kind: 'roles' | 'projects' | 'users' | 'services', name: string, extra = ''): Promise<string | null> {
    const list = await this.call<Record<string, { id: string }[]>>('GET', `/${kind}?name=${encodeURIComponent(name)}${extra}`);
    return list[kind]?.[0]?.id ?? null;
  }

  async project(name: string): Promise<string> {
    return (
      (await this.idOf('projects', name)) ??
      (await this.call<{ project: { id: string } }>('POST', '/projects', { project: { name, domain_id: 'default', description: `ferry ${name}` } })).project.id
    );
  }

  async user(name: string, pass: string, projectId: string): Promise<string> {
    const id = await this.idOf('users', name);
    if (id) {
      await this.call('PATCH', `/users/${id}`, { user: { password: pass } });
      return id;
    }
    return (await this.call<{ user: { id: string } }>('POST', '/users', { user: { name, password: pass, domain_id: 'default', default_project_id: projectId } })).user.id;
  }

  async grant(projectId: string, userId: string, role: string): Promise<void> {
    const roleId = await this.idOf('roles', role);
    if (!roleId) throw new Error(`Keystone has no role ${role}`);
    await this.call('PUT', `/projects/${projectId}/users/${userId}/roles/${roleId}`);
  }
}

/** A project-scoped token for a user of the default domain (password auth). */
export async function issueToken(url: string, user: Pick<KeystoneUser, 'name' | 'password' | 'project'>): Promise<string> {
  const answer = await fetch(`${url}/auth/tokens?nocatalog`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({
      auth: {
        identity: { methods: ['password'], password: { user: { name: user.name, domain: { id: 'default' }, password: user.password } } },
        scope: { project: { name: user.project, domain: { id: 'default' } } },
      },
    }),
  });
  const token = answer.headers.get('x-subject-token');
  if (answer.status !== 201 || !token) throw new Error(`Keystone refused a token for ${user.name}: ${answer.status}`);
  return token;
}

async function registerCompute(admin: KeystoneAdmin, apiUrl: string): Promise<void> {
  const serviceId =
    (await admin.idOf('services', 'nova')) ??
    (await admin.call<{ service: { id: string } }>('POST', '/services', { service: { name: 'nova', type: 'compute', description: 'ferry (Nova-compatible live migration)' } })).service.id;
  const url = `${apiUrl.replace(/\/+$/, '')}/v2.1`;
  const { endpoints } = await admin.call<{ endpoints: { id: string; interface: string }[] }>('GET', `/endpoints?service_id=${serviceId}`);
  for (const iface of ['public', 'internal', 'admin']) {
    const existing = endpoints.find((e) => e.interface === iface);
    if (existing) await admin.call('PATCH', `/endpoints/${existing.id}`, { endpoint: { url } });
    else await admin.call('POST', '/endpoints', { endpoint: { service_id: serviceId, interface: iface, url, region_id: 'RegionOne' } });
  }
}

export async function startKeystone(options: StartKeystoneOptions = {}): Promise<RunningKeystone> {
  const manage = resolve(keystoneBin, 'keystone-manage');
  if (!existsSync(manage)) throw new Error(`Keystone not found at ${manage}: run "bash scripts/install.sh" first`);
  const temporary = options.stateDir === undefined;
  const stateDir = options.stateDir ?? mkdtempSync(join(tmpdir(), 'ferry-keystone-'));
  mkdirSync(stateDir, { recursive: true });
  const logFile = options.logFile ?? join(stateDir, 'keystone.log');
  const configFile = join(stateDir, 'keystone.conf');
  writeFileSync(configFile, configText(stateDir, options.passwordHashRounds ?? 4));
  const port = await freePort();
  const url = `http://127.0.0.1:${port}/v3`;
  const adminPassword = password();
  const { user, group } = await userGroup();
  const km = (...args: string[]) =>
    run(manage, ['--config-file', configFile, ...args], { maxBuffer: 16 * 1024 * 1024 }).catch((err: { stderr?: string; message: string }) => {
      throw new Error(`keystone-manage ${args[0]} failed: ${err.stderr?.split('\n').slice(-5).join('\n') ?? err.message}`);
    });
  // The keys do not touch the database: set them up while it is created.
  await Promise.all([
    km('db_sync'),
    km('fernet_setup', '--keystone-user', user, '--keystone-group', group),
    km('credential_setup', '--keystone-user', user, '--keystone-group', group),
  ]);
  await km(
    'bootstrap', '--bootstrap-password', adminPassword,
    '--bootstrap-admin-url', `${url}/`, '--bootstrap-public-url', `${url}/`, '--bootstrap-internal-url', `${url}/`,
    '--bootstrap-region-id', 'RegionOne',
  );

  const out = openSync(logFile, 'a');
  const child = spawn(
    resolve(keystoneBin, 'gunicorn'),
    ['-k', 'gthread', '--threads', '4', '--workers', '1', '--no-control-socket', '--bind', `127.0.0.1:${port}`, '--chdir', resolve(projectRoot, 'scripts', 'keystone'), 'ferry_keystone_wsgi:application'],
    { env: { ...process.env, OS_KEYSTONE_CONFIG_FILES: configFile, PYTHONWARNINGS: 'ignore' }, stdio: ['ignore', out, out] },
  );
  // This process exiting without stop() (a failed test run, Ctrl-C) takes gunicorn with it.
  const killOnExit = () => child.kill('SIGTERM');
  process.once('exit', killOnExit);
  const stop = async (): Promise<void> => {
    process.removeListener('exit', killOnExit);
    if (child.exitCode === null && child.signalCode === null) {
      const exited = new Promise((r) => child.once('exit', r));
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
      await exited;
      clearTimeout(timer);
    }
    if (temporary) rmSync(stateDir, { recursive: true, force: true });
  };
  try {
    await waitUntilServing(url, child, logFile);
    const admin = new KeystoneAdmin(url);
    await admin.login('admin', adminPassword, 'admin');
    const serviceProject = await admin.project(SERVICE_PROJECT);
    const demoProject = await admin.project(DEMO_PROJECT);
    const make = async (name: string, projectId: string, project: string, roles: string[]): Promise<KeystoneUser> => {
      const pass = password();
      const id = await admin.user(name, pass, projectId);
      for (const role of roles) await admin.grant(projectId, id, role);
      return { name, password: pass, id, project, roles };
    };
    const service = await make(FERRY_SERVICE_USER, serviceProject, SERVICE_PROJECT, ['service']);
    const users = {
      admin: await make('demo-admin', demoProject, DEMO_PROJECT, ['admin']),
      member: await make('demo-member', demoProject, DEMO_PROJECT, ['member']),
      reader: await make('demo-reader', demoProject, DEMO_PROJECT, ['reader']),
    };
    if (options.computeUrl) await registerCompute(admin, options.computeUrl);
    return {
      url,
      stateDir,
      logFile,
      adminPassword,
      service,
      users,
      registerCompute: (apiUrl) => registerCompute(admin, apiUrl),
      issueToken: (u) => issueToken(url, u),
      writeCloudsYaml(dir) {
        const cloud = (u: KeystoneUser) => ({
          auth: {
            auth_url: url,
            username: u.name,
            password: u.password,
            project_name: u.project,
            user_domain_name: 'Default',
            project_domain_name: 'Default',
          },
          region_name: 'RegionOne',
          interface: 'public',
          identity_api_version: 3,
        });
        mkdirSync(dir, { recursive: true });
        const path = join(dir, 'clouds.yaml');
        writeFileSync(
          path,
          toYaml({ clouds: { 'ferry-admin': cloud(users.admin), 'ferry-member': cloud(users.member), 'ferry-reader': cloud(users.reader) } }),
          { mode: 0o600 },
        );
        return path;
      },
      stop,
    };
  } catch (err) {
    await stop();
    throw err;
  }
}
