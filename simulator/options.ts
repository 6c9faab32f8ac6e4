// Everything one simulated host process needs to know: itself, the hosts of its pool (so it can
// answer for them as a pool master would, and reach them for pool_migrate), and where its state
// and the pool's shared SR live on disk.
export interface PeerHost {
  name: string;
  pool: string;
  xenapiUrl: string;
  dataPort: number;
  memoryMiB: number;
}

export interface HostOptions {
  name: string;
  pool: string;
  xenapiPort: number;
  dataPort: number;
  adminPort: number;
  user: string;
  password: string;
  memoryMiB: number;
  cpuModel: string;
  productVersion: string;
  platformVersion: string;
  bandwidthMiBps: number;
  /** Pre-copy rounds before stop-and-copy (libxc: 5); 0 = unlimited (only convergence stops it). */
  maxIterations: number;
  /** Pre-copy stops once fewer pages than this are dirty (libxc: 50). */
  minDirtyPages: number;
  /** Holds <host>/db.json, <host>/local-sr/ and pool-<pool>/shared-sr/ (shared by the pool). */
  stateDir: string;
  /** Every host of the configuration (this one included); the ones of this pool are its members. */
  hosts: PeerHost[];
}

export const DEFAULTS = {
  user: 'root',
  memoryMiB: 16384,
  cpuModel: 'Intel Xeon (simulated)',
  productVersion: '8.2.1',
  platformVersion: '3.4.0',
  bandwidthMiBps: 256,
  maxIterations: 5,
  minDirtyPages: 50,
};
