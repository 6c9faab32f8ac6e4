// The search attributes ferry registers on the dev server and sets on every migration.
import { defineSearchAttributeKey } from '@temporalio/common';

export const InstanceUuid = defineSearchAttributeKey('InstanceUuid', 'KEYWORD');
export const SourceHost = defineSearchAttributeKey('SourceHost', 'KEYWORD');
export const DestHost = defineSearchAttributeKey('DestHost', 'KEYWORD');
export const MigrationStatus = defineSearchAttributeKey('MigrationStatus', 'KEYWORD');

export const searchAttributeNames = ['InstanceUuid', 'SourceHost', 'DestHost', 'MigrationStatus'] as const;
