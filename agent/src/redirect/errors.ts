// Failures of enrolment and release, each with a stable code.
import { WeftError, type WeftErrorOptions } from '../common/errors.js';

/** The pod's network namespace or cgroup does not exist (any more); nothing was left attached. */
export class PodGoneError extends WeftError {
  readonly uid: string;
  readonly what: 'netns' | 'cgroup' | 'interface';
  constructor(uid: string, what: 'netns' | 'cgroup' | 'interface', path: string, options?: WeftErrorOptions) {
    const code = what === 'netns' ? 'WEFT_E_POD_NETNS_GONE' : what === 'cgroup' ? 'WEFT_E_POD_CGROUP_GONE' : 'WEFT_E_POD_INTERFACE_GONE';
    super(code, `pod ${uid}: its ${what} ${path} does not exist (the pod was deleted or is not running); nothing was left attached`, {
      hint: 'enrol the pod again once it is running, or drop it from the desired set',
      ...options,
    });
    this.uid = uid;
    this.what = what;
  }
}

/** Attaching or detaching a BPF program for a pod failed for another reason (errno in `cause`). */
export class RedirectAttachError extends WeftError {
  readonly uid: string;
  constructor(uid: string, step: string, options?: WeftErrorOptions) {
    super('WEFT_E_REDIRECT_ATTACH', `pod ${uid}: ${step} failed${options?.cause instanceof Error ? `: ${options.cause.message}` : ''}`, {
      hint: 'check `weft check` for missing kernel features; the pod was rolled back to unenrolled',
      ...options,
    });
    this.uid = uid;
  }
}

/** The agent's BPF objects could not be loaded or its pinned state could not be read. */
export class RedirectSetupError extends WeftError {
  constructor(message: string, options?: WeftErrorOptions) {
    super('WEFT_E_REDIRECT_SETUP', message, { hint: 'run as root with bpffs mounted at /sys/fs/bpf and build/bpf built (npm run build)', ...options });
  }
}

/** The pod is not enrolled by this agent (e.g. setInboundListener before enrol). */
export class PodNotEnrolledError extends WeftError {
  constructor(uid: string) {
    super('WEFT_E_POD_NOT_ENROLLED', `pod ${uid} is not enrolled by this agent`, { hint: 'call enrol(pod) first' });
  }
}
