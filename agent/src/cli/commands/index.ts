import type { Command } from '../command.js';
import { checkCommand } from './check.js';
import { controllerCommand } from './controller.js';
import { labCommand } from './lab.js';
import { versionCommand } from './version.js';

/** Every top-level command, in the order `weft --help` lists them. */
export const commands: Command[] = [checkCommand, controllerCommand, labCommand, versionCommand];
