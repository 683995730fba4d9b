// Encrypted archives (age format): what promcase encrypts, Debian's age CLI decrypts (age -d -i),
// and what age -r encrypted, promcase reads; a wrong key or passphrase, a changed byte and a cut
// ciphertext are refused in one line with nothing restored. Tests that need the age CLI are named
// "(age CLI)" and skipped when it is missing (CI installs it, see .ci/run).
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import {
  type AgeKeys,
  decryptIfEncrypted,
  encryptInto,
  generateAgeIdentity,
} from "../mod/archive/age.ts";
import { PromcaseError } from "../mod/errors.ts";
import { isOneLineError, runCli } from "./_cli.ts";
import { listDir, pathExists, TEST_DATADIR, withTempDir } from "./_files.ts";
import { findPrometheus } from "./_prometheus.ts";
import { promtoolDump } from "./_promtool.ts";
import { concatBytes } from "../mod/tsdb/encoding.ts";

const withTemp = (fn: (dir: string) => Promise<void>) => withTempDir("promcase-age-", fn);

/** Whether `cmd ARGS` runs here. */
async function runs(cmd: string, args: string[]): Promise<boolean> {
  try {
    return (await new Deno.Command(cmd, { args, stdout: "null", stderr: "null" }).output()).success;
  } catch {
    return false;
  }
}

const HAS_AGE = await runs("age", ["--version"]);
// util-linux's script gives age the terminal it reads passphrases from.
const HAS_SCRIPT = await runs("script", ["--version"]);

