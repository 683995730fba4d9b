/**
 * ULIDs as Prometheus names blocks with them (`github.com/oklog/ulid`): 48-bit millisecond time
 * and 80 random bits, as 26 Crockford base32 characters. Sorting names sorts by creation time.
 *
 * @module
 */

const _ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";
const _STRICT = /^[0-7][0-9A-HJKMNP-TV-Z]{25}$/;

let _lastTime = -1;
let _lastRandom: Uint8Array = new Uint8Array(10);

/**
 * A new ULID for `timeMs` (default now) with cryptographically random bits. Within one
 * millisecond, later calls increment the random part, so ULIDs of one process sort in call order.
 */
export function newUlid(timeMs: number = Date.now()): string {
  if (!Number.isInteger(timeMs) || timeMs < 0 || timeMs >= 2 ** 48) {
    throw new RangeError(`ULID time ${timeMs} out of range`);
  }
  let random: Uint8Array;
  if (timeMs === _lastTime) {
    random = _lastRandom.slice();
    let i = random.length - 1;
    while (i >= 0 && random[i] === 0xff) random[i--] = 0;
    if (i < 0) throw new RangeError("ULID random part overflow within one millisecond");
    random[i]++;
  } else {
    random = crypto.getRandomValues(new Uint8Array(10));
  }
  _lastTime = timeMs;
  _lastRandom = random;
  let v = BigInt(timeMs);
  for (const b of random) v = (v << 8n) | BigInt(b);
  let out = "";
  for (let i = 0; i < 26; i++) {
    out = _ALPHABET[Number(v & 31n)] + out;
    v >>= 5n;
  }
  return out;
}

/** Whether `s` is a ULID in the canonical upper-case form Prometheus writes. */
export function isUlid(s: string): boolean {
  return _STRICT.test(s);
}

/** The millisecond time of a ULID. */
export function ulidTime(ulid: string): number {
  if (!_STRICT.test(ulid.toUpperCase())) throw new RangeError(`not a ULID: ${ulid}`);
  let t = 0;
  for (const ch of ulid.toUpperCase().slice(0, 10)) t = t * 32 + _ALPHABET.indexOf(ch);
  return t;
}
