// The shape of a `weft` command. Each command is one module under commands/; main.ts dispatches.
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { UsageError } from '../common/errors.js';

export type OptionSpec = NonNullable<ParseArgsConfig['options']>;

export interface Parsed {
  values: Record<string, string | boolean | string[] | boolean[] | undefined>;
  positionals: string[];
}

export interface Io {
  out: (text: string) => void;
  err: (text: string) => void;
}

export interface Command {
  name: string;
  /** One line for the command list. */
  summary: string;
  /** Usage lines, without the leading "Usage:". */
  usage: string[];
  /** Longer help: what it does, then options. */
  help?: string;
  options?: OptionSpec;
  /** Positional argument count bounds; default: none allowed. */
  positionals?: { min: number; max: number };
  subcommands?: Command[];
  run?: (args: Parsed, io: Io) => Promise<number>;
}

export const outputOption: OptionSpec = {
  output: { type: 'string', short: 'o', default: 'table' },
};

export function parseCommandArgs(cmd: Command, argv: string[]): Parsed {
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      options: { help: { type: 'boolean', short: 'h' }, ...(cmd.options ?? {}) },
      allowPositionals: true,
      strict: true,
    });
  } catch (err) {
    throw new UsageError((err as Error).message.replace(/\. To specify a positional argument.*$/s, ''));
  }
  const positionals = parsed.positionals;
  const bounds = cmd.positionals ?? { min: 0, max: 0 };
  if (!parsed.values.help) {
    if (positionals.length < bounds.min) throw new UsageError(`${cmd.name}: missing argument`);
    if (positionals.length > bounds.max) throw new UsageError(`${cmd.name}: unexpected argument '${positionals[bounds.max]}'`);
  }
  return { values: parsed.values as Parsed['values'], positionals };
}

export function outputFormat(args: Parsed): 'table' | 'json' {
  const o = args.values.output;
  if (o === 'json' || o === 'table') return o;
  throw new UsageError(`-o must be 'table' or 'json', not '${String(o)}'`);
}

export function renderHelp(cmd: Command, path: string[]): string {
  const lines = [`Usage:`, ...cmd.usage.map((u) => `  ${u}`)];
  if (cmd.help) lines.push('', cmd.help.trimEnd());
  if (cmd.subcommands?.length) {
    lines.push('', 'Commands:');
    const width = Math.max(...cmd.subcommands.map((c) => c.name.length));
    for (const sub of cmd.subcommands) lines.push(`  ${sub.name.padEnd(width)}  ${sub.summary}`);
    lines.push('', `Run \`${[...path, '<command>'].join(' ')} --help\` for more on a command.`);
  }
  return lines.join('\n') + '\n';
}

/** Renders rows as an aligned text table with a header. */
export function table(header: string[], rows: string[][]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const fmt = (r: string[]) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]!))).join('  ').trimEnd();
  return [fmt(header), ...rows.map(fmt)].join('\n') + '\n';
}
