/**
 * `export`'s pseudonymization flags (see `pseudonym.ts`): `--pseudonymize LABEL[,LABEL...]`,
 * `--pseudonymize-values REGEX`, `--drop-label LABEL` and `--pseudonym-key FILE`.
 *
 * @module
 */

import { usageError } from "../errors.ts";
import { loadPseudonymKey, Pseudonymizer } from "../pseudonym.ts";
import { mappingPath } from "../pseudonym_table.ts";

/** The flags, for parseFlags. */
export const PSEUDONYM_FLAGS = {
  pseudonymize: { type: "string", multiple: true },
  "pseudonymize-values": { type: "string", multiple: true },
  "drop-label": { type: "string", multiple: true },
  "pseudonym-key": { type: "string" },
} as const;

/** The help rows. */
export const PSEUDONYM_HELP =
  `Pseudonyms (the rewrite and --url; the key and the mapping table stay here):
  --pseudonymize L[,L...]   replace every value of these labels by a stable pseudonym
                            (anon-<12 hex digits>, keyed HMAC-SHA-256, a :port kept) in the
                            series and in the context (config, targets, rules, dashboards...)
  --pseudonymize-values RE  also replace each match of RE in any label value and in the context
                            (repeatable), e.g. '[a-z0-9.-]+\\.example\\.com'
  --drop-label LABEL        remove this label from every series (repeatable); series that would
                            collide are refused
  --pseudonym-key FILE      the HMAC key (created, mode 0600, when missing; reuse it so that
                            pseudonyms match across tickets); the export adds its pseudonyms to
                            FILE.map beside it, for promcase reveal`;

/** What the flags ask for: the pseudonymizer and where its key is, or undefined. */
export async function pseudonymizerFromFlags(values: {
  pseudonymize?: string[];
  "pseudonymize-values"?: string[];
  "drop-label"?: string[];
  "pseudonym-key"?: string;
  raw?: boolean;
}): Promise<{ pseudonymizer: Pseudonymizer; keyPath: string | null } | undefined> {
  const labels = (values.pseudonymize ?? []).flatMap((v) => v.split(",")).map((v) => v.trim())
    .filter((v) => v !== "");
  const patterns = values["pseudonymize-values"] ?? [];
  const dropLabels = (values["drop-label"] ?? []).flatMap((v) => v.split(","))
    .map((v) => v.trim()).filter((v) => v !== "");
  const keyPath = values["pseudonym-key"];
  if (labels.length === 0 && patterns.length === 0 && dropLabels.length === 0) {
    if (keyPath !== undefined) {
      throw usageError("--pseudonym-key needs --pseudonymize or --pseudonymize-values");
    }
    return undefined;
  }
  if (values.raw) {
    throw usageError(
      "--pseudonymize, --pseudonymize-values and --drop-label need the rewrite: not with --raw",
    );
  }
  const mapping = labels.length > 0 || patterns.length > 0;
  if (mapping && keyPath === undefined) {
    throw usageError(
      "--pseudonymize and --pseudonymize-values need --pseudonym-key FILE (created when " +
        "missing; keep it, and reuse it so that pseudonyms match across tickets)",
    );
  }
  // --drop-label alone maps nothing: a throwaway key.
  const key = keyPath === undefined
    ? crypto.getRandomValues(new Uint8Array(32))
    : (await loadPseudonymKey(keyPath)).key;
  return {
    pseudonymizer: new Pseudonymizer(key, { labels, patterns, dropLabels }, {
      tablePath: mapping ? mappingPath(keyPath!) : null,
    }),
    keyPath: mapping ? keyPath! : null,
  };
}

/** The line that tells where the export's pseudonyms went (null when nothing was mapped). */
export function pseudonymsLine(
  pseudonymizer: Pseudonymizer,
  keyPath: string | null,
): string | null {
  const table = pseudonymizer.committedTable;
  if (keyPath === null || table === null) return null;
  return `Pseudonyms: ${table.values} values (${table.added} new) in ${table.path}, kept here with ` +
    `the key (promcase reveal --pseudonym-key ${keyPath} PSEUDONYM maps one back)`;
}
