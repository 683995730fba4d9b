// runInterruptCleanups: cleanups registered while it runs (work that had just created something
// when the signal came) run too. In a subprocess: an interruption cannot be taken back.
import assert from "node:assert/strict";

const INTERRUPT = new URL("../mod/interrupt.ts", import.meta.url).href;

Deno.test("an interruption also runs the cleanups registered while it is handled", async () => {
  const script = `
    import { isInterrupted, onInterrupt, runInterruptCleanups } from ${JSON.stringify(INTERRUPT)};
    const ran = [];
    onInterrupt(() => { ran.push("first"); });
    // A step under way: it registers its cleanup once its file operation completes.
    const dir = await Deno.makeTempDir();
    const pending = Deno.stat(dir).then(() => {
      onInterrupt(async () => { await Deno.remove(dir); ran.push("late"); });
    });
    await runInterruptCleanups();
    await pending;
    let gone = false;
    try { await Deno.stat(dir); } catch { gone = true; }
    console.log(JSON.stringify({ ran, gone, interrupted: isInterrupted() }));
  `;
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["eval", "--ext=js", script],
    stdout: "piped",
    stderr: "inherit",
  }).output();
  assert.equal(out.code, 0);
  const result = JSON.parse(new TextDecoder().decode(out.stdout));
  assert.deepEqual(result, { ran: ["first", "late"], gone: true, interrupted: true });
});
