/**
 * Flag parsing for the commands, on `node:util` parseArgs, with every parse error turned into a
 * one-line usage error.
 *
 * @module
 */

import { parseArgs, type ParseArgsOptionsConfig } from "node:util";
import { usageError } from "../errors.ts";

export { formatBytes } from "../bytesize.ts";

/** A subcommand of the CLI. */
export interface Command {
  /** Its name on the command line. */
  name: string;
  /** One line for the command list. */
  summary: string;
  /** Full help text. */
  help: string;
  /** Runs it; resolves to the exit code. */
  run(args: string[]): Promise<number>;
}

/** Parses `args` for `command`, allowing at most `maxPositionals` positionals. */
export function parseFlags<T extends ParseArgsOptionsConfig>(
  command: string,
  args: string[],
  options: T,
  maxPositionals: number,
) {
  let parsed;
  try {
    parsed = parseArgs({
      args,
      options: { ...options, help: { type: "boolean", short: "h" } },
      allowPositionals: true,
      strict: true,
    });
  } catch (err) {
    const message = err instanceof Error ? err.message.split("\n")[0] : String(err);
    throw usageError(`${message.replace(/\.$/, "")} (see promcase ${command} --help)`);
  }
  if (parsed.positionals.length > maxPositionals) {
    throw usageError(
      `unexpected argument ${JSON.stringify(parsed.positionals[maxPositionals])} ` +
        `(see promcase ${command} --help)`,
    );
  }
  return parsed;
}

/** `JSON.stringify` for machine output: bigints become numbers, two-space indent. */
export function toJson(value: unknown): string {
  return JSON.stringify(value, (_key, v) => (typeof v === "bigint" ? Number(v) : v), 2);
}

/** Prints a table with left-aligned columns. */
export function formatTable(rows: string[][]): string {
  const widths = rows[0].map((_, i) => Math.max(...rows.map((r) => (r[i] ?? "").length)));
  return rows.map((r) => r.map((c, i) => c.padEnd(widths[i])).join("  ").trimEnd()).join("\n");
}
