/**
 * Encrypted archives in the age format (https://age-encryption.org/v1), so that the stock `age`
 * CLI decrypts what promcase writes and promcase reads what `age -r` or `age -p` wrote. The
 * cryptography is the `age-encryption` package's (the reference TypeScript implementation, on the
 * audited noble primitives); this module only streams bytes through it and turns its errors into
 * one-line messages.
 *
 * Writing, {@link encryptInto} sits between the compressor and the archive's files: the file and
 * its `.sha256` sidecar are the ciphertext as sent, the manifest inside lists the content. Reading,
 * {@link decryptIfEncrypted} sits between the archive's files and the decompressor, and passes
 * unencrypted archives on untouched.
 *
 * Memory: age's payload is 64 KiB chunks, each sealed on its own, so both directions hold one chunk
 * plus a bounded queue ({@link _QUEUE_BYTES}) whatever the archive's size. A payload chunk is only
 * handed on once it authenticated; a cut or changed ciphertext fails at the chunk concerned (a cut
 * one at the end, whose last-chunk flag is missing), and a restore then keeps nothing. Passphrase
 * mode adds scrypt's 2^N KiB once per archive (64 MiB at the export's N=16, 256 MiB at `age -p`'s
 * 18 when reading its files); the export derives it before it reads any data
 * ({@link startEncryptionEarly}).
 *
 * @module
 */

import { Decrypter, Encrypter, generateX25519Identity, identityToRecipient } from "age-encryption";
import { describeError, PromcaseError, usageError } from "../errors.ts";
import type { CompressingSink, Sink } from "./compression.ts";

/** The file name suffix of an encrypted archive: `NAME.tar.gz.age`. */
export const AGE_SUFFIX = ".age";

/** What an archive is encrypted to: age recipients, or a passphrase (age's scrypt mode). */
export interface AgeEncryption {
  /** age recipients (`age1...`, X25519 public keys); any of their identities decrypts. */
  recipients: string[];
  /** A passphrase instead of recipients (age allows one or the other, not both). */
  passphrase?: string;
  /**
   * scrypt work factor (log2 of N) in passphrase mode; default {@link DEFAULT_SCRYPT_WORK_FACTOR}.
   * scrypt takes 2^N KiB of memory once per archive, on both sides.
   */
  scryptWorkFactor?: number;
}

/**
 * The export's scrypt work factor: 16 (64 MiB, a quarter second), where `age -p` uses 18 (256 MiB),
 * so that passphrase mode stays within the export's memory bound on a production host. Brute force
 * of the passphrase costs a quarter of what it would at 18; `--scrypt-work-factor` raises it.
 */
export const DEFAULT_SCRYPT_WORK_FACTOR = 16;

/**
 * The work factors an export may use: from 10 up to 20, the most the `age-encryption` package reads
 * (Debian's `age` reads up to 22).
 */
export const SCRYPT_WORK_FACTOR_RANGE = { min: 10, max: 20 } as const;

/** What can decrypt an archive: identities (`AGE-SECRET-KEY-1...`) and passphrases. */
export interface AgeKeys {
  /** age identities (private keys). */
  identities: string[];
  /** Passphrases. */
  passphrases: string[];
}

/** A new identity and its recipient, see {@link generateAgeIdentity}. */
export interface AgeKeyPair {
  /** The private key, `AGE-SECRET-KEY-1...`. */
  identity: string;
  /** The public key to publish and encrypt to, `age1...`. */
  recipient: string;
}

const _MAGIC = new TextEncoder().encode("age-encryption.org/v1\n");
const _ARMOR = new TextEncoder().encode("-----BEGIN AGE ENCRYPTED FILE-----");
/** Plaintext bytes queued ahead of the encryption at most (besides the chunk being written). */
const _QUEUE_BYTES = 1024 * 1024;
const _CHUNK = 64 * 1024;
const _TAG = 16;
/** Bytes a header takes besides its stanzas: version line, MAC line, payload nonce. */
const _HEADER_BASE = 128;
/** Bytes of one X25519 or scrypt stanza, with room to spare. */
const _STANZA = 160;

/**
 * Whether `head` (the first bytes of a file) is an age file, binary or ASCII-armored. A file that
 * ends within the version line counts too, so that it is reported as a cut age file.
 */
