// Publishes this node's preflight results as the node annotation `weft check --kube` reads:
// at start, then again whenever a result changes (re-checked every interval). A failure to
// publish is logged and retried at the next check; it never stops the agent.
import type { KubeConnection } from '../common/kube-api.js';
import { logger } from '../common/log.js';
import { publishNodeChecks } from '../deploy/node-checks-annotation.js';
import type { CheckResult } from '../preflight/node-checks.js';

const log = logger('node-checks');

export interface NodeChecksPublisherOptions {
  conn: KubeConnection;
  node: string;
  version: string;
  run: () => Promise<CheckResult[]>;
  /** how often the checks are re-run (default 60 s) */
  intervalMs?: number;
}

export class NodeChecksPublisher {
  private published: string | undefined;
  private timer?: NodeJS.Timeout;
  private running?: Promise<void>;
  private stopped = false;
  /** publications that reached the API (for tests and logs) */
  count = 0;

  constructor(private readonly opts: NodeChecksPublisherOptions) {}

  /** Publishes once now (never throws), then re-checks every interval. */
  async start(): Promise<void> {
    await this.check();
    if (this.stopped) return;
    this.timer = setInterval(() => void this.check(), this.opts.intervalMs ?? 60_000);
    this.timer.unref();
  }

  /** Runs the checks and publishes them if they differ from what was last published. */
  check(): Promise<void> {
    this.running ??= this.doCheck().finally(() => (this.running = undefined));
    return this.running;
  }

  private async doCheck(): Promise<void> {
    let checks: CheckResult[];
    try {
      checks = await this.opts.run();
    } catch (err) {
      log.warn({ err: (err as Error).message }, 'running the node checks failed');
      return;
    }
    const key = JSON.stringify(checks);
    if (key === this.published || this.stopped) return;
    try {
      await publishNodeChecks(this.opts.conn, this.opts.node, checks, this.opts.version);
      const changed = this.published !== undefined;
      this.published = key;
      this.count++;
      log.info({ node: this.opts.node, failed: checks.filter((c) => !c.ok).map((c) => c.name) }, changed ? 'node checks changed; published' : 'node checks published');
    } catch (err) {
      log.warn({ node: this.opts.node, err: (err as Error).message, hint: (err as { hint?: string }).hint }, 'cannot publish the node checks (will retry)');
    }
  }

  stop(): void {
    this.stopped = true;
    clearInterval(this.timer);
  }
}
