// Every workflow the conductor worker runs. Type names are public: see workflows/definitions.ts.
export { liveMigration } from './live-migration';
export { hostInventory } from './host-inventory';
export { migrationSlots } from './slots';
export { migrationCleanup } from './migration-cleanup';
export { hostService } from './host-service';
export { hostMaintenance } from './host-maintenance';
export { coldMigration } from './cold-migration';
export { coldMigrationCleanup } from './cold-migration-cleanup';
