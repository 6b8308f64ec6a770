// Structured JSON logs (pino) to stderr, so stdout stays free for command output.
// Every logger carries `component`; the level comes from WEFT_LOG_LEVEL (default info).
import { pino, type Logger } from 'pino';

const root: Logger = pino(
  {
    level: process.env.WEFT_LOG_LEVEL ?? 'info',
    base: { pid: process.pid },
    timestamp: pino.stdTimeFunctions.isoTime,
  },
  pino.destination({ fd: 2, sync: false }),
);

export type { Logger };

export function logger(component: string, bindings: Record<string, unknown> = {}): Logger {
  return root.child({ component, ...bindings });
}

export function setLogLevel(level: string): void {
  root.level = level;
}

export function flushLogs(): void {
  root.flush();
}
