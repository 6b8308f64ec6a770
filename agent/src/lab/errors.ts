// Errors of the lab, each with a stable code and a message that says what to do.
import { WeftError, type WeftErrorOptions } from '../common/errors.js';

/** No lab of that name is up (no state directory). */
export class LabNotFoundError extends WeftError {
  constructor(name: string, stateDir: string) {
    super('WEFT_E_LAB_NOT_FOUND', `no lab named '${name}' is up (no state in ${stateDir})`, {
      hint: `start it with \`weft lab up --name ${name}\``,
    });
  }
}

/** `up` found a healthy lab of the same name. */
export class LabExistsError extends WeftError {
  constructor(name: string) {
    super('WEFT_E_LAB_EXISTS', `a lab named '${name}' is already up and healthy`, {
      hint: `use it, or tear it down first with \`weft lab down --name ${name}\``,
    });
  }
}

/** Another live process holds the lab's lock for longer than we wait. */
export class LabBusyError extends WeftError {
  constructor(name: string, holder: number) {
    super('WEFT_E_LAB_BUSY', `lab '${name}' is being changed by process ${holder}`, {
      hint: 'wait for that command to finish, or stop it; a dead holder is detected automatically',
    });
  }
}

/** No free address slot, node index or pod address. */
export class LabCapacityError extends WeftError {
  constructor(message: string, options?: WeftErrorOptions) {
    super('WEFT_E_LAB_CAPACITY', message, options);
  }
}

/** A manifest is not valid YAML, names an unknown kind, or fails a schema check. */
export class ManifestError extends WeftError {
  readonly problems: ManifestProblem[];
  constructor(problems: ManifestProblem[]) {
    const lines = problems.map((p) => `${p.file}:${p.line}: ${p.message}`);
    super('WEFT_E_MANIFEST_INVALID', `invalid manifest${problems.length > 1 ? 's' : ''}; nothing was changed:\n  ${lines.join('\n  ')}`, {
      hint: 'fix the file(s) named above and run the command again',
    });
    this.problems = problems;
  }
}

export interface ManifestProblem {
  file: string;
  /** 1-based line number. */
  line: number;
  message: string;
}

/** An object a command refers to does not exist in the lab. */
export class LabObjectNotFoundError extends WeftError {
  constructor(what: string, options?: WeftErrorOptions) {
    super('WEFT_E_LAB_OBJECT_NOT_FOUND', `${what} not found in the lab; nothing was changed`, options);
  }
}

/** A change conflicts with the lab's current state (existing label, immutable field, …). */
export class LabConflictError extends WeftError {
  constructor(message: string, options?: WeftErrorOptions) {
    super('WEFT_E_LAB_CONFLICT', message, options);
  }
}

/** A pod's sample app did not come up. */
export class PodStartError extends WeftError {
  constructor(pod: string, reason: string, options?: WeftErrorOptions) {
    super('WEFT_E_LAB_POD_START', `pod ${pod} did not start: ${reason}`, options);
  }
}
