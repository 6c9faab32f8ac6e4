// Resize and cold migration on a QEMU host: not implemented by ferry's QEMU driver yet (Nova's
// libvirt driver does both: migrate_disk_and_power_off copies the disks and starts the guest on the
// destination). The coldMigration workflow's first host step on the source (checkInstanceForResize)
// and its destination step (prepResize) refuse at once and for good, so a resize of a QEMU guest
// ends `error` with this reason before anything was touched, and a Xen VM's resize passes over a
// QEMU candidate with it, instead of retrying steps this agent does not register.
import { ApplicationFailure } from '@temporalio/activity';
import type { QemuHost } from './host';

/** The failure type: Nova's resize pre-check failure (the conductor's MigrationPreCheckError). */
export const RESIZE_REFUSED = 'MigrationPreCheckError';

export const resizeRefusal = (host: string) =>
  `${host} is a QEMU host: ferry's QEMU driver does not support resize or cold migration yet (live migration only)`;

export function createQemuColdMigration(qh: QemuHost) {
  const refuse = (): never => {
    throw ApplicationFailure.nonRetryable(resizeRefusal(qh.host.name), RESIZE_REFUSED);
  };
  return {
    /** The source's check: a QEMU guest cannot be resized or cold-migrated. */
    async checkInstanceForResize(_input: { instanceUuid: string }): Promise<never> {
      return refuse();
    },
    /** The destination's prep_resize: a QEMU host receives no resized or cold-migrated instance. */
    async prepResize(_input: { instanceUuid: string; memoryBytes: number; diskBytes: number }): Promise<never> {
      return refuse();
    },
  };
}
