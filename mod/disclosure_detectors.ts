/**
 * Detectors of what a security team does not want to leave a host unseen: IP addresses, host
 * names, e-mail addresses, URLs with credentials, and tokens that look like JWTs or cloud keys.
 * Used by the disclosure report (`disclosure.ts`) on label values and context texts.
 *
 * They err towards precision over recall where a metric-like string would otherwise match
 * (`http.server.duration` is no host name, `1.2.3` no IP address): the report is read by people,
 * and a report that flags every metric name gets ignored.
 *
 * @module
 */

/** The detectors, in report order. */
export const DETECTORS = [
  "ipv4",
  "ipv6",
  "hostname",
  "email",
  "url-credentials",
  "jwt",
  "aws-access-key",
  "gcp-api-key",
  "azure-storage-key",
  "private-key",
] as const;

/** One detector's name. */
export type Detector = typeof DETECTORS[number];

/** One hit: which detector matched, and the matched text. */
export interface DetectorHit {
  /** The detector. */
  detector: Detector;
  /** The matched text. */
  match: string;
}

// Four decimal octets, each 0-255 without leading zeros, not part of a longer dotted number
// (a version 1.2.3.4.5) nor glued to letters or digits.
const _IPV4 =
  /(?<![\w.])(?:(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.){3}(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(?![\w]|\.\d)/g;

// Candidates: runs of hex digits, colons and dots with at least one colon, not glued to other
// word characters (so `std::vector` and `10:30:00Z` are not candidates); checked by _isIpv6.
const _IPV6_CANDIDATE = /(?<![\w:.])[0-9A-Fa-f:.]*:[0-9A-Fa-f:.]*(?![\w:])/g;

/**
 * Top-level domains and internal suffixes a host name ends in. A closed list, because metric
 * names, Go packages and OpenTelemetry names are dotted too (`http.server.duration`), and the
 * last part of a host name is what tells them apart.
 */
const _HOST_SUFFIXES = new Set([
  "com",
  "net",
  "org",
  "edu",
  "gov",
  "mil",
  "int",
  "io",
  "dev",
  "app",
  "cloud",
  "ai",
  "co",
  "info",
  "biz",
  "me",
  "tv",
  "xyz",
  "online",
  "site",
  "tech",
  "eu",
  "us",
  "uk",
  "de",
  "fr",
  "nl",
  "ch",
  "at",
  "se",
  "no",
  "dk",
  "fi",
  "es",
  "it",
  "pl",
  "cz",
  "ru",
  "cn",
  "jp",
  "kr",
  "in",
  "br",
  "au",
  "ca",
  "nz",
  "be",
  "ie",
  "pt",
  "lu",
  "li",
  "gr",
  "hu",
  "ro",
  "sk",
  "si",
  "ee",
  "lv",
  "lt",
  "il",
  "za",
  "mx",
  "ar",
  "cl",
  "sg",
  "hk",
  "tw",
  // Private and cluster-internal names.
  "local",
  "localdomain",
  "internal",
  "lan",
  "corp",
  "home",
  "intranet",
  "intra",
  "private",
  "svc",
  "cluster",
  "test",
  "example",
  "invalid",
  "localhost",
]);

// Dot-separated DNS labels (letters, digits, hyphens; not starting or ending in a hyphen), at
// least two, ending in a letter-only label; not glued to word characters, dots or `@` (the part
// after `@` is counted as an e-mail address) on the left.
const _HOSTNAME =
  /(?<![\w.@-])(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,63}(?![\w-]|\.[A-Za-z0-9])/g;

const _EMAIL =
  /(?<![\w.%+-])[A-Za-z0-9][A-Za-z0-9._%+-]{0,63}@(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,63}(?![\w-])/g;

// scheme://user:password@host: a user and a password before the `@`. A password masked by
// promcase or Prometheus (`<masked by promcase>`, `<secret>`) still counts: the user name and host
// leave.
const _URL_CREDENTIALS =
  /\b[A-Za-z][A-Za-z0-9+.-]{1,15}:\/\/[^\s/?#@:"'<>]+:(?:<[^<>\n]{1,40}>|[^\s/?#@"'<>]+)@[^\s/?#"'<>]+/g;

// Three base64url parts, the first a JSON header (`{"` is `eyJ` in base64).
const _JWT = /(?<![\w-])eyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{8,}(?![\w-])/g;

// AWS access key ids: long-term (AKIA) and temporary (ASIA), 20 upper-case letters and digits.
const _AWS_ACCESS_KEY = /(?<![A-Za-z0-9])(?:AKIA|ASIA)[A-Z0-9]{16}(?![A-Za-z0-9])/g;

// Google API keys: AIza and 35 more base64url characters.
const _GCP_API_KEY = /(?<![\w-])AIza[0-9A-Za-z_-]{35}(?![\w-])/g;

// Azure storage account keys (64 bytes, 88 base64 characters), as connection strings name them.
const _AZURE_STORAGE_KEY = /AccountKey=[A-Za-z0-9+/]{86}==/g;

// PEM private keys (RSA, EC, OpenSSH, PKCS#8; GCP service account files carry one).
const _PRIVATE_KEY = /-----BEGIN (?:[A-Z]+ )*PRIVATE KEY-----/g;

/**
 * Every hit of every detector in `text`, in detector order. The domain of an e-mail address and
 * the host after a URL's credentials are not counted again as host names (the e-mail or URL hit
 * shows them); other host names in URLs are.
 */
export function detect(text: string): DetectorHit[] {
  const hits: DetectorHit[] = [];
  const add = (detector: Detector, re: RegExp, ok: (m: string) => boolean = () => true) => {
    for (const m of text.matchAll(re)) if (ok(m[0])) hits.push({ detector, match: m[0] });
  };
  // Cheap rejections first: most label values hold none of these characters.
  const dot = text.includes(".");
  const colon = text.includes(":");
  if (dot) add("ipv4", _IPV4);
  if (colon) {
    for (const m of text.matchAll(_IPV6_CANDIDATE)) {
      const candidate = m[0].replace(/\.+$/, "");
      if (isIpv6(candidate)) hits.push({ detector: "ipv6", match: candidate });
    }
  }
  if (dot) add("hostname", _HOSTNAME, isHostname);
  if (text.includes("@")) {
    // A URL's `password@host` is no e-mail address: blanked out before e-mails are looked for.
    let rest = text;
    if (colon) {
      for (const m of text.matchAll(_URL_CREDENTIALS)) {
        hits.push({ detector: "url-credentials", match: m[0] });
        rest = rest.slice(0, m.index) + " ".repeat(m[0].length) + rest.slice(m.index + m[0].length);
      }
    }
    for (const m of rest.matchAll(_EMAIL)) hits.push({ detector: "email", match: m[0] });
  }
  if (dot && text.includes("eyJ")) add("jwt", _JWT, _isJwt);
  if (text.includes("A")) {
    add("aws-access-key", _AWS_ACCESS_KEY);
    add("gcp-api-key", _GCP_API_KEY);
    add("azure-storage-key", _AZURE_STORAGE_KEY);
  }
  if (text.includes("-----BEGIN")) add("private-key", _PRIVATE_KEY);
  return hits;
}

/** Whether `text` is an IPv6 address (compressed `::` forms and a trailing IPv4 part included). */
export function isIpv6(text: string): boolean {
  if (text.length < 2 || text.length > 45) return false;
  const halves = text.split("::");
  if (halves.length > 2) return false;
  const groups = (part: string) => (part === "" ? [] : part.split(":"));
  const head = groups(halves[0]);
  const tail = halves.length === 2 ? groups(halves[1]) : [];
  const all = [...head, ...tail];
  let count = all.length;
  const last = all[all.length - 1];
  if (last !== undefined && last.includes(".")) {
    // An embedded IPv4 address (::ffff:10.0.0.1) counts as two groups.
    _IPV4.lastIndex = 0;
    if (!new RegExp(`^${_IPV4.source}$`).test(last)) return false;
    all.pop();
    count++;
  }
  if (!all.every((g) => /^[0-9A-Fa-f]{1,4}$/.test(g))) return false;
  // "::" alone, or in text like "a::b" where it stands for nothing, is not an address seen in the
  // wild worth reporting; an address needs at least one group.
  if (halves.length === 2) return count >= 1 && count <= 7;
  return count === 8;
}

/** Whether a dotted name ends in a known top-level domain or internal suffix. */
export function isHostname(text: string): boolean {
  const last = text.slice(text.lastIndexOf(".") + 1).toLowerCase();
  return _HOST_SUFFIXES.has(last);
}

/** Whether the first part of a JWT candidate decodes to a JSON object with `alg` or `typ`. */
function _isJwt(token: string): boolean {
  const header = token.slice(0, token.indexOf("."));
  try {
    const b64 = header.replaceAll("-", "+").replaceAll("_", "/");
    const json = JSON.parse(atob(b64 + "=".repeat((4 - b64.length % 4) % 4)));
    return typeof json === "object" && json !== null && ("alg" in json || "typ" in json);
  } catch {
    return false;
  }
}
