// eBPF redirection: enrol/release pods, pinned state, reconciliation, original destinations.
export { Redirector, DEFAULT_BYPASS_MARK, type PodSpec, type EnrolOptions, type EnrolledPod, type PodInspection, type ReconcileResult, type RedirectorOptions } from './redirector.js';
export { PodGoneError, PodNotEnrolledError, RedirectAttachError, RedirectSetupError } from './errors.js';
export { PORT_OUTBOUND, PORT_INBOUND, PORT_HBONE, MAX_EXCLUDED_PORTS, type OrigDst } from './codec.js';
export type { Kernel } from './kernel.js';
