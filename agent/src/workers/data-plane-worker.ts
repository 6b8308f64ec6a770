// A data-plane worker thread: a full replica of the node proxy (mesh state, certificates, every
// enrolled pod's proxy) serving its own SO_REUSEPORT listeners, so the kernel spreads new
// connections over the agent's threads. It never talks to the control plane: the main thread
// forwards xDS updates and certificates as they arrive, and asks for connections, metrics,
// drain and close.
import { parentPort, workerData } from 'node:worker_threads';
import { logger, setLogLevel } from '../common/log.js';
import { WorkloadState } from '../state/workload-state.js';
import { ProxyNode, TlsContexts, meshViewOf, type PodNetHooks } from '../proxy/index.js';
import { Telemetry } from '../telemetry/telemetry.js';
import { Registry } from '../telemetry/registry.js';
import { closeListenTargets, podNetHooks } from '../agent/pod-sockets.js';
import { borrowOriginalDestinations } from '../redirect/orig-dst.js';
import type { Call, FromWorker, ToWorker, WorkerInit } from './messages.js';

const init = workerData as WorkerInit;
setLogLevel(init.logLevel);
const log = logger('data-plane-worker', { worker: init.index });
const port = parentPort!;
// As on the main thread (cli/commands/agent.ts): a bad packet or peer must not end the thread.
const onUncaught = (err: unknown) => log.error({ err: (err as Error)?.stack ?? String(err) }, 'uncaught error (kept running)');
process.on('uncaughtException', onUncaught);
process.on('unhandledRejection', onUncaught);

const state = new WorkloadState();
const tls = new TlsContexts(init.rootsPem);
const registry = new Registry();
const proxy = new ProxyNode({
  nodeName: init.nodeName,
  mesh: meshViewOf(state),
  tls,
  trustDomain: init.trustDomain,
  // Process metrics are the main thread's: they describe the whole process.
  telemetry: new Telemetry({ registry, processMetrics: false }),
  ...init.proxy,
});
// The main thread's original-destination map fd, borrowed on the first pod that needs it.
let origDst: ReturnType<typeof borrowOriginalDestinations> | undefined;

function hooksOf(net: { netnsPath: string; bypassMark: number } | undefined): PodNetHooks | undefined {
  if (!net) return undefined;
  if (init.origDstMapFd === undefined) throw new Error('pod has a netns but the worker was given no original-destination map');
  origDst ??= borrowOriginalDestinations(init.origDstMapFd);
  const maps = origDst;
  return podNetHooks(net.netnsPath, net.bypassMark, (cookie, p) => maps.take(cookie, p));
}

async function call(c: Call): Promise<unknown> {
  switch (c.method) {
    case 'addPod': {
      const { uid, ips, identity, net, listen } = c.pod;
      let pod;
      try {
        const hooks = hooksOf(net);
        pod = proxy.addPod({ uid, ips, identity, ...(hooks ? { hooks } : {}) });
      } catch (err) {
        // No listener was taken: the fds handed over are still only ours to close.
        closeListenTargets(listen);
        throw err;
      }
      try {
        return await pod.listen(listen);
      } catch (err) {
        await proxy.removePod(uid);
        throw err;
      }
    }
    case 'removePod':
      return proxy.removePod(c.uid);
    case 'connections':
      return proxy.connections();
    case 'metrics':
      return registry.snapshot();
    case 'drain':
      return proxy.drain(c.deadlineMs);
    case 'close':
      await proxy.close();
      origDst?.close();
      origDst = undefined;
      return undefined;
  }
}

function reply(m: FromWorker): void {
  port.postMessage(m);
}

port.on('message', (m: ToWorker) => {
  switch (m.t) {
    case 'state':
      try {
        state.apply(m.update);
      } catch (err) {
        // The main thread applied the same update first, so this cannot differ; say so if it does.
        log.error({ err: (err as Error).message, typeUrl: m.update.typeUrl }, 'worker could not apply an xDS update the agent accepted');
      }
      return;
    case 'cert':
      if (m.rootsPem !== tls.rootsPem) tls.setRoots(m.rootsPem);
      tls.set(m.identity, m.cert);
      return;
    case 'certDeleted':
      tls.delete(m.identity);
      return;
    case 'ready':
      proxy.setReady();
      return;
    case 'logLevel':
      setLogLevel(m.level);
      return;
    case 'call':
      call(m).then(
        (value) => reply({ t: 'reply', id: m.id, value }),
        (err: Error & { code?: string }) => reply({ t: 'reply', id: m.id, error: { message: err.message, ...(err.code ? { code: err.code } : {}) } }),
      );
      return;
  }
});
log.debug('data-plane worker started');
