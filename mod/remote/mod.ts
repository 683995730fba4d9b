/**
 * Reading raw series data from a Prometheus server through its remote-read API, with the
 * customer's authentication and TLS settings (`promcase export --url`).
 *
 * @module
 */

export {
  readRemote,
  type RemoteProgress,
  type RemoteReadOptions,
  type RemoteReadStats,
  timeSlices,
} from "./read.ts";
export {
  apiUrl,
  fetchJson,
  type FetchJsonOptions,
  type HttpAuth,
  type HttpAuthFlags,
  HttpTransport,
  loadHttpAuth,
  NO_AUTH,
  parseHttpConfig,
  redact,
  safeUrl,
} from "./http.ts";
export {
  ALL_SERIES,
  formatMatchers,
  type LabelMatcher,
  type MatchType,
  metricNamesMatcher,
  quoteMeta,
  validateSelector,
} from "./matchers.ts";
