// A Nova server keeps its id across resizes and cold migrations; a Xen VM does not. The coldMigration
// workflow creates the destination VM with VM.create (xapi chooses its uuid; Nova's XenAPI driver
// marked it with other_config nova_uuid), and a confirm destroys the source VM: from then on the
// server is that new VM. The API follows the confirmed runs: a server id names the VM it is now
// (currentVm, forwards), and a VM is shown under the id of the server it is (serverIds, backwards).
// Temporal's records of the runs are the only mapping: nothing else is stored.
import type { ColdMigrationView } from '../workflows/cold-migration-definitions';
import type { FerryService } from './ferry-service';

/** A chain longer than this is not followed further (each step is one resize of one server). */
const MAX_HOPS = 32;

/** The VM a run moved the server to, once the source is gone for good (confirmed). */
function movedTo(view: ColdMigrationView): string | null {
  const dest = view.destInstanceUuid?.toLowerCase() ?? null;
  return view.status === 'confirmed' && dest && dest !== view.instanceUuid ? dest : null;
}

/** The VM uuid the server is now: its id, or where its confirmed resizes took it. */
export async function currentVm(service: FerryService, serverId: string): Promise<string> {
  let uuid = serverId.toLowerCase();
  for (let hop = 0; hop < MAX_HOPS; hop++) {
    const latest = await service.coldMigrations.get(uuid);
    const next = latest && latest.instanceUuid === uuid ? movedTo(latest) : null;
    if (!next) return uuid;
    uuid = next;
  }
  return uuid;
}

/** The server id of every VM that a confirmed resize created (VM uuid → server id); other VMs are their own servers. */
export async function serverIds(service: FerryService): Promise<Map<string, string>> {
  const confirmed = await service.coldMigrations.list({ open: false, status: 'confirmed', limit: 1000 });
  const parent = new Map<string, string>();
  for (const view of confirmed) {
    const dest = movedTo(view);
    if (dest && !parent.has(dest)) parent.set(dest, view.instanceUuid);
  }
  const ids = new Map<string, string>();
  for (const vm of parent.keys()) {
    let root = vm;
    for (let hop = 0; hop < MAX_HOPS && parent.has(root); hop++) root = parent.get(root) as string;
    ids.set(vm, root);
  }
  return ids;
}
