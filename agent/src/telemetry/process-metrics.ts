// The standard Prometheus process metrics (process_*), plus Node's heap and event-loop lag,
// computed at scrape time.
import { readFileSync, readdirSync } from 'node:fs';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import type { Registry } from './registry.js';

const startTime = Math.round(Date.now() / 1000 - process.uptime());

function openFds(): number {
  try {
    return readdirSync('/proc/self/fd').length;
  } catch {
    return NaN;
  }
}

function maxFds(): number {
  try {
    const line = readFileSync('/proc/self/limits', 'utf8').split('\n').find((l) => l.startsWith('Max open files'));
    return Number(line?.split(/\s+/)[3] ?? NaN);
  } catch {
    return NaN;
  }
}

export function registerProcessMetrics(registry: Registry): void {
  const lag = monitorEventLoopDelay({ resolution: 20 });
  lag.enable();
  registry.gauge('process_cpu_seconds_total', 'Total user and system CPU time spent in seconds', [], (g) => {
    const u = process.cpuUsage();
    g.set({}, (u.user + u.system) / 1e6);
  });
  registry.gauge('process_resident_memory_bytes', 'Resident memory size in bytes', [], (g) => g.set({}, process.memoryUsage.rss()));
  registry.gauge('process_start_time_seconds', 'Start time of the process since unix epoch in seconds', [], (g) => g.set({}, startTime));
  registry.gauge('process_open_fds', 'Number of open file descriptors', [], (g) => g.set({}, openFds()));
  registry.gauge('process_max_fds', 'Maximum number of open file descriptors', [], (g) => g.set({}, maxFds()));
  registry.gauge('nodejs_heap_used_bytes', 'V8 heap used in bytes', [], (g) => g.set({}, process.memoryUsage().heapUsed));
  registry.gauge('nodejs_eventloop_lag_p99_seconds', 'Event-loop delay, 99th percentile since the last scrape', [], (g) => {
    g.set({}, lag.percentile(99) / 1e9);
    lag.reset();
  });
}
