/**
 * promcase's own version, written into every manifest.
 *
 * @module
 */

/** The promcase version (keep in step with deno.json). */
export const VERSION = "0.2.0";
