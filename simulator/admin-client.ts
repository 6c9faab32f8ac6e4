// Typed client for a simulated host's admin endpoint (see simulator/README.md for the routes).
import type { CreateVmRequest } from './admin';
import type { HandoffAction, HandoffPoint, MigrationFigures } from './host';

export type { CreateVmRequest, HandoffAction, HandoffPoint, MigrationFigures };

export interface VmSummary {
  uuid: string;
  ref: string;
  nameLabel: string;
  powerState: string;
  residentOn: string;
}

export interface Checksums {
  /** sha256 of the VM's memory; null when the VM is halted (no memory). */
  memory: string | null;
  /**
   * sha256 of the memory at the instant the VM resumed here after a live migration (null if it
   * did not arrive by migration); compare with the source's migrations() memorySha256.
   */
  memoryAtArrival: string | null;
  /** sha256 of each disk, keyed by VBD userdevice ("0", "1", ...), stable across migration. */
  disks: Record<string, string>;
}

export interface HostState {
  name: string;
  pool: string;
  hostRef: string;
  crashed: boolean;
  memoryTotal: number;
  memoryFree: number;
  /** Bytes the host's data servers received, per local address (the PIF's IP the source connected to). */
  receivedBytesByAddress: Record<string, number>;
  bandwidthMiBps: number;
  maxIterations: number;
  faults: Record<string, unknown>;
  vms: VmSummary[];
  /** The domains that really run here (guest memory), whatever the database says. */
  domains: { vmRef: string; vmUuid: string; domid: string; running: boolean; cap: number }[];
  records: Record<'VM' | 'VDI' | 'VBD' | 'VIF' | 'task', Record<string, Record<string, unknown>>>;
  incoming: { id: string; vmUuid: string; vmName: string; memoryBytes: number; receivedBytes: number; from: string; startedAt: string }[];
  outgoing: { taskRef: string; vmRef: string; storage: boolean }[];
  handoffFault: { point: HandoffPoint; action: HandoffAction } | null;
  srFiles: { local: string[]; shared: string[] };
  /** This host's /images (the migration plugin's staging area): instance<uuid> -> files. */
  staged: Record<string, string[]>;
}

export interface VdiChecksum {
  uuid: string;
  virtualSize: number;
  /** How many bytes the checksum covers. */
  bytes: number;
  sha256: string;
  /** The VDI's uuid, then its parent's, and so on (sm_config vhd-parent). */
  chain: string[];
}

export class AdminError extends Error {
  override name = 'AdminError';
  constructor(
    readonly status: number,
    readonly body: unknown,
  ) {
    super(`admin call failed (${status}): ${JSON.stringify(body)}`);
  }
}

export class AdminClient {
  constructor(
    readonly url: string,
    private readonly timeoutMs = 30_000,
  ) {}

