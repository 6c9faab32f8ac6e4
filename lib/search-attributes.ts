// The search attributes ferry registers on the dev server and sets on every migration.
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
