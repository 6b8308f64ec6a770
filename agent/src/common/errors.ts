// Every failure Weft reports is a WeftError with a stable `code` (WEFT_E_…) and a message that
// says what to do. Components define their own subclasses next to their code; the shared
// ones live here.

export interface WeftErrorOptions {
  cause?: unknown;
  /** What the user can do about it; printed after the message by the CLI. */
  hint?: string;
}

export class WeftError extends Error {
  readonly code: string;
  readonly hint: string | undefined;

  constructor(code: string, message: string, options: WeftErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = new.target.name;
    this.code = code;
    this.hint = options.hint;
  }
}

/** Bad command-line usage: the CLI prints usage and exits 2. */
export class UsageError extends WeftError {
  constructor(message: string, options?: WeftErrorOptions) {
    super('WEFT_E_USAGE', message, options);
  }
}

/** A function was called with an argument it cannot use. */
export class InvalidArgumentError extends WeftError {
  readonly parameter: string;
  constructor(parameter: string, message: string, options?: WeftErrorOptions) {
    super('WEFT_E_INVALID_ARGUMENT', `${parameter}: ${message}`, options);
    this.parameter = parameter;
  }
}

/** An external command (ip, nsenter, …) failed. */
export class CommandFailedError extends WeftError {
  readonly command: string;
  readonly exitCode: number | null;
  readonly stderr: string;
  constructor(command: string, exitCode: number | null, stderr: string, options?: WeftErrorOptions) {
    const detail = stderr.trim().split('\n').slice(-3).join(' | ');
    super('WEFT_E_COMMAND_FAILED', `\`${command}\` failed (exit ${exitCode ?? 'signal'})${detail ? `: ${detail}` : ''}`, options);
    this.command = command;
    this.exitCode = exitCode;
    this.stderr = stderr;
  }
}

/** The process lacks a privilege (root, a capability) that the operation needs. */
export class PrivilegeError extends WeftError {
  constructor(message: string, options?: WeftErrorOptions) {
    super('WEFT_E_PRIVILEGE', message, options);
  }
}

export function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
