import { outputFormat, outputOption, type Command } from '../command.js';
import { VERSION } from '../../common/version.js';

export const versionCommand: Command = {
  name: 'version',
  summary: 'Print the Weft version',
  usage: ['weft version [-o json]'],
  options: outputOption,
  async run(args, io) {
    const info = { version: VERSION, node: process.versions.node, openssl: process.versions.openssl, platform: `${process.platform}/${process.arch}` };
    if (outputFormat(args) === 'json') io.out(JSON.stringify(info) + '\n');
    else io.out(`weft ${info.version} (node ${info.node}, openssl ${info.openssl}, ${info.platform})\n`);
    return 0;
  },
};
