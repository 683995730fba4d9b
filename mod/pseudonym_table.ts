/**
 * The mapping table of pseudonyms, kept on the customer's side beside the key (`KEY.map`, mode
 * 0600): one `PSEUDONYM<TAB>"ORIGINAL"` line (the original as a JSON string) per value, sorted.
 *
 * An export journals each value it maps ({@link PseudonymJournal}); when its archive is complete
 * but for the manifest, {@link PseudonymJournal.commit} merges the journal with the table already
 * there into a new table, written beside it and renamed over it. The merge is where two values that
 * share a pseudonym are found (in the export, or against the table), and the export is refused.
 *
 * Memory: the journal holds its lines up to `budgetBytes` (default 4 MiB), then sorts them and
 * spills them as a run file into the export's spill dir; the existing table is read in the same
 * runs. The merge holds one read buffer a run (`readBytes`, default 64 KiB). So the table's size,
 * like the number of values, does not bound the export's memory.
 *
 * @module
 */

import { PromcaseError } from "./errors.ts";
import { BufferedFileWriter } from "./tsdb/_io.ts";
import { MinHeap } from "./tsdb/_stream.ts";

/** The mapping table kept beside a key file. */
export function mappingPath(keyPath: string): string {
  return `${keyPath}.map`;
}

/**
 * Reads a whole mapping table (pseudonym -> original) for `promcase reveal`, which runs on the
 * customer's side, away from the incident; empty when the file does not exist.
 */
export async function readMapping(path: string): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return out;
    throw new PromcaseError(`cannot read the mapping table ${path}: ${(err as Error).message}`);
  }
  for (const [i, line] of text.split("\n").entries()) {
    if (line === "") continue;
    const [pseudonym, original] = _parseLine(line, path, i + 1);
    out.set(pseudonym, original);
  }
  return out;
}

/** A table line's pseudonym and original; anything else is refused, naming the line. */
function _parseLine(line: string, path: string, number: number): [string, string] {
  const tab = line.indexOf("\t");
  let original: unknown;
  try {
    // The original is a JSON string right after the tab, as the table is written.
    original = tab > 0 && line[tab + 1] === '"' ? JSON.parse(line.slice(tab + 1)) : undefined;
  } catch { /* refused below */ }
  if (typeof original !== "string") {
    throw new PromcaseError(`${path}:${number}: not a PSEUDONYM<TAB>"ORIGINAL" line`);
  }
  return [line.slice(0, tab), original];
}

/** Options of {@link PseudonymJournal}. */
export interface PseudonymJournalOptions {
  /** Estimated bytes of journal lines held before they are spilled as a run (default 4 MiB). */
  budgetBytes?: number;
  /** Read buffer of each run while merging (default 64 KiB). */
  readBytes?: number;
}

/** What {@link PseudonymJournal.commit} wrote. */
export interface CommittedTable {
  /** The table's path. */
  path: string;
  /** Distinct values the export mapped. */
  values: number;
  /** Of those, the ones the table did not hold yet. */
  added: number;
  /** Lines in the table now. */
  lines: number;
}

// A line's estimated cost in memory: its characters (two bytes at worst) and the array slot.
const _LINE_OVERHEAD = 48;

/** The values an export mapped, spilled in sorted runs, merged into the table at the end. */
export class PseudonymJournal {
  #budget: number;
  #readBytes: number;
  #dir: string | null = null;
  #pending: string[] = [];
  #pendingBytes = 0;
  #runs: string[] = [];
  #committed = false;
  // Names this journal's runs apart from another's in the same dir.
  #id = crypto.randomUUID().slice(0, 8);

  /** An empty journal; it needs {@link useDir} before its first spill. */
  constructor(options: PseudonymJournalOptions = {}) {
    this.#budget = options.budgetBytes ?? 4 * 1024 * 1024;
    this.#readBytes = options.readBytes ?? 64 * 1024;
  }

  /** Where runs are spilled: a dir the export removes when it ends (its staging dir). */
  useDir(dir: string): void {
    this.#dir = dir;
  }

  /** Run files spilled so far. */
  get runs(): number {
    return this.#runs.length;
  }

