// Structured JSON logs (pino) to stderr, so stdout stays free for command output.
// Every logger carries `component`; the level comes from WEFT_LOG_LEVEL (default info).
import { isMainThread, threadId } from 'node:worker_threads';
import { pino, type Logger } from 'pino';

const root: Logger = pino(
  {
    level: process.env.WEFT_LOG_LEVEL ?? 'info',
    // A data-plane worker's lines (access log included) say which thread wrote them.
    base: isMainThread ? { pid: process.pid } : { pid: process.pid, thread: threadId },
    timestamp: pino.stdTimeFunctions.isoTime,
  },
  pino.destination({ fd: 2, sync: false }),
);

export type { Logger };

export function logger(component: string, bindings: Record<string, unknown> = {}): Logger {
  return root.child({ component, ...bindings });
}

const levelListeners = new Set<(level: string) => void>();

export function setLogLevel(level: string): void {
  root.level = level;
  for (const l of levelListeners) l(level);
}

export function logLevel(): string {
  return root.level;
}

/** Calls `cb` on every setLogLevel (data-plane workers follow the agent's level); returns an unsubscribe. */
export function onLogLevel(cb: (level: string) => void): () => void {
  levelListeners.add(cb);
  return () => levelListeners.delete(cb);
}

export function flushLogs(): void {
  root.flush();
}
