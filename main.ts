/**
 * promcase: gets a customer's Prometheus data around an incident to the support engineer.
 * This is the CLI entry: it dispatches to a command and turns every error into one line on stderr
 * and an exit code (1 for failures, 2 for usage errors); nothing else prints errors.
 *
 * @module
 */

import type { Command } from "./mod/cli/args.ts";
import { exportCommand } from "./mod/cli/export.ts";
import { inspectCommand } from "./mod/cli/inspect.ts";
import { keygenCommand } from "./mod/cli/keygen.ts";
import { restoreCommand } from "./mod/cli/restore.ts";
import { revealCommand } from "./mod/cli/reveal.ts";
import { verifyCommand } from "./mod/cli/verify.ts";
import { viewCommand } from "./mod/cli/view.ts";
import { describeError, EXIT_FAILURE, EXIT_USAGE, PromcaseError } from "./mod/errors.ts";
import { isInterrupted, runInterruptCleanups } from "./mod/interrupt.ts";
import { VERSION } from "./mod/version.ts";

const COMMANDS: Command[] = [
  inspectCommand,
  exportCommand,
  verifyCommand,
  restoreCommand,
  viewCommand,
  keygenCommand,
  revealCommand,
];

function usage(): string {
  const width = Math.max(...COMMANDS.map((c) => c.name.length));
  return [
    "Usage: promcase <command> [options]",
    "",
    "Commands:",
    ...COMMANDS.map((c) => `  ${c.name.padEnd(width)}  ${c.summary}`),
    "",
    "Run 'promcase <command> --help' for a command's options and examples.",
    "Customer side:  promcase export /var/lib/prometheus/metrics2 --at 2026-11-25T10:30:00Z --before 24h",
    "Support side:   promcase view ARCHIVE   (or: promcase verify ARCHIVE && promcase restore ARCHIVE --into DIR)",
  ].join("\n");
}

/** Runs the CLI with `args` and resolves to the exit code. */
export async function main(args: string[]): Promise<number> {
  const [name, ...rest] = args;
  if (name === undefined || name === "help" || name === "--help" || name === "-h") {
    console.log(usage());
    return name === undefined ? EXIT_USAGE : 0;
  }
  if (name === "--version" || name === "version") {
    console.log(`promcase ${VERSION}`);
    return 0;
  }
  const command = COMMANDS.find((c) => c.name === name);
  if (!command) {
    console.error(
      `promcase: unknown command "${name}" (commands: ${COMMANDS.map((c) => c.name).join(", ")})`,
    );
    return EXIT_USAGE;
  }
  try {
    return await command.run(rest);
  } catch (err) {
    // Torn down by an interruption: the signal handler reports and exits.
    if (isInterrupted()) return await new Promise<number>(() => {});
    if (err instanceof PromcaseError) {
      console.error(`promcase ${name}: ${err.message}`);
      return err.exitCode;
    }
    // A bug or an unforeseen runtime error: still one line, and PROMCASE_DEBUG shows the stack.
    console.error(`promcase ${name}: unexpected error: ${describeError(err)}`);
    if (Deno.env.get("PROMCASE_DEBUG")) console.error(err);
    return EXIT_FAILURE;
  }
}

if (import.meta.main) {
  const interrupted = (signal: Deno.Signal, code: number) => async () => {
    console.error(`\npromcase: interrupted by ${signal}; removing partial output`);
    await runInterruptCleanups();
    Deno.exit(code);
  };
  const listeners: [Deno.Signal, () => void][] = [
    ["SIGINT", interrupted("SIGINT", 130)],
    ...(Deno.build.os === "windows" ? [] : [["SIGTERM", interrupted("SIGTERM", 143)] as [
      Deno.Signal,
      () => void,
    ]]),
  ];
  for (const [signal, listener] of listeners) Deno.addSignalListener(signal, listener);
  const code = await main(Deno.args);
  // An interruption that arrived as the work finished: its handler reports and exits.
  if (isInterrupted()) await new Promise(() => {});
  for (const [signal, listener] of listeners) Deno.removeSignalListener(signal, listener);
  Deno.exit(code);
}
