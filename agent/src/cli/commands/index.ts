import type { Command } from '../command.js';
import { agentCommand } from './agent.js';
import { checkCommand } from './check.js';
import { certsCommand } from './certs.js';
import { connectionsCommand } from './connections.js';
import { controllerCommand } from './controller.js';
import { policiesCommand } from './policies.js';
import { servicesCommand } from './services.js';
import { workloadsCommand } from './workloads.js';
import { labCommand } from './lab.js';
import { manifestCommand } from './manifest.js';
import { versionCommand } from './version.js';

/** Every top-level command, in the order `weft --help` lists them. */
export const commands: Command[] = [
  labCommand, checkCommand, workloadsCommand, servicesCommand, policiesCommand, certsCommand, connectionsCommand,
  manifestCommand, agentCommand, controllerCommand, versionCommand,
];
