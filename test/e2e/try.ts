import { startStack } from '../../lib/stack';
import { liveMigrationWorkflowId } from '../../workflows/definitions';
(async () => {
  const t0 = Date.now();
  const stack = await startStack({ workDir: '/tmp/ferry-try' });
  console.log('stack up in', Date.now() - t0, 'ms');
  try {
    const cluster = await stack.client.workflow.execute('describeCluster', { taskQueue: 'ferry-conductor', workflowId: 'describe-1', args: [] });
    console.log(JSON.stringify(cluster, null, 1).slice(0, 1500));
    const vm = await stack.sims.host('xen-a').admin.createVm({ nameLabel: 'vm1', memoryMiB: 64, diskMiB: [16], sr: 'shared', dirtyRateMiBps: 5 });
    const sumBefore = await stack.sims.host('xen-a').admin.checksums(vm.uuid);
    const t1 = Date.now();
    const h = await stack.client.workflow.start('liveMigration', { taskQueue: 'ferry-conductor', workflowId: liveMigrationWorkflowId(vm.uuid), args: [{ instanceUuid: vm.uuid }] });
    const res = await h.result();
    console.log('result', res, Date.now() - t1, 'ms');
    console.log(JSON.stringify(await h.query('status'), null, 1).slice(0, 2500));
    console.log('before', sumBefore, 'after', await stack.sims.host('xen-b').admin.checksums(vm.uuid));
  } catch (e) { console.error('ERR', e); }
  finally { await stack.stop(); }
})();
