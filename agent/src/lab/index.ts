// Public API of the lab library (see README.md in this folder).
export { Lab, labExists } from './lab.js';
export type { MeshStatus } from './lab.js';
export { CONTROLLER_PORT, agentId, weftBin, type MeshRuntime, type AgentProcess } from './mesh.js';
export type { LabUpOptions, LabStatus, NodeStatus, PodStatus, ServiceStatus, AddPodOptions, ExecOptions, ExecResult, ChangeResult, ProbeResult } from './lab.js';
export { sweep, destroyLab, knownLabs, labHealth, labLeftovers, labProcesses, removeLab } from './sweep.js';
export type { SweepResult, LabHealth, LabHealthState } from './sweep.js';
export { addressPlan, inBenchmarkRange, MAX_SLOTS, MAX_NODES } from './address-plan.js';
export type { AddressPlan } from './address-plan.js';
export { cgroup2Mount, podCgroupLayout, cgroupOfProcess } from './cgroup.js';
export type { CgroupDriver, QosClass, PodCgroupSpec, PodCgroupLayout } from './cgroup.js';
export { parseManifests, loadManifests, objectKey, KINDS } from './manifests.js';
export type { ManifestObject, SourcedObject, ObjectMeta } from './manifests.js';
export { parseLabelChange, applyLabelChanges } from './labels.js';
export { defaultPods, ECHO_PORT, HTTP_PORT } from './default-layout.js';
export { DEFAULT_LAB_NAME, labRoot, stateDirOf, validateLabName, hostPrefix } from './names.js';
export { processAlive } from './process.js';
export { sampleAppPath, probeClientPath, spawnInPod, spawnInNetns } from './pod-process.js';
export * from './errors.js';
