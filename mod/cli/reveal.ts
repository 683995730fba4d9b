/**
 * `promcase reveal`: the customer side maps pseudonyms back to the originals, with the key and the
 * mapping table the export left beside it (`KEY.map`, never in the archive). Each entry is checked
 * against the key.
 *
 * @module
 */

import { PromcaseError, usageError } from "../errors.ts";
import {
  archivePseudonyms,
  findPseudonyms,
  isPseudonymArg,
  loadPseudonymKey,
  revealPseudonyms,
} from "../pseudonym.ts";
import { mappingPath, readMapping } from "../pseudonym_table.ts";
import { type Command, parseFlags, toJson } from "./args.ts";
import { AGE_KEY_FLAGS, ageKeysFromFlags } from "./age_flags.ts";

const _HELP = `Usage: promcase reveal --pseudonym-key FILE PSEUDONYM...
       promcase reveal --pseudonym-key FILE --from-file TEXT_FILE
       promcase reveal --pseudonym-key FILE ARCHIVE

Maps pseudonyms of a pseudonymized export (export --pseudonymize) back to the original values, on
the customer's side: the key and the mapping table FILE.map that the export wrote beside it stay
there, never in the archive. Prints one PSEUDONYM<TAB>ORIGINAL line each; a :port is kept
(anon-3f2a9c1b04d2:9100 -> db1:9100). --from-file takes every pseudonym found in a file (a
support engineer's notes, a query); ARCHIVE: every pseudonym in the archive, a whole mapping
table. Unknown pseudonyms are reported on stderr (exit status 1).

Options:
  --pseudonym-key FILE   the key the export used (required)
  --from-file FILE       reveal the pseudonyms found in FILE
  --json                 print {"PSEUDONYM": "ORIGINAL", ...} (unknown ones as null)
  --identity FILE        for an encrypted ARCHIVE (or --passphrase-file FILE)
  -h, --help

Examples:
  promcase reveal --pseudonym-key ~/.promcase-pseudonym.key anon-3f2a9c1b04d2:9100
  promcase reveal --pseudonym-key ~/.promcase-pseudonym.key promcase-anon-1a2b-20261125T1030Z-24h.tar.gz
`;

/** The reveal command. */
export const revealCommand: Command = {
  name: "reveal",
  summary: "map pseudonyms of a pseudonymized export back to the originals (customer side)",
  help: _HELP,
  async run(args) {
    const { values, positionals } = parseFlags("reveal", args, {
      "pseudonym-key": { type: "string" },
      "from-file": { type: "string" },
      json: { type: "boolean" },
      ...AGE_KEY_FLAGS,
    }, Infinity);
    if (values.help) {
      console.log(_HELP);
      return 0;
    }
    const keyPath = values["pseudonym-key"];
    if (keyPath === undefined) {
      throw usageError("give the key the export used with --pseudonym-key FILE");
    }
    try {
      await Deno.stat(keyPath);
    } catch {
      throw new PromcaseError(`no pseudonym key at ${keyPath}`);
    }
    const { key } = await loadPseudonymKey(keyPath);
    const table = await readMapping(mappingPath(keyPath));
    let wanted: string[];
    if (values["from-file"] !== undefined) {
      if (positionals.length > 0) throw usageError("give --from-file or pseudonyms, not both");
      wanted = findPseudonyms(await _readText(values["from-file"]));
    } else if (positionals.length === 1 && !isPseudonymArg(positionals[0])) {
      wanted = await archivePseudonyms(positionals[0], await ageKeysFromFlags(values));
    } else if (positionals.length > 0) {
      const bad = positionals.find((p) => !isPseudonymArg(p));
      if (bad !== undefined) {
        throw usageError(`not a pseudonym: ${JSON.stringify(bad)} (they look like anon-<12 hex>)`);
      }
      wanted = positionals;
    } else {
      throw usageError("give pseudonyms, --from-file FILE or an ARCHIVE (see promcase reveal -h)");
    }
    const revealed = revealPseudonyms(key, table, [...new Set(wanted)]);
    const unknown = [...revealed].filter(([, o]) => o === null).map(([p]) => p);
    if (values.json) {
      console.log(toJson(Object.fromEntries(revealed)));
    } else {
      const lines = [...revealed].filter(([, o]) => o !== null).map(([p, o]) => `${p}\t${o}`);
      if (lines.length > 0) console.log(lines.join("\n"));
    }
    if (unknown.length > 0) {
      console.error(
        `promcase reveal: ${unknown.length} pseudonym(s) not in ${mappingPath(keyPath)} ` +
          `(made with another key, or on another host): ${unknown.slice(0, 5).join(" ")}`,
      );
      return 1;
    }
    return 0;
  },
};

async function _readText(path: string): Promise<string> {
  try {
    return await Deno.readTextFile(path);
  } catch (err) {
    throw new PromcaseError(`cannot read ${path}: ${(err as Error).message}`);
  }
}