  /** Journals one mapping (any number of times: the merge keeps one line). */
  add(pseudonym: string, original: string): void {
    if (this.#committed) throw new Error("the pseudonym journal was committed already");
    const line = `${pseudonym}\t${JSON.stringify(original)}`;
    this.#pending.push(line);
    this.#pendingBytes += 2 * line.length + _LINE_OVERHEAD;
    if (this.#pendingBytes >= this.#budget) this.#spill("new");
  }

  /**
   * Merges the journal and the table at `tablePath` (if any) into a new table there, sorted, one
   * line a value. Refuses, changing nothing, when two originals share a pseudonym or a line of the
   * table is not a mapping.
   */
  async commit(tablePath: string): Promise<CommittedTable> {
    if (this.#committed) throw new Error("the pseudonym journal was committed already");
    this.#committed = true;
    try {
      this.#spill("new");
      return await this.#merge(tablePath, await this.#spillTable(tablePath));
    } finally {
      for (const path of this.#runs) await Deno.remove(path).catch(() => {});
    }
  }

  /** Merges the runs into a new table at `tablePath`; `fromTable` are the table's own runs. */
  async #merge(tablePath: string, fromTable: Set<string>): Promise<CommittedTable> {
    const dir = tablePath.includes("/") ? tablePath.slice(0, tablePath.lastIndexOf("/")) : ".";
    const tmp = `${dir}/.${tablePath.slice(dir.length + 1)}.tmp-${crypto.randomUUID()}`;
    const out = await BufferedFileWriter.create(tmp, this.#readBytes);
    const encoder = new TextEncoder();
    const heap = new MinHeap<_LineRun>((a, b) => a.line < b.line);
    const opened: _LineRun[] = [];
    const result = { path: tablePath, values: 0, added: 0, lines: 0 };
    try {
      for (const path of this.#runs) {
        const run = await _LineRun.open(path, this.#readBytes, fromTable.has(path));
        opened.push(run);
        if (await run.next()) heap.push(run);
      }
      let line: string | null = null;
      let inTable = false;
      let inExport = false;
      const flush = async () => {
        if (line === null) return;
        await out.write(encoder.encode(`${line}\n`));
        result.lines++;
        if (inExport) result.values++;
        if (inExport && !inTable) result.added++;
      };
      while (heap.size > 0) {
        const run = heap.pop()!;
        const next = run.line;
        if (next !== line) {
          const tab = next.indexOf("\t");
          if (line !== null && line.slice(0, tab + 1) === next.slice(0, tab + 1)) {
            throw new PromcaseError(
              `two values map to the same pseudonym ${next.slice(0, tab)} (in this export or in ` +
                `${tablePath}): use another --pseudonym-key`,
            );
          }
          await flush();
          line = next;
          inTable = false;
          inExport = false;
        }
        if (run.fromTable) inTable = true;
        else inExport = true;
        if (await run.next()) heap.push(run);
      }
      await flush();
      await out.close();
      if (Deno.build.os !== "windows") await Deno.chmod(tmp, 0o600);
      await Deno.rename(tmp, tablePath);
    } catch (err) {
      out.abort();
      await Deno.remove(tmp).catch(() => {});
      throw err;
    } finally {
      for (const run of opened) run.close();
    }
    return result;
  }

  /** Spills the pending lines as a sorted run; returns its path (none when nothing is pending). */
  #spill(kind: "new" | "table"): string | null {
    if (this.#pending.length === 0) return null;
    if (this.#dir === null) throw new Error("the pseudonym journal has no spill dir");
    this.#pending.sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
    const path = `${this.#dir}/pseudonyms-${this.#id}-${kind}-${this.#runs.length}.run`;
    Deno.writeTextFileSync(path, this.#pending.join("\n") + "\n", { createNew: true });
    this.#runs.push(path);
    this.#pending = [];
    this.#pendingBytes = 0;
    return path;
  }

  /** The table's lines as runs (checked line by line); the set of their paths. */
  async #spillTable(tablePath: string): Promise<Set<string>> {
    const paths = new Set<string>();
    let run: _LineRun;
    try {
      run = await _LineRun.open(tablePath, this.#readBytes, true);
    } catch (err) {
      if (err instanceof Deno.errors.NotFound) return paths;
      throw new PromcaseError(
        `cannot read the mapping table ${tablePath}: ${(err as Error).message}`,
      );
    }
    try {
      let number = 0;
      while (await run.next()) {
        number++;
        if (run.line === "") continue;
        _parseLine(run.line, tablePath, number); // refuses a line that is no mapping
        this.#pending.push(run.line);
        this.#pendingBytes += 2 * run.line.length + _LINE_OVERHEAD;
        if (this.#pendingBytes >= this.#budget) paths.add(this.#spill("table")!);
      }
    } finally {
      run.close();
    }
    const last = this.#spill("table");
    if (last !== null) paths.add(last);
    return paths;
  }
}

/** A file's lines, read forward through one buffer. */
class _LineRun {
  /** The current line (without its line break). */
  line = "";
  readonly fromTable: boolean;
  #file: Deno.FsFile;
  #buf: Uint8Array;
  #decoder = new TextDecoder();
  #lines: string[] = [];
  #at = 0;
  #rest = "";
  #ended = false;

  private constructor(file: Deno.FsFile, bufferSize: number, fromTable: boolean) {
    this.#file = file;
    this.#buf = new Uint8Array(bufferSize);
    this.fromTable = fromTable;
  }

  static async open(path: string, bufferSize: number, fromTable: boolean): Promise<_LineRun> {
    return new _LineRun(await Deno.open(path), bufferSize, fromTable);
  }

  /** Moves to the next line; false at the end (a last line without a break counts). */
  async next(): Promise<boolean> {
    while (this.#at >= this.#lines.length) {
      if (this.#ended) return false;
      const n = await this.#file.read(this.#buf);
      let text: string;
      if (n === null) {
        this.#ended = true;
        text = this.#rest + this.#decoder.decode();
        this.#lines = text === "" ? [] : [text];
        this.#rest = "";
      } else {
        text = this.#rest + this.#decoder.decode(this.#buf.subarray(0, n), { stream: true });
        const parts = text.split("\n");
        this.#rest = parts.pop()!;
        this.#lines = parts;
      }
      this.#at = 0;
    }
    this.line = this.#lines[this.#at++];
    return true;
  }

  close(): void {
    try {
      this.#file.close();
    } catch { /* closed already */ }
  }
}
