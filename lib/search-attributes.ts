// The search attributes ferry registers on the dev server and sets on its workflows (migrations,
// maintenance runs, the host inventory's entities), and the conductor's check that a server has them.
import type { Connection } from '@temporalio/client';
import { defineSearchAttributeKey } from '@temporalio/common';

export const InstanceUuid = defineSearchAttributeKey('InstanceUuid', 'KEYWORD');
export const SourceHost = defineSearchAttributeKey('SourceHost', 'KEYWORD');
export const DestHost = defineSearchAttributeKey('DestHost', 'KEYWORD');
export const MigrationStatus = defineSearchAttributeKey('MigrationStatus', 'KEYWORD');
/** hostMaintenance runs: the host in maintenance and the run's status (MaintenanceStatus in workflows/definitions.ts). */
export const MaintenanceHost = defineSearchAttributeKey('MaintenanceHost', 'KEYWORD');
export const MaintenanceState = defineSearchAttributeKey('MaintenanceStatus', 'KEYWORD');

/**
 * hostInventory entities (system namespace): when the host's last report arrived, so that a reader
 * lists only the hosts whose report changed since its last listing (lib/host-inventory.ts).
 */
export const HostReportedAt = defineSearchAttributeKey('HostReportedAt', 'DATETIME');

/** The Keyword attributes, registered as such on the dev server and on the test environment. */
export const searchAttributeNames = ['InstanceUuid', 'SourceHost', 'DestHost', 'MigrationStatus', 'MaintenanceHost', 'MaintenanceStatus'] as const;

/** Every attribute with the type `temporal operator search-attribute create --type` takes. */
export const searchAttributeTypes: Record<string, 'Keyword' | 'Datetime'> = {
  ...Object.fromEntries(searchAttributeNames.map((name) => [name, 'Keyword'])),
  [HostReportedAt.name]: 'Datetime',
};

/** temporal.api.enums.v1.IndexedValueType of the types ferry uses. */
const INDEXED_VALUE_TYPE: Record<'Keyword' | 'Datetime', number> = { Keyword: 2, Datetime: 6 };

/**
 * What a namespace lacks of the attributes its workflows upsert, as the commands that register
 * them. A workflow that upserts an attribute its server does not know fails every workflow task
 * (the hostInventory entities would stop publishing, and every host would look down), so the
 * conductor refuses to start instead: the dev server registers them all, a server of your own may not.
 */
export async function missingSearchAttributes(connection: Pick<Connection, 'operatorService'>, namespace: string, names: readonly string[]): Promise<string[]> {
  const { customAttributes } = await connection.operatorService.listSearchAttributes({ namespace });
  return names.flatMap((name) => {
    const type = searchAttributeTypes[name] ?? 'Keyword';
    const have = customAttributes?.[name];
    if (have === INDEXED_VALUE_TYPE[type]) return [];
    const why = have === undefined || have === null ? 'not registered' : `registered with another type (IndexedValueType ${have})`;
    return [`${name} (${why}): temporal operator search-attribute create --namespace ${namespace} --name ${name} --type ${type}`];
  });
}