/** Runs a command with `stdin`, failing the test when it fails; resolves to its stdout bytes. */
async function run(cmd: string, args: string[], stdin?: Uint8Array): Promise<Uint8Array> {
  const child = new Deno.Command(cmd, {
    args,
    stdin: stdin ? "piped" : "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  if (stdin) {
    const writer = child.stdin.getWriter();
    await writer.write(stdin);
    await writer.close();
  }
  const out = await child.output();
  assert.ok(out.success, `${cmd} ${args.join(" ")}: ${new TextDecoder().decode(out.stderr)}`);
  return out.stdout;
}

/** Plaintext of `size` bytes that no compressor or chunking could pass off as another. */
function plaintext(size: number): Uint8Array {
  const bytes = new Uint8Array(size);
  for (let at = 0; at < size; at += 65536) {
    crypto.getRandomValues(bytes.subarray(at, Math.min(size, at + 65536)));
  }
  return bytes;
}

/**
 * Encrypts `data` with {@link encryptInto}, written in pieces of `piece` bytes through ONE reused
 * buffer that is overwritten as soon as each write resolves (as the compressor does).
 */
async function encrypt(
  data: Uint8Array,
  encryption: Parameters<typeof encryptInto>[1],
  piece = 10_007,
): Promise<Uint8Array> {
  const out: Uint8Array[] = [];
  const sink = encryptInto((chunk) => {
    out.push(chunk.slice());
    return Promise.resolve();
  }, encryption);
  const encrypting = await sink;
  const buffer = new Uint8Array(piece);
  for (let at = 0; at < data.length; at += piece) {
    const n = Math.min(piece, data.length - at);
    buffer.set(data.subarray(at, at + n));
    await encrypting.write(buffer.subarray(0, n));
    buffer.fill(0xee);
  }
  await encrypting.end();
  return concatBytes(out);
}

/** Decrypts with {@link decryptIfEncrypted}, the source handing over `piece`-byte slices. */
async function decrypt(
  data: Uint8Array,
  keys: AgeKeys | undefined,
  piece = 4093,
): Promise<Uint8Array> {
  async function* source() {
    for (let at = 0; at < data.length; at += piece) yield data.slice(at, at + piece);
  }
  return concatBytes(await Array.fromAsync(decryptIfEncrypted(source(), keys)));
}

const sha = (bytes: Uint8Array) => createHash("sha256").update(bytes).digest("hex");

/** Rejects with a PromcaseError whose message matches `re` and which has one line. */
async function refused(promise: Promise<unknown>, re: RegExp, exitCode = 1): Promise<void> {
  await assert.rejects(promise, (err) => {
    assert.ok(err instanceof PromcaseError, String(err));
    assert.match(err.message, re);
    assert.ok(!err.message.includes("\n"), err.message);
    assert.equal(err.exitCode, exitCode, err.message);
    return true;
  });
}

const CHUNK = 65536;
// Sizes around the payload's 64 KiB chunks: empty, one byte, exactly one and two chunks (the last
// chunk full), and several chunks with a short last one.
const SIZES = [0, 1, CHUNK - 1, CHUNK, 2 * CHUNK, 3 * CHUNK + 5];

Deno.test("age: promcase encrypts and decrypts, to recipients and with a passphrase", async () => {
  const a = await generateAgeIdentity();
  const b = await generateAgeIdentity();
  for (const size of SIZES) {
    const data = plaintext(size);
    const sealed = await encrypt(data, { recipients: [a.recipient, b.recipient] });
    assert.equal(new TextDecoder().decode(sealed.subarray(0, 22)), "age-encryption.org/v1\n");
    // Either recipient's identity opens it.
    for (const identity of [a.identity, b.identity]) {
      const opened = await decrypt(sealed, { identities: [identity], passphrases: [] });
      assert.equal(sha(opened), sha(data), `size ${size}`);
    }
    const locked = await encrypt(data, { recipients: [], passphrase: "p", scryptWorkFactor: 10 });
    const opened = await decrypt(locked, { identities: [], passphrases: ["p"] });
    assert.equal(sha(opened), sha(data), `passphrase, size ${size}`);
  }
  // An archive that is not encrypted passes unchanged, with or without keys.
  const plain = plaintext(100_000);
  assert.equal(sha(await decrypt(plain, undefined)), sha(plain));
  assert.equal(
    sha(await decrypt(plain, { identities: [a.identity], passphrases: [] })),
    sha(plain),
  );
});

Deno.test("age: wrong keys, a changed byte and every cut are refused in one line", async () => {
  const right = await generateAgeIdentity();
  const wrong = await generateAgeIdentity();
  const data = plaintext(3 * CHUNK + 5);
  const sealed = await encrypt(data, { recipients: [right.recipient] });
  const keys = { identities: [right.identity], passphrases: [] };
  await refused(
    decrypt(sealed, { identities: [wrong.identity], passphrases: [] }),
    /^wrong key: no identity in --identity matches/,
  );
  await refused(decrypt(sealed, undefined), /encrypted \(age\): give --identity FILE/, 2);
  await refused(
    decrypt(sealed, { identities: [], passphrases: ["p"] }),
    /encrypted to age recipients, not a passphrase: give --identity/,
    2,
  );
  const locked = await encrypt(data, { recipients: [], passphrase: "p", scryptWorkFactor: 10 });
  await refused(
    decrypt(locked, { identities: [], passphrases: ["q"] }),
    /^wrong passphrase: --passphrase-file does not decrypt the archive$/,
  );
  await refused(decrypt(locked, keys), /encrypted with a passphrase \(age\): give --passphrase/, 2);

  const headerEnd = new TextDecoder("latin1").decode(sealed.subarray(0, 1024)).indexOf("\n---");
  const payload =
    new TextDecoder("latin1").decode(sealed.subarray(0, 1024)).indexOf("\n", headerEnd + 1) +
    1 + 16;
  // A flipped byte anywhere: in the stanza, the MAC, the nonce, each chunk, the last tag.
  for (
    const at of [
      40,
      headerEnd + 10,
      payload - 3,
      payload + 5,
      payload + CHUNK + 100,
      sealed.length - 1,
    ]
  ) {
    const bad = sealed.slice();
    bad[at] ^= 0x01;
    await refused(
      decrypt(bad, keys),
      /wrong key|header was changed|unreadable|fails authentication/,
      1,
    );
  }
  // Cut inside the header, inside the nonce, inside a chunk, and at each chunk boundary: a cut at a
  // boundary leaves whole chunks that authenticate, but not as the last one.
  const cuts = [
    10,
    payload - 8,
    payload + 1000,
    payload + (CHUNK + 16),
    payload + 2 * (CHUNK + 16),
  ];
  for (const cut of [...cuts, sealed.length - 1]) {
    await refused(
      decrypt(sealed.subarray(0, cut), keys),
      /truncated|unreadable|fails authentication/,
      1,
    );
  }
  // And the whole of it still decrypts (the cuts above are what failed, not the keys).
  assert.equal(sha(await decrypt(sealed, keys)), sha(data));
});

Deno.test("age: a failing sink fails the writes, not the process", async () => {
  const { recipient } = await generateAgeIdentity();
  let calls = 0;
  const sink = await encryptInto(() => {
    calls++;
    return calls >= 2 ? Promise.reject(new Error("disk on fire")) : Promise.resolve();
  }, { recipients: [recipient] });
  const piece = plaintext(300_000);
  await assert.rejects(
    (async () => {
      for (let i = 0; i < 20; i++) await sink.write(piece);
      await sink.end();
    })(),
    /disk on fire/,
  );
  sink.destroy();
});

Deno.test({
  name: "age: the age CLI decrypts what promcase encrypts, and the reverse (age CLI)",
  ignore: !HAS_AGE,
  async fn() {
    await withTemp(async (dir) => {
      const pair = await generateAgeIdentity();
      await Deno.writeTextFile(`${dir}/key`, `${pair.identity}\n`);
      for (const size of [0, CHUNK, 3 * CHUNK + 5]) {
        const data = plaintext(size);
        const sealed = await encrypt(data, { recipients: [pair.recipient] });
        await Deno.writeFile(`${dir}/ours.age`, sealed);
        const theirs = await run("age", ["-d", "-i", `${dir}/key`, `${dir}/ours.age`]);
        assert.equal(sha(theirs), sha(data), `age -d, size ${size}`);

        await Deno.writeFile(`${dir}/plain`, data);
        await run("age", ["-r", pair.recipient, "-o", `${dir}/theirs.age`, `${dir}/plain`]);
        const opened = await decrypt(await Deno.readFile(`${dir}/theirs.age`), {
          identities: [pair.identity],
          passphrases: [],
        });
        assert.equal(sha(opened), sha(data), `age -r, size ${size}`);
        await Deno.remove(`${dir}/theirs.age`);
      }
    });
  },
});

/** Runs `age ARGS` on a terminal (`script`), typing `lines`: age reads passphrases from a tty only. */
async function ageOnTerminal(args: string[], lines: string[]): Promise<void> {
  const command = ["age", ...args].map((a) => `'${a.replaceAll("'", "'\\''")}'`).join(" ");
  await run(
    "script",
    ["-qec", command, "/dev/null"],
    new TextEncoder().encode(lines.join("\n") + "\n"),
  );
}

Deno.test({
  name: "age: passphrase mode works both ways with age -p (age CLI)",
  ignore: !HAS_AGE || !HAS_SCRIPT,
  async fn() {
    await withTemp(async (dir) => {
      const data = plaintext(CHUNK + 7);
      // The export's default work factor (16), which age -d accepts like its own 18.
      const sealed = await encrypt(data, { recipients: [], passphrase: "open sesame" });
      assert.match(new TextDecoder().decode(sealed.subarray(0, 100)), /\n-> scrypt \S+ 16\n/);
      await Deno.writeFile(`${dir}/ours.age`, sealed);
      await ageOnTerminal(["-d", "-o", `${dir}/ours.out`, `${dir}/ours.age`], ["open sesame"]);
      assert.equal(sha(await Deno.readFile(`${dir}/ours.out`)), sha(data));

      await Deno.writeFile(`${dir}/plain`, data);
      await ageOnTerminal(["-p", "-o", `${dir}/theirs.age`, `${dir}/plain`], [
        "open sesame",
        "open sesame",
      ]);
      const theirs = await Deno.readFile(`${dir}/theirs.age`);
      assert.match(new TextDecoder().decode(theirs.subarray(0, 40)), /\n-> scrypt /);
      const opened = await decrypt(theirs, { identities: [], passphrases: ["open sesame"] });
      assert.equal(sha(opened), sha(data));
    });
  },
});

Deno.test("age: keygen writes a 0600 identity and prints its recipient", async () => {
  await withTemp(async (dir) => {
    const result = await runCli(["keygen", "-o", `${dir}/support.key`]);
    assert.equal(result.code, 0, result.stderr);
    assert.match(result.stdout, /^age1[02-9ac-hj-np-z]{58}\n$/);
    const stat = await Deno.stat(`${dir}/support.key`);
    assert.equal(stat.mode! & 0o777, 0o600);
    const text = await Deno.readTextFile(`${dir}/support.key`);
    assert.match(text, /^# created: .*\n# public key: age1\S+\nAGE-SECRET-KEY-1[0-9A-Z]+\n$/);
    assert.ok(text.includes(result.stdout.trim()));
    // Never overwritten.
    const again = await runCli(["keygen", "-o", `${dir}/support.key`]);
    assert.equal(again.code, 2);
    assert.ok(isOneLineError(again), again.stderr);
    assert.equal(await Deno.readTextFile(`${dir}/support.key`), text);
    if (HAS_AGE) {
      // age-keygen -y derives the same recipient from the identity.
      const derived = await run("age-keygen", ["-y", `${dir}/support.key`]);
      assert.equal(new TextDecoder().decode(derived), result.stdout);
    }
  });
});

/** The files under `dir`, path to SHA-256. */
async function treeSums(dir: string, prefix = ""): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  for await (const entry of Deno.readDir(`${dir}${prefix}`)) {
    const rel = `${prefix}/${entry.name}`;
    if (entry.isDirectory) Object.assign(out, await treeSums(dir, rel));
    else if (entry.isFile) out[rel] = sha(await Deno.readFile(`${dir}${rel}`));
  }
  return out;
}

Deno.test("age: export --encrypt-to, verify, restore and inspect with --identity", async () => {
  await withTemp(async (dir) => {
    const key = `${dir}/support.key`;
    const recipient = (await runCli(["keygen", "-o", key])).stdout.trim();
    const archive = `${dir}/case.tar.gz.age`;
    const exported = await runCli([
      "export",
      TEST_DATADIR,
      "--from",
      "0",
      "--to",
      "now",
      "--raw",
      "--no-prometheus-api",
      "--no-nice",
      "--encrypt-to",
      recipient,
      "-o",
      archive,
    ]);
    assert.equal(exported.code, 0, exported.stderr);
    assert.deepEqual(await listDir(dir), [
      "case.tar.gz.age",
      "case.tar.gz.age.sha256",
      "support.key",
    ]);
    // The sidecar covers the file as sent.
    const sent = await Deno.readFile(archive);
    assert.equal(
      await Deno.readTextFile(`${archive}.sha256`),
      `${sha(sent)}  case.tar.gz.age\n`,
    );
    assert.equal(new TextDecoder().decode(sent.subarray(0, 22)), "age-encryption.org/v1\n");

    const verified = await runCli(["verify", archive, "--identity", key]);
    assert.equal(verified.code, 0, verified.stderr);
    assert.match(verified.stdout, /^OK .*sidecar ok/);

    // Restored, the raw export is the data dir byte for byte, and promtool reads the same series.
    const restored = await runCli(["restore", archive, "-i", key, "--into", `${dir}/restored`]);
    assert.equal(restored.code, 0, restored.stderr);
    const source = await treeSums(TEST_DATADIR);
    const back = await treeSums(`${dir}/restored/data`);
    for (const [path, sum] of Object.entries(back)) assert.equal(sum, source[path], path);
    assert.ok(Object.keys(back).length >= 10, Object.keys(back).join(" "));
    const bin = await findPrometheus("oldest");
    assert.deepEqual(
      await promtoolDump(bin, `${dir}/restored/data`),
      await promtoolDump(bin, TEST_DATADIR),
    );

    const series = await runCli(["inspect", "--series", archive, "-i", key, "--json"]);
    assert.equal(series.code, 0, series.stderr);
    assert.ok(JSON.parse(series.stdout).metrics.length > 0);

    // Without a key: a usage error naming the flag, for every reading command.
    for (
      const args of [
        ["verify", archive],
        ["restore", archive, "--into", `${dir}/nokey`],
        ["inspect", "--series", archive],
      ]
    ) {
      const result = await runCli(args);
      assert.equal(result.code, 2, `${args.join(" ")}: ${result.stderr}`);
      assert.ok(isOneLineError(result), result.stderr);
      assert.match(result.stderr, /give --identity FILE/);
    }
    assert.ok(!(await pathExists(`${dir}/nokey`)));

    if (HAS_AGE) {
      // age -d -i opens it into the gzip'd tar that promcase writes unencrypted.
      const tar = await run("age", ["-d", "-i", key, archive]);
      const listing = new TextDecoder().decode(await run("tar", ["-tzf", "-"], tar));
      assert.match(listing, /^manifest\.json$/m);
      assert.match(listing, /^data\/wal\/\d+$/m);
    }
  });
});

Deno.test("age: wrong identity, wrong passphrase, a flipped byte and a cut restore nothing", async () => {
  await withTemp(async (dir) => {
    const key = `${dir}/support.key`;
    const other = `${dir}/other.key`;
    const recipient = (await runCli(["keygen", "-o", key])).stdout.trim();
    await runCli(["keygen", "-o", other]);
    await Deno.writeTextFile(`${dir}/pass`, "correct horse battery staple\n");
    await Deno.writeTextFile(`${dir}/wrong-pass`, "correct horse battery stapler\n");
    const base = [
      "export",
      TEST_DATADIR,
      "--from",
      "0",
      "--to",
      "now",
      "--no-prometheus-api",
      "--no-nice",
      "--compression",
      "none",
      "--raw",
    ];
    const archive = `${dir}/case.tar.age`;
    const locked = `${dir}/locked.tar.age`;
    for (
      const args of [
        [...base, "--encrypt-to", recipient, "-o", archive],
        [...base, "--passphrase-file", `${dir}/pass`, "-o", locked],
      ]
    ) {
      const result = await runCli(args);
      assert.equal(result.code, 0, result.stderr);
    }
    const good = await Deno.readFile(archive);
    // Passphrase mode's default work factor: 64 MiB once, within the export's memory bound.
    const header = new TextDecoder().decode((await Deno.readFile(locked)).subarray(0, 100));
    assert.match(header, /\n-> scrypt \S+ 16\n/);
    const chosen = await runCli([
      ...base,
      "--passphrase-file",
      `${dir}/pass`,
      "--scrypt-work-factor",
      "11",
      "-o",
      `${dir}/chosen.tar.age`,
    ]);
    assert.equal(chosen.code, 0, chosen.stderr);
    const chosenHeader = await Deno.readFile(`${dir}/chosen.tar.age`);
    assert.match(new TextDecoder().decode(chosenHeader.subarray(0, 100)), /\n-> scrypt \S+ 11\n/);
    // More than two payload chunks: flips and cuts reach chunks before the last.
    assert.ok(good.length > 2 * CHUNK + 200, String(good.length));

    // The passphrase archive restores with its passphrase.
    const opened = await runCli([
      "restore",
      locked,
      "--passphrase-file",
      `${dir}/pass`,
      "--into",
      `${dir}/locked-restored`,
    ]);
    assert.equal(opened.code, 0, opened.stderr);
    assert.ok(await pathExists(`${dir}/locked-restored/data/wal`));

    const flipped = good.slice();
    flipped[CHUNK + 1000] ^= 0x40;
    await Deno.writeFile(`${dir}/flipped.tar.age`, flipped);
    await Deno.writeFile(`${dir}/cut.tar.age`, good.subarray(0, good.length - 100));
    const cases: [string, string[], RegExp][] = [
      ["wrong identity", [archive, "-i", other], /wrong key/],
      ["wrong passphrase", [locked, "--passphrase-file", `${dir}/wrong-pass`], /wrong passphrase/],
      ["flipped byte", [`${dir}/flipped.tar.age`, "-i", key], /fails authentication/],
      ["truncated", [`${dir}/cut.tar.age`, "-i", key], /fails authentication/],
    ];
    for (const [what, args, re] of cases) {
      const before = await listDir(dir);
      const result = await runCli(["restore", ...args, "--into", `${dir}/target`]);
      assert.equal(result.code, 1, `${what}: ${result.stderr}`);
      assert.ok(isOneLineError(result), `${what}: ${result.stderr}`);
      assert.match(result.stderr, re, what);
      // Nothing restored, no staging dir left beside it.
      assert.deepEqual(await listDir(dir), before, what);
      const verify = await runCli(["verify", ...args]);
      assert.equal(verify.code, 1, `${what}: ${verify.stderr}`);
      assert.match(verify.stderr, re, what);
    }
  });
});

Deno.test({
  name: "age: archives split into parts, and one that age -r encrypted, are read (age CLI)",
  ignore: !HAS_AGE,
  async fn() {
    await withTemp(async (dir) => {
      const key = `${dir}/support.key`;
      const recipient = (await runCli(["keygen", "-o", key])).stdout.trim();
      const archive = `${dir}/case.tar.gz.age`;
      const result = await runCli([
        "export",
        TEST_DATADIR,
        "--from",
        "0",
        "--to",
        "now",
        "--no-prometheus-api",
        "--no-nice",
        "--encrypt-to",
        recipient,
        "--split",
        "8KiB",
        "-o",
        archive,
      ]);
      assert.equal(result.code, 0, result.stderr);
      const parts = (await listDir(dir)).filter((n) => /\.part\d{3}$/.test(n));
      assert.ok(parts.length >= 2, parts.join(" "));
      const verified = await runCli(["verify", `${dir}/${parts[0]}`, "-i", key]);
      assert.equal(verified.code, 0, verified.stderr);
      // The parts joined are one age file: age decrypts it, re-encrypts it with age -r, and
      // promcase restores that.
      const joined = concatBytes(await Promise.all(parts.map((n) => Deno.readFile(`${dir}/${n}`))));
      const plain = await run("age", ["-d", "-i", key], joined);
      await Deno.writeFile(`${dir}/plain.tar.gz`, plain);
      await run("age", ["-r", recipient, "-o", `${dir}/theirs.tar.gz.age`, `${dir}/plain.tar.gz`]);
      const restored = await runCli([
        "restore",
        `${dir}/theirs.tar.gz.age`,
        "-i",
        key,
        "--into",
        `${dir}/restored`,
      ]);
      assert.equal(restored.code, 0, restored.stderr);
      assert.ok(await pathExists(`${dir}/restored/manifest.json`));
    });
  },
});

Deno.test("age: export refuses bad recipients and mixed modes before writing", async () => {
  await withTemp(async (dir) => {
    const { identity, recipient } = await generateAgeIdentity();
    await Deno.writeTextFile(`${dir}/pass`, "x\n");
    await Deno.writeTextFile(`${dir}/recipients`, `# support\n${recipient}\n\nnot-a-key\n`);
    const base = ["export", TEST_DATADIR, "--at", "now", "--no-prometheus-api", "-o", `${dir}/a`];
    const cases: [string[], RegExp][] = [
      [["--encrypt-to", "age1nope"], /--encrypt-to: "age1nope" is not an age recipient/],
      [["--encrypt-to", identity], /that is a private key/],
      [["--encrypt-to-file", `${dir}/recipients`], /recipients:4: "not-a-key" is not an age/],
      [["--encrypt-to", recipient, "--passphrase-file", `${dir}/pass`], /not both/],
      [["--passphrase-file", `${dir}/missing`], /cannot read --passphrase-file/],
      [["--encrypt-to", recipient, "--scrypt-work-factor", "12"], /--passphrase-file only/],
      [["--passphrase-file", `${dir}/pass`, "--scrypt-work-factor", "21"], /from 10 to 20\n$/],
      [["--passphrase-file", `${dir}/pass`, "--scrypt-work-factor", "1e1"], /from 10 to 20\n$/],
    ];
    for (const [extra, re] of cases) {
      const result = await runCli([...base, ...extra]);
      assert.equal(result.code, 2, `${extra.join(" ")}: ${result.stderr}`);
      assert.ok(isOneLineError(result), result.stderr);
      assert.match(result.stderr, re);
    }
    assert.deepEqual(await listDir(dir), ["pass", "recipients"]);
  });
});
