/**
 * A minimal YAML writer for the few configuration files `promcase view` generates (Grafana
 * provisioning, docker-compose). It only writes block mappings and sequences of plain JSON values,
 * and quotes every string JSON-style: a JSON string is a valid YAML double-quoted scalar, so no
 * value can ever be read back as a number, a boolean, `null` or a YAML tag.
 *
 * @module
 */

/** How strings are written. */
export interface YamlOptions {
  /**
   * Write `$` as `$$`. Both docker-compose and Grafana's provisioning interpolate `$VAR` and
   * `${VAR}` in values and take `$$` for a literal dollar sign.
   */
  escapeDollar?: boolean;
}

/** Writes `value` (a mapping of JSON values) as a YAML document, ending with a newline. */
export function toYaml(value: Record<string, unknown>, options: YamlOptions = {}): string {
  return _lines(value, 0, options).join("\n") + "\n";
}

/** Quotes a string as a YAML double-quoted scalar. */
export function yamlString(text: string, options: YamlOptions = {}): string {
  // A replacer function: in a replacement string, "$$" itself means one "$".
  const raw = options.escapeDollar ? text.replaceAll("$", () => "$$") : text;
  // JSON only escapes C0 controls; YAML also forbids C1 controls and DEL, and YAML 1.1 readers
  // treat NEL, LS and PS as line breaks that would fold inside the quotes.
  return JSON.stringify(raw).replace(
    /[\u007f-\u009f\u2028\u2029\ufeff]/g,
    (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`,
  );
}

// Keys written without quotes: identifiers, except the words YAML 1.1 reads as booleans or null.
const _PLAIN_KEY = /^[A-Za-z_][A-Za-z0-9_.-]*$/;
const _RESERVED_KEY = /^(y|n|yes|no|on|off|true|false|null)$/i;

function _lines(value: unknown, indent: number, options: YamlOptions): string[] {
  const pad = " ".repeat(indent);
  const out: string[] = [];
  if (Array.isArray(value)) {
    for (const item of value) {
      if (_isBlock(item)) {
        // The item's own lines sit two columns deeper; its first line carries the dash instead.
        const sub = _lines(item, indent + 2, options);
        sub[0] = `${pad}- ${sub[0].slice(indent + 2)}`;
        out.push(...sub);
      } else {
        out.push(`${pad}- ${_scalar(item, options)}`);
      }
    }
    return out;
  }
  for (const [key, item] of Object.entries(value as Record<string, unknown>)) {
    if (item === undefined) continue;
    const name = _PLAIN_KEY.test(key) && !_RESERVED_KEY.test(key) ? key : yamlString(key);
    if (_isBlock(item)) {
      out.push(`${pad}${name}:`, ..._lines(item, indent + 2, options));
    } else {
      out.push(`${pad}${name}: ${_scalar(item, options)}`);
    }
  }
  return out;
}

function _isBlock(value: unknown): boolean {
  if (Array.isArray(value)) return value.length > 0;
  return value !== null && typeof value === "object" && Object.keys(value).length > 0;
}

function _scalar(value: unknown, options: YamlOptions): string {
  if (typeof value === "string") return yamlString(value, options);
  if (typeof value === "number") {
    if (!Number.isFinite(value)) throw new TypeError(`cannot write ${value} as YAML`);
    return String(value);
  }
  if (typeof value === "boolean") return String(value);
  if (value === null) return "null";
  if (Array.isArray(value)) return "[]";
  if (typeof value === "object") return "{}";
  throw new TypeError(`cannot write a ${typeof value} as YAML`);
}