export function isAgeEncrypted(head: Uint8Array): boolean {
  const cut = head.length >= 4 && head.length < _MAGIC.length &&
    _startsWith(_MAGIC, head);
  return cut || _startsWith(head, _MAGIC) || _startsWith(head, _ARMOR);
}

/**
 * An upper bound of the encrypted size of `size` plaintext bytes: each 64 KiB chunk gains a 16-byte
 * tag, and the header holds a stanza per recipient.
 */
export function encryptedSize(size: number, encryption: AgeEncryption): number {
  const stanzas = encryption.passphrase !== undefined ? 1 : encryption.recipients.length;
  return size + _TAG * Math.max(1, Math.ceil(size / _CHUNK)) + _HEADER_BASE + _STANZA * stanzas;
}

/** Generates a new X25519 identity (what `age-keygen` makes) and its recipient. */
export async function generateAgeIdentity(): Promise<AgeKeyPair> {
  const identity = await generateX25519Identity();
  return { identity, recipient: await identityToRecipient(identity) };
}

/**
 * Writes a new identity to `path` in `age-keygen`'s format (comment lines with the creation time
 * and the public key, then the key), readable by its owner only (0600). Never overwrites.
 */
export async function writeAgeIdentityFile(path: string): Promise<AgeKeyPair> {
  const pair = await generateAgeIdentity();
  const text = `# created: ${new Date().toISOString().replace(/\.\d+Z$/, "Z")}\n` +
    `# public key: ${pair.recipient}\n${pair.identity}\n`;
  try {
    await Deno.writeTextFile(path, text, { createNew: true, mode: 0o600 });
    // The mode of a new file is filtered by the umask; the key must end up 0600 whatever it is.
    if (Deno.build.os !== "windows") await Deno.chmod(path, 0o600);
  } catch (err) {
    if (err instanceof Deno.errors.AlreadyExists) {
      throw usageError(`${path} already exists: an identity is never overwritten`);
    }
    throw usageError(`cannot write ${path}: ${describeError(err)}`);
  }
  return pair;
}

/** Checks one recipient (`age1...`); `source` names where it came from, for the message. */
export function parseAgeRecipient(text: string, source: string): string {
  const recipient = text.trim();
  try {
    if (!recipient.startsWith("age1")) throw new Error();
    new Encrypter().addRecipient(recipient);
  } catch {
    const hint = recipient.startsWith("AGE-SECRET-KEY-")
      ? ": that is a private key (an identity); give its public key, age1..."
      : " (age1..., as promcase keygen or age-keygen prints)";
    throw usageError(`${source}: ${_excerpt(recipient)} is not an age recipient${hint}`);
  }
  return recipient;
}

/**
 * The recipients of a recipients file (`age -R`'s format): one `age1...` a line, blank lines and
 * `#` comments skipped.
 */
export async function readAgeRecipientsFile(path: string): Promise<string[]> {
  const lines = _contentLines(await _readText(path, "--encrypt-to-file"));
  if (lines.length === 0) throw usageError(`--encrypt-to-file ${path}: no recipient in it`);
  return lines.map(({ line, number }) => parseAgeRecipient(line, `${path}:${number}`));
}

/**
 * The identities of an identity file (`age -i`'s format, what `promcase keygen` and `age-keygen`
 * write): one `AGE-SECRET-KEY-1...` a line, blank lines and `#` comments skipped.
 */
export async function readAgeIdentityFile(path: string): Promise<string[]> {
  const text = await _readText(path, "--identity");
  if (isAgeEncrypted(new TextEncoder().encode(text.slice(0, 64)))) {
    throw usageError(
      `--identity ${path} is itself encrypted: decrypt it with age first (passphrase-protected ` +
        "identity files are not read)",
    );
  }
  const lines = _contentLines(text);
  if (lines.length === 0) throw usageError(`--identity ${path}: no identity in it`);
  return lines.map(({ line, number }) => {
    try {
      if (!line.startsWith("AGE-SECRET-KEY-")) throw new Error();
      new Decrypter().addIdentity(line);
    } catch {
      const hint = line.startsWith("age1")
        ? ": that is a recipient (a public key); give the file with the private key"
        : " (AGE-SECRET-KEY-1..., as promcase keygen or age-keygen writes)";
      throw usageError(`--identity ${path}:${number}: not an age identity${hint}`);
    }
    return line;
  });
}

