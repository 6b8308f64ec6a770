// The agent process's public API (see agent.ts).
export { Agent, AgentSetupError, type AgentDump, type AgentEnvironment, type Readiness } from './agent.js';
export { decideOnExit, decideFromDaemonSet, ON_EXIT_MODES, type OnExit, type ExitDecision, type DaemonSetRef, type ExitPolicyContext } from './exit-policy.js';
export { NodeChecksPublisher, type NodeChecksPublisherOptions } from './node-checks-publisher.js';
export { agentOptionsFromFlags, parseDuration, parseHostPort, type AgentOptions, type RawAgentFlags, type HostPort } from './options.js';
export { PodDiscovery, podOfCgroupPath, cgroupNamespaceView, hostCgroupPath, findCgroupOfPid, type PodProcess, type DiscoveryResult, type CgroupNamespaceView } from './pod-discovery.js';
export { Enroller, PodNotFoundError, type EnrolmentInfo, type EnrolmentState } from './enroller.js';
export { APP_MARK, APP_TABLE, setupPodRouting, teardownPodRouting } from './pod-routing.js';
