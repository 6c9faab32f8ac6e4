// The flavor checks of a resize (workflows/cold-migration-flavor.ts) as a pure function: no
// hypervisor, no Temporal.
import { describe, expect, it } from 'vitest';
import { checkFlavor } from '../../workflows/cold-migration-flavor';

const MiB = 2 ** 20;
const GiB = 2 ** 30;
const current = { vcpus: 1, memoryBytes: 512 * MiB, diskBytes: 10 * GiB };
const flavor = (vcpus: number, ram: number, disk: number) => ({ id: 'f', name: 'f', vcpus, ram, disk });

describe('checkFlavor', () => {
  it('no flavor keeps the size (a plain cold migration)', () => {
    expect(checkFlavor(null, current)).toEqual({ oldSize: { vcpus: 1, ramMiB: 512, diskBytes: 10 * GiB }, newSize: { vcpus: 1, ramMiB: 512, diskBytes: 10 * GiB } });
  });

  it('a bigger flavor gives its vCPUs, memory and disk', () => {
    expect(checkFlavor(flavor(4, 4096, 20), current).newSize).toEqual({ vcpus: 4, ramMiB: 4096, diskBytes: 20 * GiB });
  });

  it('disk 0 keeps the disk as it is (Nova root_gb 0), and less memory is allowed', () => {
    expect(checkFlavor(flavor(2, 256, 0), current).newSize).toEqual({ vcpus: 2, ramMiB: 256, diskBytes: 10 * GiB });
  });

  it('refuses a smaller disk with Nova ResizeError text', () => {
    expect(() => checkFlavor(flavor(4, 4096, 5), current)).toThrow('Resize error: Unable to resize disk down.');
  });

  it('refuses the flavor the instance already has', () => {
    expect(() => checkFlavor(flavor(1, 512, 10), current)).toThrow('When resizing, instances must change flavor!');
  });
});