/** The passphrase in a file: its first line, without the line break. Refuses an empty one. */
export async function readPassphraseFile(path: string): Promise<string> {
  const passphrase = (await _readText(path, "--passphrase-file")).split(/\r?\n/)[0];
  if (passphrase === "") throw usageError(`--passphrase-file ${path}: the first line is empty`);
  return passphrase;
}

/**
 * The encryption the export flags ask for, or undefined for none: `--encrypt-to` recipients and
 * those of `--encrypt-to-file` files, or the passphrase of `--passphrase-file` (not both, as age).
 */
export async function loadAgeEncryption(flags: {
  recipients?: string[];
  recipientFiles?: string[];
  passphraseFile?: string;
  scryptWorkFactor?: number;
}): Promise<AgeEncryption | undefined> {
  const factor = flags.scryptWorkFactor;
  if (factor !== undefined) {
    const { min, max } = SCRYPT_WORK_FACTOR_RANGE;
    if (!Number.isSafeInteger(factor) || factor < min || factor > max) {
      throw usageError(`--scrypt-work-factor takes an integer from ${min} to ${max}`);
    }
    if (flags.passphraseFile === undefined) {
      throw usageError("--scrypt-work-factor applies to --passphrase-file only");
    }
  }
  const recipients = (flags.recipients ?? []).map((r) => parseAgeRecipient(r, "--encrypt-to"));
  for (const file of flags.recipientFiles ?? []) {
    recipients.push(...await readAgeRecipientsFile(file));
  }
  if (flags.passphraseFile !== undefined) {
    if (recipients.length > 0) {
      throw usageError(
        "give either recipients (--encrypt-to, --encrypt-to-file) or --passphrase-file, not both " +
          "(age encrypts to one or the other)",
      );
    }
    const encryption = {
      recipients: [],
      passphrase: await readPassphraseFile(flags.passphraseFile),
      scryptWorkFactor: factor,
    };
    startEncryptionEarly(encryption);
    return encryption;
  }
  return recipients.length > 0 ? { recipients: [...new Set(recipients)] } : undefined;
}

/**
 * The keys the reading flags give (`--identity` files, `--passphrase-file`), or undefined for
 * none.
 */
export async function loadAgeKeys(flags: {
  identityFiles?: string[];
  passphraseFile?: string;
}): Promise<AgeKeys | undefined> {
  const identities: string[] = [];
  for (const file of flags.identityFiles ?? []) identities.push(...await readAgeIdentityFile(file));
  const passphrases = flags.passphraseFile === undefined
    ? []
    : [await readPassphraseFile(flags.passphraseFile)];
  return identities.length + passphrases.length > 0 ? { identities, passphrases } : undefined;
}

/**
 * Wraps `sink` so that what is written reaches it age-encrypted: the header (one stanza per
 * recipient, or an scrypt stanza) goes out at once, then the payload in 64 KiB sealed chunks, the
 * last one flagged by {@link CompressingSink.end}. A chunk given to `write` may be reused once the
 * write resolves; writes wait while more than {@link _QUEUE_BYTES} are queued. A failure of `sink`
 * fails the next write or the end.
 */
export async function encryptInto(
  sink: Sink,
  encryption: AgeEncryption,
): Promise<CompressingSink> {
  const early = _startedEarly.get(encryption);
  _startedEarly.delete(encryption);
  const { encrypted, controller, room } = await (early ?? _startEncryption(encryption));
  let failure: { error: unknown } | null = null;
  const signal = () => {
    room.wake?.();
    room.wake = null;
  };
  room.onRoom = signal;
  const pumped = (async () => {
    for await (const piece of encrypted) await sink(piece);
  })().then(
    () => null,
    (error) => {
      failure ??= { error };
      signal();
      return { error };
    },
  );
  let ended = false;
  return {
    async write(chunk) {
      if (failure !== null) throw failure.error;
      if (ended) throw new Error("write after end");
      try {
        // A copy: the caller reuses its buffer once this resolves, and the encryption reads later.
        controller.enqueue(chunk.slice());
      } catch (err) {
        // Cancelled by a failure of the output side that has not been reported yet.
        throw (await pumped)?.error ?? err;
      }
      while (failure === null && (controller.desiredSize ?? 1) <= 0) {
        await new Promise<void>((resolve) => (room.wake = resolve));
      }
      if (failure !== null) throw (failure as { error: unknown }).error;
    },
    async end() {
      if (failure !== null) throw failure.error;
      ended = true;
      controller.close();
      const result = await pumped;
      if (result !== null) throw result.error;
    },
    destroy() {
      failure ??= { error: new PromcaseError("encryption stopped") };
      try {
        controller.error(failure.error);
      } catch {
        // Already closed or errored.
      }
      signal();
    },
  };
}

