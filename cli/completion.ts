// `ferry completion bash`: a bash completion script generated from commander's command tree at the
// moment it is printed, so a command, option or choice added to cli/args.ts is completed without
// anyone touching this file. Completes commands, each command's options, the choices of an option
// or argument (--block, --status, the shell, `help <command>`) and files after --config.
import type { Argument, Command, Option } from 'commander';

interface OptionSpec {
  flags: string[];
  takesValue: boolean;
  choices: string[];
}

interface CommandSpec {
  name: string;
  options: OptionSpec[];
  /** What the positional arguments complete to (their choices). */
  words: string[];
}

const WORD = /^-{0,2}[A-Za-z0-9][\w.:-]*$/;

/** Every word put into the script: commander's names and choices, checked to need no quoting. */
function safe(words: string[]): string {
  for (const w of words) if (!WORD.test(w)) throw new Error(`cannot complete "${w}": not a plain word`);
  return words.join(' ');
}

function optionSpec(o: Option): OptionSpec {
  return {
    flags: [o.short, o.long].filter((f): f is string => f !== undefined),
    takesValue: o.required || o.optional,
    choices: o.argChoices ?? [],
  };
}

function argumentWords(cmd: Command, args: readonly Argument[], commandNames: string[]): string[] {
  // commander's help command takes a command name.
  if (cmd.name() === 'help') return commandNames;
  return args.flatMap((a) => a.argChoices ?? []);
}

function treeOf(program: Command): { global: OptionSpec[]; commands: CommandSpec[] } {
  const help = program.createHelp();
  const visible = help.visibleCommands(program);
  const names = visible.map((c) => c.name());
  return {
    global: help.visibleOptions(program).map(optionSpec),
    commands: visible.map((c) => ({
      name: c.name(),
      options: help.visibleOptions(c).map(optionSpec),
      words: argumentWords(c, c.registeredArguments, names),
    })),
  };
}

/** The value of `prev`, an option that takes one: its choices, files for a path, else nothing. */
function valueCases(options: OptionSpec[], indent: string): string[] {
  const lines: string[] = [];
  for (const o of options.filter((o) => o.takesValue)) {
    const pattern = o.flags.join('|');
    if (o.choices.length > 0) lines.push(`${indent}${pattern}) COMPREPLY=($(compgen -W "${safe(o.choices)}" -- "$cur")); return ;;`);
    else if (o.flags.includes('--config')) lines.push(`${indent}${pattern}) COMPREPLY=($(compgen -f -- "$cur")); return ;;`);
    else lines.push(`${indent}${pattern}) COMPREPLY=(); return ;;`);
  }
  return lines;
}

export function bashCompletion(program: Command): string {
  const { global, commands } = treeOf(program);
  const name = program.name();
  const fn = `_${name.replace(/[^A-Za-z0-9_]/g, '_')}_completion`;
  const globalFlags = global.flatMap((o) => o.flags);
  const globalWithValue = global.filter((o) => o.takesValue).flatMap((o) => o.flags);
  const lines = [
    `# bash completion for ${name}, generated from its command tree by \`${name} completion bash\`.`,
    `# Load it: source <(${name} completion bash)`,
    `# or keep it: ${name} completion bash > ~/.local/share/bash-completion/completions/${name}`,
    `${fn}() {`,
    '  local cur="${COMP_WORDS[COMP_CWORD]}" prev="${COMP_WORDS[COMP_CWORD-1]}"',
    '  local cmd="" opts="" words="" i',
    '  # The command: the first word that is neither an option nor the value of a global option.',
    '  for ((i = 1; i < COMP_CWORD; i++)); do',
    '    case "${COMP_WORDS[i]}" in',
    ...(globalWithValue.length > 0 ? [`      ${globalWithValue.join('|')}) ((i++)) ;;`] : []),
    '      -*) ;;',
    '      *) cmd="${COMP_WORDS[i]}"; break ;;',
    '    esac',
    '  done',
    '  case "$prev" in',
    ...valueCases(global, '    '),
    '  esac',
    '  case "$cmd" in',
    `    "") opts="${safe(globalFlags)}"; words="${safe(commands.map((c) => c.name))}" ;;`,
  ];
  for (const c of commands) {
    const values = valueCases(c.options, '        ');
    lines.push(`    ${safe([c.name])})`);
    if (values.length > 0) lines.push('      case "$prev" in', ...values, '      esac');
    lines.push(`      opts="${safe([...c.options.flatMap((o) => o.flags), ...globalFlags.filter((f) => f !== '-h' && f !== '--help')])}"; words="${safe(c.words)}" ;;`);
  }
  lines.push(
    '    *) return ;;',
    '  esac',
    '  if [[ "$cur" == -* ]]; then',
    '    COMPREPLY=($(compgen -W "$opts" -- "$cur"))',
    '  else',
    '    COMPREPLY=($(compgen -W "$words" -- "$cur"))',
    '  fi',
    '}',
    `complete -F ${fn} ${name}`,
    '',
  );
  return lines.join('\n');
}
