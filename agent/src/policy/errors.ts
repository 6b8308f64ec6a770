// Refusals of user-supplied policy manifests. They name the object, the field and the reason,
// so the author can fix the manifest; the rest of the configuration keeps being served.
import { WeftError } from '../common/errors.js';

export class InvalidPolicyError extends WeftError {
  readonly object: string;
  readonly field: string;
  readonly reason: string;
  constructor(object: string, field: string, reason: string) {
    super('WEFT_E_INVALID_POLICY', `${object}: ${field}: ${reason}`, {
      hint: 'fix the manifest and apply it again; the previous version of this policy (if any) is no longer served',
    });
    this.object = object;
    this.field = field;
    this.reason = reason;
  }
}