/**
 * Starts a passphrase `encryption` now: scrypt derives its key and the header is made, so that
 * scrypt's 2^N KiB are taken and given back while the export holds little, not on top of its peak
 * when the archive is written. The next {@link encryptInto} with this `encryption` goes on from
 * there; any later one derives anew (a new salt, as every age file has its own). Recipients need no
 * head start: wrapping a file key for them is cheap.
 */
export function startEncryptionEarly(encryption: AgeEncryption): void {
  if (encryption.passphrase === undefined || _startedEarly.has(encryption)) return;
  const started = _startEncryption(encryption);
  // Not awaited until encryptInto takes it, or never (an export that stops before its archive).
  started.catch(() => {});
  _startedEarly.set(encryption, started);
}

/** An encryption whose header is made: its payload waits for plaintext on `controller`. */
interface _StartedEncryption {
  encrypted: ReadableStream<Uint8Array>;
  controller: ReadableStreamDefaultController<Uint8Array>;
  /** `onRoom` is called whenever the plaintext queue has room again; `wake` is a waiting write. */
  room: { onRoom: () => void; wake: (() => void) | null };
}

const _startedEarly = new WeakMap<AgeEncryption, Promise<_StartedEncryption>>();

async function _startEncryption(encryption: AgeEncryption): Promise<_StartedEncryption> {
  const encrypter = new Encrypter();
  if (encryption.passphrase !== undefined) {
    encrypter.setScryptWorkFactor(encryption.scryptWorkFactor ?? DEFAULT_SCRYPT_WORK_FACTOR);
    encrypter.setPassphrase(encryption.passphrase);
  } else {
    if (encryption.recipients.length === 0) throw usageError("no age recipient to encrypt to");
    for (const recipient of encryption.recipients) encrypter.addRecipient(recipient);
  }
  const room: _StartedEncryption["room"] = { onRoom: () => {}, wake: null };
  let controller!: ReadableStreamDefaultController<Uint8Array>;
  const plain = new ReadableStream<Uint8Array>({
    start: (c) => void (controller = c),
    // Called whenever the queue has room again: a waiting write may go on.
    pull: () => room.onRoom(),
    // Cancelled when the output side stopped (its reason is empty): the pump's failure says why.
    cancel: () => room.onRoom(),
  }, new ByteLengthQueuingStrategy({ highWaterMark: _QUEUE_BYTES }));
  return { encrypted: await encrypter.encrypt(plain), controller, room };
}

/**
 * Passes an archive's bytes on, decrypting them when they are an age file. An age file without
 * `keys` is a usage error naming the flag to give; a wrong key or passphrase, a changed header, and
 * a changed, damaged or cut payload are one-line errors. Errors of `source` itself pass unchanged.
 */
