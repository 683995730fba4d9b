/**
 * `export`'s pseudonymization flags (see `pseudonym.ts`): `--pseudonymize LABEL[,LABEL...]`,
 * `--pseudonymize-values REGEX`, `--drop-label LABEL` and `--pseudonym-key FILE`.
 *
 * @module
 */

import { usageError } from "../errors.ts";
import { loadPseudonymKey, mappingPath, Pseudonymizer, saveMapping } from "../pseudonym.ts";

/** The flags, for parseFlags. */
export const PSEUDONYM_FLAGS = {
  pseudonymize: { type: "string", multiple: true },
  "pseudonymize-values": { type: "string", multiple: true },
  "drop-label": { type: "string", multiple: true },
  "pseudonym-key": { type: "string" },
} as const;

/** The help rows. */
export const PSEUDONYM_HELP =
  `Pseudonyms (the rewrite only; the key and the mapping table stay here):
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
  url?: string;
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
  if (values.url !== undefined) {
    throw usageError(
      "--pseudonymize, --pseudonymize-values and --drop-label read a data dir: not with --url",
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
    pseudonymizer: new Pseudonymizer(key, { labels, patterns, dropLabels }),
    keyPath: mapping ? keyPath! : null,
  };
}

/** Saves the export's pseudonyms beside the key; the line to print. */
export async function savePseudonyms(
  pseudonymizer: Pseudonymizer,
  keyPath: string | null,
): Promise<string | null> {
  if (keyPath === null) return null;
  const table = mappingPath(keyPath);
  const entries = pseudonymizer.entries();
  const added = await saveMapping(table, entries);
  return `Pseudonyms: ${entries.size} values (${added} new) in ${table}, kept here with the key ` +
    `(promcase reveal --pseudonym-key ${keyPath} PSEUDONYM maps one back)`;
}
