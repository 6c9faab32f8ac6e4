// The search attributes ferry registers on the dev server and sets on every migration.
import { defineSearchAttributeKey } from '@temporalio/common';

export const InstanceUuid = defineSearchAttributeKey('InstanceUuid', 'KEYWORD');
export const SourceHost = defineSearchAttributeKey('SourceHost', 'KEYWORD');
export const DestHost = defineSearchAttributeKey('DestHost', 'KEYWORD');
export const MigrationStatus = defineSearchAttributeKey('MigrationStatus', 'KEYWORD');
/** hostMaintenance runs: the host in maintenance and the run's status (MaintenanceStatus in workflows/definitions.ts). */
export const MaintenanceHost = defineSearchAttributeKey('MaintenanceHost', 'KEYWORD');
export const MaintenanceState = defineSearchAttributeKey('MaintenanceStatus', 'KEYWORD');

export const searchAttributeNames = ['InstanceUuid', 'SourceHost', 'DestHost', 'MigrationStatus', 'MaintenanceHost', 'MaintenanceStatus'] as const;