export async function* decryptIfEncrypted(
  source: AsyncIterable<Uint8Array>,
  keys: AgeKeys | undefined,
): AsyncGenerator<Uint8Array> {
  const iterator = source[Symbol.asyncIterator]();
  try {
    const first = await iterator.next();
    if (first.done) return;
    if (!isAgeEncrypted(first.value)) {
      yield first.value;
      for (let next = await iterator.next(); !next.done; next = await iterator.next()) {
        yield next.value;
      }
      return;
    }
    if (_startsWith(first.value, _ARMOR)) {
      throw usageError(
        "the archive is ASCII-armored age (age -a): decrypt it with age -d, or write it without -a",
      );
    }
    const kind = _stanzaKind(first.value);
    if (keys === undefined || keys.identities.length + keys.passphrases.length === 0) {
      throw usageError(
        kind === "scrypt"
          ? "the archive is encrypted with a passphrase (age): give --passphrase-file FILE"
          : "the archive is encrypted (age): give --identity FILE with the key it was encrypted to",
      );
    }
    const decrypter = new Decrypter();
    for (const identity of keys.identities) decrypter.addIdentity(identity);
    for (const passphrase of keys.passphrases) decrypter.addPassphrase(passphrase);
    let sourceFailure: { error: unknown } | null = null;
    let pending: Uint8Array | null = first.value;
    const input = new ReadableStream<Uint8Array>({
      async pull(controller) {
        if (pending !== null) {
          controller.enqueue(pending);
          pending = null;
          return;
        }
        try {
          const next = await iterator.next();
          if (next.done) controller.close();
          else controller.enqueue(next.value);
        } catch (error) {
          sourceFailure = { error };
          controller.error(error);
        }
      },
    }, { highWaterMark: 0 });
    let plain: ReadableStream<Uint8Array>;
    try {
      plain = await decrypter.decrypt(input);
    } catch (err) {
      if (sourceFailure !== null) throw (sourceFailure as { error: unknown }).error;
      throw _headerError(err, kind, keys);
    }
    let bytes = 0;
    try {
      for await (const piece of plain) {
        bytes += piece.length;
        yield piece;
      }
    } catch (err) {
      if (sourceFailure !== null) throw (sourceFailure as { error: unknown }).error;
      if (err instanceof PromcaseError) throw err;
      throw new PromcaseError(
        `the encrypted archive fails authentication after ${bytes} decrypted bytes: it was ` +
          `changed, damaged or cut short (age: ${describeError(err)})`,
      );
    }
  } finally {
    await iterator.return?.();
  }
}

/** The one-line error for a header that did not open. */
function _headerError(err: unknown, kind: _Kind, keys: AgeKeys): PromcaseError {
  const text = describeError(err);
  if (/no identity matched/i.test(text)) {
    if (kind === "scrypt") {
      return keys.passphrases.length > 0
        ? new PromcaseError("wrong passphrase: --passphrase-file does not decrypt the archive")
        : usageError(
          "the archive is encrypted with a passphrase (age): give --passphrase-file FILE",
        );
    }
    if (kind === "recipients" && keys.identities.length === 0) {
      return usageError(
        "the archive is encrypted to age recipients, not a passphrase: give --identity FILE",
      );
    }
    return new PromcaseError(
      "wrong key: no identity in --identity matches the archive's recipients (it was encrypted " +
        "to other keys, or its header is damaged)",
    );
  }
  if (/header HMAC/i.test(text)) {
    return new PromcaseError(
      "the encrypted archive's header was changed: its MAC does not match (tampered or damaged)",
    );
  }
  if (/stream ended/i.test(text)) {
    return new PromcaseError("the encrypted archive is truncated: it ends before its payload");
  }
  return new PromcaseError(
    `the encrypted archive's header is unreadable (age: ${text}): it is damaged or truncated`,
  );
}

type _Kind = "scrypt" | "recipients" | "unknown";

/** Whether the header in `head` (as far as it reaches) holds an scrypt stanza or others. */
function _stanzaKind(head: Uint8Array): _Kind {
  const text = new TextDecoder("latin1").decode(head.subarray(0, 16 * 1024));
  const stanzas = [...text.matchAll(/^-> (\S+)/gm)].map((m) => m[1]);
  if (stanzas.length === 0) return "unknown";
  return stanzas.includes("scrypt") ? "scrypt" : "recipients";
}

function _startsWith(bytes: Uint8Array, prefix: Uint8Array): boolean {
  return bytes.length >= prefix.length && prefix.every((b, i) => bytes[i] === b);
}

async function _readText(path: string, flag: string): Promise<string> {
  try {
    return await Deno.readTextFile(path);
  } catch (err) {
    throw usageError(`cannot read ${flag} ${path}: ${describeError(err)}`);
  }
}

function _contentLines(text: string): { line: string; number: number }[] {
  return text.split("\n").flatMap((raw, i) => {
    const line = raw.trim();
    return line === "" || line.startsWith("#") ? [] : [{ line, number: i + 1 }];
  });
}

function _excerpt(text: string): string {
  return JSON.stringify(text.length > 24 ? `${text.slice(0, 20)}...` : text);
}
