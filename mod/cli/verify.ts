/**
 * `promcase verify ARCHIVE [--json]`: checks an archive completely without extracting it.
 *
 * @module
 */

import { checkArchive } from "../archive/reader.ts";
import { usageError } from "../errors.ts";
import { AGE_KEY_FLAGS, AGE_KEY_HELP, ageKeysFromFlags } from "./age_flags.ts";
import { type Command, formatBytes, parseFlags, toJson } from "./args.ts";
import { createProgress } from "./progress.ts";

const _HELP = `Usage: promcase verify ARCHIVE [--identity FILE | --passphrase-file FILE] [--json]

Recomputes the SHA-256 of every file in the archive and compares it with the manifest, checks that
the archive holds exactly the files the manifest lists and no unsafe entries, and compares the
archive with its ARCHIVE.sha256 sidecar when it is there. Names every file that is wrong and exits
with 1 on any mismatch.

A split archive (ARCHIVE.part001, ARCHIVE.part002, ...) is named by any of its parts, by all of
them (ARCHIVE.part*) or by ARCHIVE: every part must be present and match the sidecar; a missing,
short or changed part is named.

An age-encrypted archive (NAME.tar.gz.age) is decrypted as it is read: its sidecar covers the file
as sent, the manifest inside the content. A wrong key, a changed or cut ciphertext is one line.

Options:
${AGE_KEY_HELP}
  --json                  print the result as JSON on stdout
  -h, --help

Examples:
  promcase verify promcase-db1-20261125T1030Z-24h.tar.gz
  promcase verify promcase-db1-20261125T1030Z-24h.tar.gz.part001
  promcase verify promcase-db1-20261125T1030Z-24h.tar.gz.age --identity ~/.promcase/support.key
`;

/** The verify command. */
export const verifyCommand: Command = {
  name: "verify",
  summary: "check an archive's checksums and manifest",
  help: _HELP,
  async run(args) {
    const { values, positionals } = parseFlags(
      "verify",
      args,
      { json: { type: "boolean" }, ...AGE_KEY_FLAGS },
      Infinity,
    );
    if (values.help) {
      console.log(_HELP);
      return 0;
    }
    if (positionals.length === 0) throw usageError("name the archive to verify");
    const decrypt = await ageKeysFromFlags(values);
    const progress = createProgress("verify");
    let check;
    try {
      check = await checkArchive(positionals, {
        onProgress: (d, t) => progress.update(d, t),
        decrypt,
      });
    } finally {
      progress.done();
    }
    const archive = check.path;
    const ok = check.problems.length === 0;
    if (values.json) {
      console.log(toJson({
        archive,
        parts: check.parts,
        ok,
        problems: check.problems,
        sha256: check.sha256,
        size: check.size,
        files: check.files,
        bytes: check.bytes,
        sidecar: check.sidecar,
        formatVersion: check.manifest?.formatVersion ?? null,
        window: check.manifest?.window ?? null,
      }));
    } else if (ok) {
      const m = check.manifest!;
      const parts = check.parts[0] !== archive ? ` in ${check.parts.length} parts` : "";
      console.log(
        `OK ${archive}: ${check.files} files, ${formatBytes(check.bytes)} verified${parts}; ` +
          `sidecar ${check.sidecar}; window ${m.window.from} to ${m.window.to} from ${m.host}`,
      );
    }
    if (!ok) {
      for (const problem of check.problems) {
        console.error(`promcase verify: ${archive}: ${problem}`);
      }
    } else if (check.sidecar === "missing") {
      console.error(`warning: no ${archive}.sha256 beside the archive to compare with`);
    }
    return ok ? 0 : 1;
  },
};
