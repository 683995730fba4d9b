/**
 * A small JSON Schema (draft-07) checker for the keywords the Compose specification's schema uses
 * ($ref, type, properties, patternProperties, additionalProperties, required, oneOf, anyOf, enum,
 * items, uniqueItems, minimum, maximum, pattern); `format` is not checked. Returns the errors.
 *
 * @module
 */

type Schema = Record<string, unknown> | boolean;

/** Validates `value` against `schema` (whose `$ref`s point into `root`); returns error lines. */
export function validateJsonSchema(
  value: unknown,
  schema: Schema,
  root = schema,
  path = "$",
): string[] {
  if (schema === true) return [];
  if (schema === false) return [`${path}: not allowed`];
  const s = schema as Record<string, unknown>;
  if (typeof s.$ref === "string") {
    const target = s.$ref.replace(/^#\//, "").split("/").reduce(
      (node: unknown, key) => (node as Record<string, unknown>)[key],
      root,
    ) as Schema;
    return validateJsonSchema(value, target, root, path);
  }
  const errors: string[] = [];
  if (s.type !== undefined) {
    const types = Array.isArray(s.type) ? s.type : [s.type];
    if (!types.some((t) => _isType(value, t as string))) {
      return [`${path}: ${JSON.stringify(value)} is not ${types.join("|")}`];
    }
  }
  if (Array.isArray(s.enum) && !s.enum.some((e) => JSON.stringify(e) === JSON.stringify(value))) {
    errors.push(`${path}: ${JSON.stringify(value)} not in ${JSON.stringify(s.enum)}`);
  }
  if (typeof value === "number") {
    if (typeof s.minimum === "number" && value < s.minimum) errors.push(`${path}: < minimum`);
    if (typeof s.maximum === "number" && value > s.maximum) errors.push(`${path}: > maximum`);
  }
  if (typeof value === "string" && typeof s.pattern === "string") {
    if (!new RegExp(s.pattern, "u").test(value)) {
      errors.push(`${path}: does not match ${s.pattern}`);
    }
  }
  if (Array.isArray(value)) {
    if (s.items !== undefined) {
      value.forEach((v, i) =>
        errors.push(...validateJsonSchema(v, s.items as Schema, root, `${path}[${i}]`))
      );
    }
    if (
      s.uniqueItems === true && new Set(value.map((v) => JSON.stringify(v))).size !== value.length
    ) {
      errors.push(`${path}: items not unique`);
    }
  }
  if (value !== null && typeof value === "object" && !Array.isArray(value)) {
    const obj = value as Record<string, unknown>;
    for (const key of (s.required as string[] | undefined) ?? []) {
      if (!(key in obj)) errors.push(`${path}: ${key} is required`);
    }
    const props = (s.properties ?? {}) as Record<string, Schema>;
    const patterns = (s.patternProperties ?? {}) as Record<string, Schema>;
    for (const [key, v] of Object.entries(obj)) {
      let matched = false;
      if (key in props) {
        matched = true;
        errors.push(...validateJsonSchema(v, props[key], root, `${path}.${key}`));
      }
      for (const [re, sub] of Object.entries(patterns)) {
        if (new RegExp(re, "u").test(key)) {
          matched = true;
          errors.push(...validateJsonSchema(v, sub, root, `${path}.${key}`));
        }
      }
      if (!matched && s.additionalProperties !== undefined && s.additionalProperties !== true) {
        errors.push(
          ...validateJsonSchema(v, s.additionalProperties as Schema, root, `${path}.${key}`),
        );
      }
    }
  }
  for (const [keyword, need] of [["oneOf", 1], ["anyOf", 0]] as const) {
    const options = s[keyword];
    if (!Array.isArray(options)) continue;
    const passing = options.filter((o) => validateJsonSchema(value, o, root, path).length === 0);
    if (need === 1 ? passing.length !== 1 : passing.length === 0) {
      errors.push(`${path}: ${passing.length} of ${keyword} match`);
    }
  }
  return errors;
}

function _isType(value: unknown, type: string): boolean {
  switch (type) {
    case "object":
      return value !== null && typeof value === "object" && !Array.isArray(value);
    case "array":
      return Array.isArray(value);
    case "integer":
      return Number.isInteger(value);
    case "null":
      return value === null;
    default:
      return ["string", "number", "boolean"].includes(type) && _typeName(value) === type;
  }
}

function _typeName(value: unknown): string {
  return typeof value;
}
