/**
 * The flags of encrypted archives, shared by the commands: `export` encrypts (`--encrypt-to`,
 * `--encrypt-to-file`, `--passphrase-file`), `verify`, `restore`, `view` and `inspect --series`
 * decrypt (`--identity`, `--passphrase-file`). Parsing only; the work is in `archive/age.ts`.
 *
 * @module
 */

import {
  type AgeEncryption,
  type AgeKeys,
  loadAgeEncryption,
  loadAgeKeys,
} from "../archive/age.ts";

/** The flags that decrypt, for {@link parseFlags}. */
export const AGE_KEY_FLAGS = {
  identity: { type: "string", short: "i", multiple: true },
  "passphrase-file": { type: "string" },
} as const;

/** Their help lines. */
export const AGE_KEY_HELP =
  `  -i, --identity FILE     decrypt an age-encrypted archive (NAME.tar.gz.age) with the identity
                          in FILE (promcase keygen or age-keygen writes one; repeatable)
  --passphrase-file FILE  decrypt an archive encrypted with a passphrase (its first line)`;

/** The flags that encrypt, for {@link parseFlags}. */
export const AGE_ENCRYPT_FLAGS = {
  "encrypt-to": { type: "string", multiple: true },
  "encrypt-to-file": { type: "string", multiple: true },
  "passphrase-file": { type: "string" },
  "scrypt-work-factor": { type: "string" },
} as const;

/** The keys the decrypting flags give, or undefined for none. */
export function ageKeysFromFlags(values: {
  identity?: string[];
  "passphrase-file"?: string;
}): Promise<AgeKeys | undefined> {
  return loadAgeKeys({
    identityFiles: values.identity,
    passphraseFile: values["passphrase-file"],
  });
}

/** The encryption the encrypting flags ask for, or undefined for none. */
export function ageEncryptionFromFlags(values: {
  "encrypt-to"?: string[];
  "encrypt-to-file"?: string[];
  "passphrase-file"?: string;
  "scrypt-work-factor"?: string;
}): Promise<AgeEncryption | undefined> {
  const factor = values["scrypt-work-factor"];
  return loadAgeEncryption({
    recipients: values["encrypt-to"],
    recipientFiles: values["encrypt-to-file"],
    passphraseFile: values["passphrase-file"],
    scryptWorkFactor: factor === undefined
      ? undefined
      : /^\d+$/.test(factor)
      ? Number(factor)
      : NaN,
  });
}
