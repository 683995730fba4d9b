/**
 * Runs the promcase CLI as a user would (`deno run -A main.ts …`), for tests of exit codes,
 * stdout and stderr.
 *
 * @module
 */

const MAIN = new URL("../main.ts", import.meta.url).pathname;

/** What a CLI run gave. */
export interface CliResult {
  /** Exit code. */
  code: number;
  /** Standard output. */
  stdout: string;
  /** Standard error. */
  stderr: string;
}

/** How to run the CLI. */
export interface CliOptions {
  /** Working directory. */
  cwd?: string;
  /** Extra environment variables. */
  env?: Record<string, string>;
  /** A command to run promcase under, e.g. `["setpriv", "--reuid=65534", …]`. */
  wrapper?: string[];
}

/**
 * A wrapper that holds promcase to file modes even where the tests run as root (root reads
 * everything): without CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH, as an operator's account would
 * be. Root's own Deno cache stays usable, unlike under another user.
 */
export const UNPRIVILEGED: string[] | undefined = Deno.uid() === 0
  ? ["setpriv", "--bounding-set=-dac_override,-dac_read_search"]
  : undefined;

/** Runs `promcase ARGS` and collects its output. */
export async function runCli(args: string[], options: CliOptions = {}): Promise<CliResult> {
  const argv = [...(options.wrapper ?? []), Deno.execPath(), "run", "--allow-all", MAIN, ...args];
  const output = await new Deno.Command(argv[0], {
    args: argv.slice(1),
    cwd: options.cwd,
    stdout: "piped",
    stderr: "piped",
    env: { NO_COLOR: "1", ...options.env },
  }).output();
  const decoder = new TextDecoder();
  return {
    code: output.code,
    stdout: decoder.decode(output.stdout),
    stderr: decoder.decode(output.stderr),
  };
}

/** Runs the CLI and fails with its stderr unless it exits 0; returns the parsed `--json` output. */
export async function runCliJson<T = Record<string, unknown>>(
  args: string[],
  options: CliOptions = {},
): Promise<T> {
  const result = await runCli([...args, "--json"], options);
  if (result.code !== 0) {
    throw new Error(`promcase ${args.join(" ")} exited ${result.code}: ${result.stderr}`);
  }
  return JSON.parse(result.stdout) as T;
}

/** Asserts the shape every user-facing failure must have: one line on stderr, no stack trace. */
export function isOneLineError(result: CliResult): boolean {
  const lines = result.stderr.trim().split("\n");
  return lines.length === 1 && /^promcase \w+: /.test(lines[0]) &&
    !/\bat .*:\d+:\d+/.test(result.stderr);
}

/** `export DATA_DIR --from 0 --to now -o ARCHIVE`: everything in a data dir, into `archive`. */
export function exportAllArgs(dataDir: string, archive: string): string[] {
  return ["export", dataDir, "--from", "0", "--to", "now", "-o", archive];
}
