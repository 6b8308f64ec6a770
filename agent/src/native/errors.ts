// The one place native failures become Weft errors. The addon throws plain Errors carrying
// `errno` (positive, as in C), `code` ('EPERM', …) and `syscall` (the libbpf function or syscall);
// argument errors carry code WEFT_E_INVALID_ARGUMENT and `parameter`. Everything the facade
// exports goes through callNative / callNativeAsync so callers only ever see WeftErrors.
import { InvalidArgumentError, WeftError } from '../common/errors.js';

const HINTS: Record<string, string> = {
  EPERM: 'run as root (BPF needs CAP_BPF, CAP_NET_ADMIN and CAP_SYS_ADMIN)',
  EACCES: 'run as root; for a load failure, the verifier log above says which instruction it refused',
  ENOENT: 'check that the path, pin, interface or network namespace exists',
  ENODEV: 'check the interface name inside that network namespace (`nsenter --net=… ip link`)',
  EBADF: 'the handle was closed (or its BPF object was closed) before this call',
  EEXIST: 'something is already there: unpin or detach it first, or use replace',
  EADDRINUSE: 'another socket holds this address; pass reusePort on every listener that shares it',
  EADDRNOTAVAIL: 'the address is not local to that netns; pass transparent: true to bind a foreign address',
};

/** A libbpf call or syscall made by the native addon failed. */
export class NativeError extends WeftError {
  /** Positive errno, as C sees it (Node's own system errors use the negated value). */
  readonly errno: number;
  /** The errno's name, e.g. 'EPERM'. */
  readonly syscallCode: string;
  /** The libbpf function or syscall that failed, e.g. 'bpf_link_create'. */
  readonly operation: string;
  /** What it was applied to (a path, an interface), when known. */
  readonly detail: string | undefined;
  /** libbpf / verifier output captured during the call (loads). */
  readonly log: string | undefined;

  constructor(init: { errno: number; syscallCode: string; operation: string; message: string; detail?: string; log?: string }, options: { cause?: unknown } = {}) {
    super('WEFT_E_NATIVE', init.message, { ...options, ...(HINTS[init.syscallCode] ? { hint: HINTS[init.syscallCode] } : {}) });
    this.errno = init.errno;
    this.syscallCode = init.syscallCode;
    this.operation = init.operation;
    this.detail = init.detail;
    this.log = init.log;
  }
}

/** The addon is not built (or cannot be loaded on this machine). */
export class NativeAddonMissingError extends WeftError {
  constructor(path: string, cause: unknown) {
    super('WEFT_E_NATIVE_MISSING', `the native addon ${path} could not be loaded: ${cause instanceof Error ? cause.message.split('\n')[0] : String(cause)}`, {
      cause,
      hint: 'run `npm run build` (it builds the addon with node-gyp against the system libbpf; `npm run setup` installs libbpf-dev first)',
    });
  }
}

/** A handle was used after it, or the BPF object that owns it, was closed; or before load(). */
export class NativeStateError extends WeftError {
  constructor(message: string) {
    super('WEFT_E_NATIVE_STATE', message);
  }
}

interface RawNativeError {
  message: string;
  code?: unknown;
  errno?: unknown;
  syscall?: unknown;
  parameter?: unknown;
  detail?: unknown;
  log?: unknown;
}

/** Turns whatever the addon threw into a WeftError (other values pass through unchanged). */
export function fromNative(err: unknown): unknown {
  if (err instanceof WeftError || !(err instanceof Error)) return err;
  const raw = err as Error & RawNativeError;
  if (raw.code === 'WEFT_E_INVALID_ARGUMENT' && typeof raw.parameter === 'string') {
    const prefix = `${raw.parameter}: `;
    return new InvalidArgumentError(raw.parameter, raw.message.startsWith(prefix) ? raw.message.slice(prefix.length) : raw.message, { cause: err });
  }
  if (typeof raw.errno === 'number' && typeof raw.code === 'string' && typeof raw.syscall === 'string') {
    return new NativeError(
      {
        errno: raw.errno,
        syscallCode: raw.code,
        operation: raw.syscall,
        message: raw.message,
        ...(typeof raw.detail === 'string' ? { detail: raw.detail } : {}),
        ...(typeof raw.log === 'string' ? { log: raw.log } : {}),
      },
      { cause: err },
    );
  }
  return err;
}

export function callNative<T>(fn: () => T): T {
  try {
    return fn();
  } catch (err) {
    throw fromNative(err);
  }
}

export async function callNativeAsync<T>(fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    throw fromNative(err);
  }
}
