// The agent process's public API (see agent.ts).
export { Agent, AgentSetupError, type AgentDump, type Readiness } from './agent.js';
export { agentOptionsFromFlags, parseDuration, parseHostPort, type AgentOptions, type RawAgentFlags, type HostPort } from './options.js';
export { PodDiscovery, podOfCgroupPath, type PodProcess, type DiscoveryResult } from './pod-discovery.js';
export { Enroller, PodNotFoundError, type EnrolmentInfo, type EnrolmentState } from './enroller.js';
export { APP_MARK, APP_TABLE, setupPodRouting, teardownPodRouting } from './pod-routing.js';
