/**
 * `promcase restore ARCHIVE --into DIR`: verifies while extracting and prints how to serve the data.
 * `promcase restore --add ARCHIVE DATA_DIR`: adds an archive's blocks to an existing data dir.
 *
 * @module
 */

import type { AgeKeys } from "../archive/age.ts";
import { addArchive, restoreArchive } from "../archive/restore.ts";
import { shippedRange } from "../archive/manifest.ts";
import { usageError } from "../errors.ts";
import { checkPrometheusVersion, prometheusVersion } from "../prometheus.ts";
import { SERVE_CONFIG, SERVE_CONFIG_NAME, serveCommand, shellQuote } from "../serve.ts";
import { AGE_KEY_FLAGS, AGE_KEY_HELP, ageKeysFromFlags } from "./age_flags.ts";
import { type Command, formatBytes, parseFlags, toJson } from "./args.ts";
import { createProgress } from "./progress.ts";

const _HELP = `Usage: promcase restore ARCHIVE --into DIR [--prometheus-bin BIN] [--json]
       promcase restore --add ARCHIVE DATA_DIR [--prometheus-bin BIN] [--json]

Extracts the archive into DIR (which must be new or empty) while verifying every checksum; a bad
archive leaves nothing behind. DIR then holds data/ (the Prometheus storage dir), manifest.json and
a prometheus.yml that scrapes nothing. Prints the command that serves the data with a local
Prometheus: no scrape targets, retention far beyond the data's age (retention counts from the newest
block, so a short one would delete the import), native histograms enabled where needed.

With --add, adds the archive's blocks to DATA_DIR, a Prometheus data dir that already holds data
(your own Prometheus' storage dir, say). Only archives that hold nothing but blocks (a block-rewrite
export) can be added; a block already in DATA_DIR is refused before anything is changed. Each block
is built as <ULID>.tmp-for-creation inside DATA_DIR (which Prometheus ignores, and deletes when it
starts) and renamed in only when the whole archive checked out. A running Prometheus picks the
blocks up at its next block reload or restart.

A split archive (ARCHIVE.part001, ...) is named by any of its parts, all of them, or ARCHIVE.
An age-encrypted archive (NAME.tar.gz.age) is decrypted as it is read, with --identity or
--passphrase-file; a wrong key, a changed or cut ciphertext restores nothing.

Options:
  --into DIR            where to restore
  --add                 add the blocks to the existing data dir DATA_DIR instead
  --prometheus-bin BIN  the local Prometheus, asked for its version (default: prometheus); warns
                        when it is older than the archive's data needs
  --json                print the result as JSON on stdout
${AGE_KEY_HELP}
  -h, --help

Examples:
  promcase restore promcase-db1-20261125T1030Z-24h.tar.gz --into ./case-1234
  promcase restore --add promcase-db1-20261125T1030Z-24h.tar.gz ~/prometheus/data
  promcase restore incident.tar.gz.age --identity ~/.promcase/support.key --into ./case-1234
`;

/** The restore command. */
export const restoreCommand: Command = {
  name: "restore",
  summary: "verify and extract an archive, and print how to serve it",
  help: _HELP,
  async run(args) {
    const { values, positionals } = parseFlags("restore", args, {
      into: { type: "string" },
      add: { type: "boolean" },
      "prometheus-bin": { type: "string" },
      json: { type: "boolean" },
      ...AGE_KEY_FLAGS,
    }, Infinity);
    if (values.help) {
      console.log(_HELP);
      return 0;
    }
    const decrypt = await ageKeysFromFlags(values);
    if (values.add) {
      if (values.into) throw usageError("give either --into DIR or --add ARCHIVE DATA_DIR");
      if (positionals.length < 2) {
        throw usageError("name the archive and the data dir: restore --add ARCHIVE DATA_DIR");
      }
      return await _add(positionals.slice(0, -1), positionals.at(-1)!, { ...values, decrypt });
    }
    if (positionals.length === 0) throw usageError("name the archive to restore");
    if (!values.into) throw usageError("give the target directory with --into DIR");
    const progress = createProgress("restore");
    let restored;
    try {
      restored = await restoreArchive(positionals, values.into, {
        onProgress: (d, t) => progress.update(d, t),
        extraFiles: { [SERVE_CONFIG_NAME]: SERVE_CONFIG },
        decrypt,
      });
    } finally {
      progress.done();
    }
    const bin = values["prometheus-bin"] ?? "prometheus";
    const localVersion = await prometheusVersion(bin);
    const versionWarning = checkPrometheusVersion(restored.manifest, localVersion);
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
        shipped: shippedRange(restored.manifest),
        incident: restored.manifest.incident,
        localPrometheusVersion: localVersion,
        minPrometheusVersion: restored.manifest.minPrometheusVersion ?? null,
        serveCommand: command,
        warnings: versionWarning ? [versionWarning] : [],
      }));
    } else {
      console.log(
        [
          `Restored ${restored.files} files (${formatBytes(restored.bytes)}) into ${dir}`,
          `Window: ${window.from} to ${window.to}; incident at ${restored.manifest.incident.at}` +
          (shippedRange(restored.manifest).fromMs < window.fromMs
            ? `; data from ${shippedRange(restored.manifest).from} (lead-in)`
            : ""),
          localVersion
            ? `Local Prometheus: ${localVersion}`
            : `No Prometheus found as "${bin}": install one or pass --prometheus-bin`,
          "Serve it with:",
          `  ${shellQuote(command)}`,
        ].join("\n"),
      );
    }
    if (versionWarning) console.error(`warning: ${versionWarning}`);
    for (const warning of restored.manifest.warnings) console.error(`note from export: ${warning}`);
    return 0;
  },
};

async function _add(
  archive: string[],
  dataDir: string,
  values: { "prometheus-bin"?: string; json?: boolean; decrypt?: AgeKeys },
): Promise<number> {
  const progress = createProgress("restore");
  let added;
  try {
    added = await addArchive(archive, dataDir, {
      onProgress: (d, t) => progress.update(d, t),
      decrypt: values.decrypt,
    });
  } finally {
    progress.done();
  }
  const bin = values["prometheus-bin"] ?? "prometheus";
  const localVersion = await prometheusVersion(bin);
  const versionWarning = checkPrometheusVersion(added.manifest, localVersion);
  const warnings = [...(versionWarning ? [versionWarning] : []), ...added.warnings];
  if (values.json) {
    console.log(toJson({
      dataDir: await Deno.realPath(dataDir),
      blocks: added.blocks,
      files: added.files,
      bytes: added.bytes,
      window: added.manifest.window,
      incident: added.manifest.incident,
      localPrometheusVersion: localVersion,
      minPrometheusVersion: added.manifest.minPrometheusVersion ?? null,
      warnings,
    }));
  } else {
    console.log(
      [
        `Added ${added.blocks.length} blocks (${added.files} files, ${
          formatBytes(added.bytes)
        }) to ${dataDir}:`,
        ...added.blocks.map((ulid) => `  ${ulid}`),
        `Window: ${added.manifest.window.from} to ${added.manifest.window.to}; ` +
        `incident at ${added.manifest.incident.at}`,
        "A running Prometheus loads them at its next block reload (about a minute) or restart.",
      ].join("\n"),
    );
  }
  for (const warning of warnings) console.error(`warning: ${warning}`);
  for (const warning of added.manifest.warnings) console.error(`note from export: ${warning}`);
  return 0;
}
