// Entry point of the `weft` command: finds the (sub)command, parses its flags, runs it and maps
// errors to exit codes: 2 for usage errors, 1 for failures.
import { WeftError, UsageError } from '../common/errors.js';
import { flushLogs } from '../common/log.js';
import { parseCommandArgs, renderHelp, type Command, type Io } from './command.js';
import { commands } from './commands/index.js';

export const root: Command = {
  name: 'weft',
  summary: 'Weft service mesh',
  usage: ['weft <command> [flags]', 'weft <command> --help'],
  help: 'Weft is a sidecarless service mesh: an eBPF-steered node proxy with mutual TLS, SPIFFE\nidentities and L4 authorization, wire-compatible with Istio ambient.',
  options: { version: { type: 'boolean', short: 'v' } },
  subcommands: commands,
};

const stdio: Io = {
  out: (t) => process.stdout.write(t),
  err: (t) => process.stderr.write(t),
};

export async function main(argv: string[], io: Io = stdio): Promise<number> {
  const path = ['weft'];
  let cmd = root;
  let rest = argv;
  // Walk down the subcommand tree as long as the next word names a subcommand.
  while (cmd.subcommands && rest.length > 0 && !rest[0]!.startsWith('-')) {
    const next = cmd.subcommands.find((c) => c.name === rest[0]);
    if (!next) {
      const names = cmd.subcommands.map((c) => c.name).join(', ');
      io.err(`weft: unknown command '${[...path.slice(1), rest[0]].join(' ')}' (one of: ${names})\nRun \`${path.join(' ')} --help\` for more.\n`);
      return 2;
    }
    cmd = next;
    path.push(next.name);
    rest = rest.slice(1);
  }
  try {
    const args = parseCommandArgs(cmd, rest);
    if (args.values.help) {
      io.out(renderHelp(cmd, path));
      return 0;
    }
    if (cmd === root && args.values.version) {
      return commands.find((c) => c.name === 'version')!.run!(args, io);
    }
    if (!cmd.run) {
      io.err(`weft: '${path.join(' ')}' needs a command\n${renderHelp(cmd, path)}`);
      return 2;
    }
    return await cmd.run(args, io);
  } catch (err) {
    if (err instanceof UsageError) {
      io.err(`weft: ${err.message}\nUsage:\n${cmd.usage.map((u) => `  ${u}`).join('\n')}\nRun \`${path.join(' ')} --help\` for more.\n`);
      return 2;
    }
    if (err instanceof WeftError) {
      io.err(`weft: ${err.message} [${err.code}]\n${err.hint ? `hint: ${err.hint}\n` : ''}`);
      return 1;
    }
    io.err(`weft: unexpected error: ${(err as Error)?.stack ?? String(err)}\n`);
    return 1;
  } finally {
    flushLogs();
  }
}