  private async request<T>(method: 'GET' | 'POST', path: string, body?: unknown): Promise<T> {
    const res = await fetch(new URL(path, this.url), {
      method,
      headers: body === undefined ? {} : { 'Content-Type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body),
      signal: AbortSignal.timeout(this.timeoutMs),
    });
    const value = (await res.json()) as unknown;
    if (!res.ok) throw new AdminError(res.status, value);
    return value as T;
  }

  /** Answers even while the host is crashed. */
  health(): Promise<{ name: string; pool: string; hostRef: string; address: string; master: boolean; crashed: boolean; pid: number }> {
    return this.request('GET', '/health');
  }

  /** Creates a VM with its VDIs (random content), VBDs and a VIF, and starts it. */
  createVm(req: CreateVmRequest): Promise<{ uuid: string; ref: string }> {
    return this.request('POST', '/vms', req);
  }

  /** null when the VM is not on this host. */
  checksums(vmUuid: string): Promise<Checksums | null> {
    return this.request('GET', `/vms/${encodeURIComponent(vmUuid)}/checksums`);
  }

  listVms(): Promise<VmSummary[]> {
    return this.request('GET', '/vms');
  }

  /**
   * The guest's behaviour: memory dirty rate and working set, disk write rate, and whether it
   * ignores a clean shutdown (VM.clean_shutdown then waits shutdownTimeoutS, xapi's 1200 s by
   * default, and fails with VM_SHUTDOWN_TIMEOUT, unless a hard shutdown halts it first).
   */
  async setGuest(vmUuid: string, guest: { dirtyRateMiBps?: number; workingSetMiB?: number; diskWriteMiBps?: number; diskWorkingSetMiB?: number; ignoreCleanShutdown?: boolean; shutdownTimeoutS?: number }): Promise<void> {
    await this.request('POST', `/vms/${encodeURIComponent(vmUuid)}/guest`, guest);
  }

  async setBandwidth(MiBps: number): Promise<void> {
    await this.request('POST', '/bandwidth', { MiBps });
  }

  /** Pre-copy rounds before stop-and-copy; 0 = unlimited (a migration with D >= B never converges). */
  async setMaxIterations(value: number): Promise<void> {
    await this.request('POST', '/max-iterations', { value });
  }

  async failNext(method: string, code: string, params: string[] = []): Promise<void> {
    await this.request('POST', '/faults/fail-next', { method, code, params });
  }

  /** The next data connection of this host (outgoing or incoming) is cut after `bytes`. */
  async cutDataAfter(bytes: number): Promise<void> {
    await this.request('POST', '/faults/cut-data', { bytes });
  }

  async freeze(): Promise<void> {
    await this.request('POST', '/faults/freeze');
  }

  async thaw(): Promise<void> {
    await this.request('POST', '/faults/thaw');
  }

  async slow(ms: number): Promise<void> {
    await this.request('POST', '/faults/slow', { ms });
  }

  /**
   * This host loses power: its guests die, its XenAPI and data servers stop accepting connections
   * (every member's XenAPI too when it is the master). The pool database keeps its VMs as they
   * were until restart().
   */
  async crash(): Promise<void> {
    await this.request('POST', '/crash');
  }

  /** A crashed host comes back; every VM the pool database has resident on it is Halted. */
  async restart(): Promise<void> {
    await this.request('POST', '/restart');
  }

  /** The sessions host.migrate_receive created in this host's pool (the last 200), and whether each is still valid. */
  async migrateReceiveSessions(): Promise<{ ref: string; active: boolean }[]> {
    return (await this.request<{ migrateReceive: { ref: string; active: boolean }[] }>('GET', '/sessions')).migrateReceive;
  }

  /** Running and recently finished (last 50) migrations this host sent, with the figures xapi does not show. */
  migrations(): Promise<MigrationFigures[]> {
    return this.request('GET', '/migrations');
  }

  /** One-shot: the next migration this host sends breaks its end-of-migration handshake at `point` with `action`. */
  async failAtHandoff(point: HandoffPoint, action: HandoffAction): Promise<void> {
    await this.request('POST', '/faults/handoff', { point, action });
  }

  /**
   * sha256 of a VDI's content read through its chain (leaf first, as its VM sees it), of its first
   * `bytes` bytes when given (to compare a grown disk with the original up to the old size); null
   * when no VDI of this pool has the uuid. `chain` is the VDI and its ancestors (sm_config vhd-parent).
   */
  async vdiChecksum(vdiUuid: string, bytes?: number): Promise<VdiChecksum | null> {
    try {
      return await this.request<VdiChecksum>('GET', `/vdis/${encodeURIComponent(vdiUuid)}/checksum${bytes === undefined ? '' : `?bytes=${bytes}`}`);
    } catch (err) {
      if (err instanceof AdminError && err.status === 404) return null;
      throw err;
    }
  }

  /** The migration plugin's transfers (transfer_vhd) running on this host. */
  async transfers(): Promise<string[]> {
    return (await this.request<{ running: string[] }>('GET', '/transfers')).running;
  }

  /** Fault: SIGKILL the rsync of every transfer_vhd running on this host (they fail; a retry resumes with --partial). */
  async killTransfers(): Promise<number> {
    return (await this.request<{ killed: number }>('POST', '/faults/kill-transfers')).killed;
  }

  state(): Promise<HostState> {
    return this.request('GET', '/state');
  }
}
