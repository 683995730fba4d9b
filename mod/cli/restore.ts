/**
 * `promcase restore ARCHIVE --into DIR`: verifies while extracting and prints how to serve the data.
 *
 * @module
 */

import { restoreArchive } from "../archive/restore.ts";
import { usageError } from "../errors.ts";
import { prometheusVersion } from "../prometheus.ts";
import { SERVE_CONFIG, SERVE_CONFIG_NAME, serveCommand, shellQuote } from "../serve.ts";
import { type Command, formatBytes, parseFlags, toJson } from "./args.ts";
import { createProgress } from "./progress.ts";

const _HELP = `Usage: promcase restore ARCHIVE --into DIR [--json]

Extracts the archive into DIR (which must be new or empty) while verifying every checksum; a bad
archive leaves nothing behind. DIR then holds data/ (the Prometheus storage dir), manifest.json and
a prometheus.yml that scrapes nothing. Prints the command that serves the data with a local
Prometheus: no scrape targets, retention far beyond the data's age (retention counts from the newest
block, so a short one would delete the import), native histograms enabled where needed.

Options:
  --into DIR            where to restore (required)
  --prometheus-bin BIN  the Prometheus binary for the printed command (default: prometheus)
  --json                print the result as JSON on stdout
  -h, --help

Example:
  promcase restore promcase-db1-20261125T1030Z-24h.tar.gz --into ./case-1234
`;

/** The restore command. */
export const restoreCommand: Command = {
  name: "restore",
  summary: "verify and extract an archive, and print how to serve it",
  help: _HELP,
  async run(args) {
    const { values, positionals } = parseFlags("restore", args, {
      into: { type: "string" },
      "prometheus-bin": { type: "string" },
      json: { type: "boolean" },
    }, 1);
    if (values.help) {
      console.log(_HELP);
      return 0;
    }
    if (positionals.length === 0) throw usageError("name the archive to restore");
    if (!values.into) throw usageError("give the target directory with --into DIR");
    const progress = createProgress("restore");
    let restored;
    try {
      restored = await restoreArchive(positionals[0], values.into, {
        onProgress: (d, t) => progress.update(d, t),
        extraFiles: { [SERVE_CONFIG_NAME]: SERVE_CONFIG },
      });
    } finally {
      progress.done();
    }
    const bin = values["prometheus-bin"] ?? "prometheus";
    const localVersion = await prometheusVersion(bin);
    const dir = await Deno.realPath(restored.dir);
    const command = serveCommand({ dir, manifest: restored.manifest, localVersion, bin });
    const { window } = restored.manifest;
    if (values.json) {
      console.log(toJson({
        dir,
        dataDir: `${dir}/data`,
        files: restored.files,
        bytes: restored.bytes,
        window,
        incident: restored.manifest.incident,
        localPrometheusVersion: localVersion,
        serveCommand: command,
      }));
    } else {
      console.log(
        [
          `Restored ${restored.files} files (${formatBytes(restored.bytes)}) into ${dir}`,
          `Window: ${window.from} to ${window.to}; incident at ${restored.manifest.incident.at}`,
          localVersion
            ? `Local Prometheus: ${localVersion}`
            : `No Prometheus found as "${bin}": install one or pass --prometheus-bin`,
          "Serve it with:",
          `  ${shellQuote(command)}`,
        ].join("\n"),
      );
    }
    for (const warning of restored.manifest.warnings) console.error(`note from export: ${warning}`);
    return 0;
  },
};
