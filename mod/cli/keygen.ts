/**
 * `promcase keygen -o FILE`: the support side's key pair for encrypted archives. Writes the
 * identity (the private key) to FILE, readable by its owner only, and prints the recipient (the
 * public key) for customers' `export --encrypt-to`.
 *
 * @module
 */

import { writeAgeIdentityFile } from "../archive/age.ts";
import { usageError } from "../errors.ts";
import { type Command, parseFlags, toJson } from "./args.ts";

const _HELP = `Usage: promcase keygen -o FILE [--json]

Creates an age X25519 key pair for encrypted archives: writes the identity (private key) to FILE
with mode 0600, in age-keygen's format, and prints its recipient (public key, age1...) on stdout.
Publish the recipient; customers encrypt to it with promcase export --encrypt-to RECIPIENT (or
age -r RECIPIENT), and verify, restore, view and inspect --series decrypt with --identity FILE, as
age -d -i FILE does. FILE is never overwritten.

Options:
  -o, --output FILE   where to write the identity (required)
  --json              print {"identityFile", "recipient"} as JSON on stdout
  -h, --help

Examples:
  promcase keygen -o ~/.promcase/support.key
  promcase keygen -o support.key > support.pub
`;

/** The keygen command. */
export const keygenCommand: Command = {
  name: "keygen",
  summary: "create a key pair for encrypted archives (support side)",
  help: _HELP,
  async run(args) {
    const { values } = parseFlags("keygen", args, {
      output: { type: "string", short: "o" },
      json: { type: "boolean" },
    }, 0);
    if (values.help) {
      console.log(_HELP);
      return 0;
    }
    if (values.output === undefined) {
      throw usageError("give the identity file with -o FILE (see promcase keygen --help)");
    }
    const { recipient } = await writeAgeIdentityFile(values.output);
    if (values.json) {
      console.log(toJson({ identityFile: values.output, recipient }));
    } else {
      console.log(recipient);
      console.error(
        `Wrote the identity to ${values.output} (mode 0600): keep it secret. Publish the ` +
          "recipient above for promcase export --encrypt-to.",
      );
    }
    return 0;
  },
};
