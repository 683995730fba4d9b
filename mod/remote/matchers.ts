/**
 * Label matchers as remote read takes them, and their text forms: a PromQL selector for the
 * `match[]` parameter of the HTTP API, and an anchored RE2 alternation that selects a batch of
 * metric names in one remote-read query.
 *
 * @module
 */

import { LabelMatcher_Type } from "./proto/types_pb.ts";

/** How a matcher compares a label's value. */
export type MatchType = "=" | "!=" | "=~" | "!~";

/** One label matcher; a selector is a list of them, all of which must match. */
export interface LabelMatcher {
  /** Label name. */
  name: string;
  /** Comparison. */
  type: MatchType;
  /** Value, or an RE2 regular expression (anchored at both ends) for `=~` and `!~`. */
  value: string;
}

/** The selector that matches every series: `{__name__=~".+"}`. */
export const ALL_SERIES: readonly LabelMatcher[] = Object.freeze([
  { name: "__name__", type: "=~", value: ".+" },
]);

/** The protobuf enum value of a matcher type. */
export function matchTypeToProto(type: MatchType): LabelMatcher_Type {
  switch (type) {
    case "=":
      return LabelMatcher_Type.EQ;
    case "!=":
      return LabelMatcher_Type.NEQ;
    case "=~":
      return LabelMatcher_Type.RE;
    case "!~":
      return LabelMatcher_Type.NRE;
  }
}

const _PLAIN_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*$/;

/**
 * The matchers as a PromQL selector, e.g. `{job="api",code=~"5.."}`. Names that are not classic
 * identifiers are quoted (Prometheus 3 syntax); values are double-quoted with Go escapes.
 */
export function formatMatchers(matchers: readonly LabelMatcher[]): string {
  const parts = matchers.map((m) => {
    const name = _PLAIN_NAME.test(m.name) ? m.name : JSON.stringify(m.name);
    return `${name}${m.type}${JSON.stringify(m.value)}`;
  });
  return `{${parts.join(",")}}`;
}

/** Escapes RE2 metacharacters as Go's `regexp.QuoteMeta` does. */
export function quoteMeta(text: string): string {
  return text.replace(/[\\.+*?()|[\]{}^$]/g, (c) => `\\${c}`);
}

/** A matcher selecting exactly the given metric names (one `=` for one name, else an alternation). */
export function metricNamesMatcher(names: readonly string[]): LabelMatcher {
  if (names.length === 0) throw new RangeError("metricNamesMatcher: no names");
  if (names.length === 1) return { name: "__name__", type: "=", value: names[0] };
  return { name: "__name__", type: "=~", value: names.map(quoteMeta).join("|") };
}

/** Whether `m` can match a series that lacks the label (the value "" matches). */
export function matchesEmpty(m: LabelMatcher): boolean {
  switch (m.type) {
    case "=":
      return m.value === "";
    case "!=":
      return m.value !== "";
    case "=~":
      return _fullMatch(m.value, "");
    case "!~":
      return !_fullMatch(m.value, "");
  }
}

function _fullMatch(re: string, text: string): boolean {
  try {
    return new RegExp(`^(?:${re})$`, "u").test(text);
  } catch {
    return false; // RE2 syntax JavaScript does not take: assume it needs a value.
  }
}

/**
 * Checks a selector as Prometheus does before running it: at least one matcher must need a
 * non-empty value, or the selector would match every series of the server.
 */
export function validateSelector(matchers: readonly LabelMatcher[]): string | undefined {
  if (matchers.length === 0) return "a selector needs at least one matcher";
  for (const m of matchers) {
    if (!["=", "!=", "=~", "!~"].includes(m.type)) return `unknown matcher type "${m.type}"`;
    if (m.name === "") return "a matcher needs a label name";
  }
  if (matchers.every(matchesEmpty)) {
    return `selector ${formatMatchers(matchers)} matches the empty label set; ` +
      `add a matcher that needs a value, e.g. __name__=~".+"`;
  }
  return undefined;
}
