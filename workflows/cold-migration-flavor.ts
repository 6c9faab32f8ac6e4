// The flavor checks of Nova's resize (nova/compute/api.py resize, the drivers' disk checks) as a
// pure function: what size the instance has, what size it will have, or why not.
import { ApplicationFailure } from '@temporalio/workflow';
import type { Flavor, InstanceSize } from './cold-migration-definitions';

const GiB = 2 ** 30;
const MiB = 2 ** 20;

export interface CurrentSize {
  vcpus: number;
  memoryBytes: number;
  diskBytes: number;
}

/**
 * No flavor keeps the size (Nova's migrate). A flavor that changes nothing is refused (Nova's
 * CannotResizeToSameFlavor), and so is a smaller root disk (Nova's ResizeError "Unable to resize
 * disk down."). Disk 0 keeps the disk's size, as Nova's root_gb 0 never grows the image's disk.
 */
export function checkFlavor(flavor: Flavor | null, current: CurrentSize): { oldSize: InstanceSize; newSize: InstanceSize } {
  const oldSize: InstanceSize = { vcpus: current.vcpus, ramMiB: current.memoryBytes / MiB, diskBytes: current.diskBytes };
  if (!flavor) return { oldSize, newSize: { ...oldSize } };
  const diskBytes = flavor.disk === 0 ? current.diskBytes : flavor.disk * GiB;
  if (diskBytes < current.diskBytes) {
    throw ApplicationFailure.nonRetryable('Resize error: Unable to resize disk down.', 'ResizeError');
  }
  const newSize: InstanceSize = { vcpus: flavor.vcpus, ramMiB: flavor.ram, diskBytes };
  if (newSize.vcpus === oldSize.vcpus && newSize.ramMiB === oldSize.ramMiB && newSize.diskBytes === oldSize.diskBytes) {
    throw ApplicationFailure.nonRetryable('When resizing, instances must change flavor!', 'CannotResizeToSameFlavor');
  }
  return { oldSize, newSize };
}
