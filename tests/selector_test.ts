// Series selectors: the PromQL syntax as Prometheus parses it, RE2 regexes run as JavaScript
// regexes, and a check against a real Prometheus 3.5 that selects the same series for the same
// selectors and refuses the same invalid ones.
import assert from "node:assert/strict";
import { PromcaseError } from "../mod/errors.ts";
import {
  compileRegex,
  formatSelector,
  type LabelMatcher,
  matchesSelector,
  parseSelector,
  translateRegex,
} from "../mod/selector.ts";
import { goQuote } from "../mod/tsdb/dump.ts";
import { compareLabels, IndexReader, type Label } from "../mod/tsdb/index.ts";
import { backfillOpenMetrics, findPrometheus, startPrometheus } from "./_prometheus.ts";
import { withTempDir } from "./_files.ts";

const triples = (ms: readonly LabelMatcher[]) => ms.map((m) => [m.name, m.type, m.value]);

/** The parse error message of `text`, asserting that it is a one-line usage error. */
function parseError(text: string): string {
  try {
    parseSelector(text);
  } catch (err) {
    assert.ok(err instanceof PromcaseError, String(err));
    assert.equal(err.exitCode, 2);
    assert.ok(!err.message.includes("\n"), err.message);
    return err.message;
  }
  throw new assert.AssertionError({ message: `${text} parsed, but should not` });
}

Deno.test("selector: names, matchers, quotes, escapes, UTF-8 names and comments parse as in PromQL", () => {
  assert.deepEqual(triples(parseSelector("up").matchers), [["__name__", "=", "up"]]);
  // A name outside the braces becomes the last matcher, as in Prometheus.
  assert.deepEqual(
    triples(parseSelector(`job:rate5m{a="b", c!='d', e=~\`x.*\`, f!~"y",}`).matchers),
    [["a", "=", "b"], ["c", "!=", "d"], ["e", "=~", "x.*"], ["f", "!~", "y"], [
      "__name__",
      "=",
      "job:rate5m",
    ]],
  );
  assert.deepEqual(triples(parseSelector('{__name__=~"x.*"}').matchers), [[
    "__name__",
    "=~",
    "x.*",
  ]]);
  assert.deepEqual(triples(parseSelector(`{"my.metric", "a.b"="c", 'ü'!=""}`).matchers), [
    ["__name__", "=", "my.metric"],
    ["a.b", "=", "c"],
    ["ü", "!=", ""],
  ]);
  assert.deepEqual(
    triples(parseSelector(' \n sum # the metric\n { by = "x" , } # done').matchers),
    [["by", "=", "x"], ["__name__", "=", "sum"]],
  );
  // Go escapes; \x and octal are bytes, so "\xc3\xa9" is é; raw strings keep backslashes.
  assert.deepEqual(
    triples(
      parseSelector(
        String.raw`{a="\a\b\f\n\r\t\v\\\"", b='\'\x41\101\u00e9\U0001F600\xc3\xa9', c=` +
          "`\\n\"'`}",
      ).matchers,
    ),
    [["a", "=", '\x07\b\f\n\r\t\v\\"'], ["b", "=", "'AAé😀é"], ["c", "=", "\\n\"'"]],
  );
  // Keywords are metric names except those the grammar refuses.
  for (const name of ["sum", "by", "offset", "and", "start", "inf", "NaN", "SUM", ":x"]) {
    assert.deepEqual(triples(parseSelector(name).matchers), [["__name__", "=", name]]);
  }
  // A name set twice is allowed (matches nothing), as the API allows it.
  assert.equal(parseSelector('a{__name__="b"}').matchers.length, 2);
});

Deno.test("selector: errors name the problem and the position", () => {
  const cases: [string, RegExp][] = [
    ["", /empty selector/],
    ["{}", /at least one non-empty matcher/],
    ['{a=""}', /at least one non-empty matcher/],
    ['{a=~".*", b!="x"}', /at least one non-empty matcher/],
    ["on", /"on" is a PromQL keyword.*position 1$/],
    ["foo bar", /unexpected 'b' after the selector.*position 5$/],
    ["rate(foo[5m])", /unexpected '\(' after the selector.*position 5$/],
    ['{a="b" c="d"}', /unexpected 'c': expected "," or "}" at position 8$/],
    ['{a="b",,}', /unexpected ',' inside braces.*position 8$/],
    ["{a}", /after label name "a": expected one of =, !=, =~, !~ at position 3$/],
    ["{a=b}", /unexpected 'b' after a=: expected a quoted string at position 4$/],
    ['{a=="b"}', /unexpected '=' after a=.*position 4$/],
    ['{a!"b"}', /unexpected '"' after '!' inside braces at position 3$/],
    ['foo{a="b"', /unexpected end of input inside braces at position 10$/],
    ['{a="b}', /unterminated quoted string at position 4$/],
    ['{a="b\n"}', /unterminated quoted string at position 4$/],
    ["{a=`b}", /unterminated raw string at position 4$/],
    ['{a="\\q"}', /unknown escape sequence \\q at position 5$/],
    ['{a="\\\'"}', /unknown escape sequence \\' at position 5$/],
    ['{a="\\x4"}', /escape sequence not terminated at position 5$/],
    ['{a="\\xzz"}', /illegal character 'z' in escape sequence at position 5$/],
    ['{a="\\ud800"}', /invalid Unicode code point at position 5$/],
    ['{a="\\777"}', /invalid Unicode code point/],
    ['{a="\\xff"}', /not valid UTF-8.*position 4$/],
    ["1", /unexpected '1': expected a metric name or "{" at position 1$/],
    ['"foo"', /expected a metric name or "{" at position 1$/],
    ['foo{:a="b"}', /unexpected ':' inside braces.*position 5$/],
    // Positions count characters, not bytes or UTF-16 units.
    ['{"😀é"=~"("}', /bad regex "\(" for label "😀é": .*missing closing \).*position 8$/],
  ];
  for (const [text, want] of cases) {
    const message = parseError(text);
    assert.match(message, want, `${JSON.stringify(text)}: ${message}`);
    assert.ok(message.startsWith("invalid series selector "), message);
  }
});

Deno.test("selector: formatSelector prints canonically and parses back to the same matchers", () => {
  const cases: [string, string][] = [
    ["up", "up"],
    ['up{job="x"}', 'up{job="x"}'],
    [`foo{z='1', a!~"b", "a.b"=~\`c\\d\`}`, 'foo{"a.b"=~"c\\\\d",a!~"b",z="1"}'],
    ['{"my.metric", x="1"}', '{"my.metric",x="1"}'],
    ['{__name__="on"}', '{"on"}'],
    ['{__name__=~"a.+"}', '{__name__=~"a.+"}'],
    ['{a="tab\\there\\u00a0nbsp é \\x7f \\U0001f600"}', '{a="tab\\there\\u00a0nbsp é \\x7f 😀"}'],
  ];
  for (const [text, want] of cases) {
    const sel = parseSelector(text);
    assert.equal(formatSelector(sel), want);
    const back = parseSelector(formatSelector(sel));
    const sorted = (ms: readonly LabelMatcher[]) =>
      triples(ms).sort((a, b) => a.join("\0").localeCompare(b.join("\0")));
    assert.deepEqual(sorted(back.matchers), sorted(sel.matchers), text);
  }
  assert.equal(goQuote('a"b\\c\n\x00\u200b'), '"a\\"b\\\\c\\n\\x00\\u200b"');
});

Deno.test("selector: matchesSelector treats a missing label as the empty string", () => {
  const labels: Label[] = [{ name: "__name__", value: "up" }, { name: "job", value: "node" }];
  const yes = ["up", 'up{job="node"}', '{job=~"no.*"}', 'up{x=""}', 'up{x!="a"}', 'up{x=~"|a"}'];
  const no = ['up{x!=""}', 'up{job!="node"}', '{job!~"n.*", __name__="up"}', 'up{x=~".+"}'];
  for (const s of yes) assert.ok(matchesSelector(labels, parseSelector(s)), s);
  for (const s of no) assert.ok(!matchesSelector(labels, parseSelector(s)), s);
});

Deno.test("selector: RE2 regexes are anchored and mean what they mean in Prometheus 3", () => {
  const cases: [string, string, boolean][] = [
    ["a.c", "abc", true],
    ["a.c", "xabc", false], // anchored
    ["a|b", "ab", false],
    [".", "\n", true], // (?s) since Prometheus 3.0
    ["(?-s:.)", "\n", false],
    ["(?-s).", "\n", false],
    [".", "😀", true], // one code point
    ["..", "😀", false],
    ["\\s", "\v", false], // RE2 \s is [\t\n\f\r ]
    ["\\s", "\f", true],
    ["[[:space:]]", "\v", true],
    ["\\w", "é", false], // ASCII only
    ["\\pL", "é", true],
    ["\\p{Greek}+", "αβγ", true],
    ["\\p{^Greek}", "a", true],
    ["\\PL", "1", true],
    ["(?i)k", "\u212a", true], // Kelvin sign folds to k
    ["(?i)[^k]", "K", false],
    ["(?i)\\W", "ſ", false], // RE2 folds \w before negating: ſ is a word char here
    ["(?i)[^\\W]", "ſ", true],
    ["\\W", "ſ", true],
    ["(?i)[\\P{Lu}x]", "A", false],
    ["(?i)[\\P{Lu}x]", "X", true],
    ["(?i)ab(?-i)c", "ABc", true],
    ["(?i)ab(?-i)c", "ABC", false],
    ["(?i:a)b|c", "C", false],
    ["a(?i)b|c", "C", true], // the flag covers the rest of the group, across |
    ["(a(?i)b)c", "aBC", false],
    ["(?m)a$\\nb", "a\nb", true],
    ["a$\\nb", "a\nb", false],
    ["(?m)^b", "b", true],
    ["\\Aab\\z", "ab", true],
    ["\\bab\\b", "ab", true],
    ["x{2}", "xx", true],
    ["x{,2}", "x{,2}", true], // not a repeat: literal
    ["x{01}", "x{01}", true],
    ["{", "{", true],
    ["a{2,}", "aaaa", true],
    ["(?:a{2}){3}", "aaaaaa", true],
    ["\\Qa.b\\E+", "a.bbb", true],
    ["\\Qa.b", "a.b", true],
    ["[]a]+", "]a]", true],
    ["[^]a]", "b", true],
    ["[a-]", "-", true],
    ["[a\\-z]", "b", false],
    ["\\x41\\x{1F600}\\101\\0", "A😀A\0", true],
    ["[\\d\\x{1F600}-\\x{1F602}]+", "1😁", true],
    ["(?U)a+", "aaa", true],
    ["(?P<name>a)+", "aa", true],
    ["(?<name>a)+", "aa", true],
    ["\\p{Thai}|\\p{Yi}|\\p{Cn}|\\p{LC}", "a", true],
    ["(?)a", "a", true],
    ["(?i)ǅ", "ǆ", true],
    ["(?i)σ", "ς", true],
    ["\\^\\$\\.\\*\\+\\?\\(\\)\\[\\]\\{\\}\\|\\/\\-\\_", "^$.*+?()[]{}|/-_", true],
    ["\\a\\f\\t\\n\\r\\v", "\x07\f\t\n\r\v", true],
    ["", "", true],
    ["", "a", false],
    ["^*a", "a", true], // a repeated empty-width assertion is fine in RE2
  ];
  for (const [re, value, want] of cases) {
    const got = compileRegex(re).test(value);
    assert.equal(got, want, `${re} on ${JSON.stringify(value)} (JS: ${translateRegex(re)})`);
  }
  const invalid: [string, RegExp][] = [
    ["(", /missing closing \): `\(`/],
    [")", /unexpected \)/],
    ["a**", /invalid nested repetition operator: `\*\*`/],
    ["a*?+", /invalid nested repetition operator: `\*\?\+`/],
    ["*", /missing argument to repetition operator: `\*`/],
    ["(|*)", /missing argument/],
    ["x{1001}", /invalid repeat count: `\{1001\}`/],
    ["(x{500}){3}", /invalid repeat count/],
    ["x{3,2}", /invalid repeat count/],
    ["(?=a)", /invalid or unsupported Perl syntax: `\(\?=`/],
    ["(?!a)", /invalid or unsupported Perl syntax/],
    ["(?<=a)", /invalid named capture/],
    ["(?<n", /invalid named capture/],
    ["(?P=n)", /invalid or unsupported Perl syntax/],
    ["(?P<>a)", /invalid named capture/],
    ["(?-)", /invalid or unsupported Perl syntax/],
    ["\\1", /invalid escape sequence: `\\1`/],
    ["\\8", /invalid escape sequence/],
    ["\\Z", /invalid escape sequence: `\\Z`/],
    ["\\C", /invalid escape sequence/],
    ["\\é", /invalid escape sequence/],
    ["\\x{110000}", /invalid escape sequence/],
    ["\\xg", /invalid escape sequence/],
    ["a\\", /trailing backslash/],
    ["[a", /missing closing \]: `\[a`/],
    ["[]", /missing closing \]/],
    ["[z-a]", /invalid character class range: `z-a`/],
    ["[[:foo:]]", /invalid character class range: `\[:foo:\]`/],
    ["\\p{Foo}", /invalid character class range: `\\p\{Foo\}`/],
    ["\\pX", /invalid character class range: `\\pX`/],
    ["\\p{Grek}", /invalid character class range/], // ISO alias: JS knows it, Go does not
    ["\\p{Unknown}", /invalid character class range/],
    ["[\\b]", /invalid escape sequence/],
  ];
  for (const [re, want] of invalid) {
    assert.throws(() => compileRegex(re), (err: Error) => {
      assert.ok(err instanceof SyntaxError);
      assert.match(err.message, /^error parsing regexp: /);
      assert.match(err.message, want, `${re}: ${err.message}`);
      return true;
    });
  }
});

// Label values chosen to separate RE2 from naive JavaScript translations: newlines, case folding
// outside ASCII, Unicode classes, astral characters, regex metacharacters.
const VALUES = [
  "a",
  "A",
  "b",
  "ab",
  "aB",
  "abc",
  "a\nb",
  "\n",
  "a\r",
  "k",
  "K",
  "\u212a",
  "s",
  "ſ",
  "é",
  "É",
  "ß",
  "ẞ",
  "ǅ",
  "σ",
  "ς",
  "Σ",
  "αβγ",
  "日本",
  "😀",
  "😁x",
  "foo.bar",
  "FOO.BAR",
  "foo-bar",
  "123",
  "0x1F",
  " ",
  "\t",
  "\v",
  "\f",
  "a b",
  "x{2}",
  "xx",
  "{",
  "[]",
  "a\\b",
  "_",
  "-",
  "a.b",
  "a+b",
];

const SELECTORS = [
  'sel_test{v="a"}',
  'sel_test{v!="a"}',
  'sel_test{v=""}',
  'sel_test{v!=""}',
  'sel_test{v=~""}',
  'sel_test{v=~"a.b"}',
  'sel_test{v=~".+"}',
  'sel_test{v!~".*a.*"}',
  'sel_test{v=~"(?-s:.+)"}',
  'sel_test{v=~"[^\\\\n]+"}',
  'sel_test{v=~"."}',
  'sel_test{v=~"..?"}',
  'sel_test{v=~"(?i)a"}',
  'sel_test{v=~"(?i)ab.*"}',
  'sel_test{v=~"(?i)k"}',
  'sel_test{v=~"(?i)[^k]"}',
  'sel_test{v=~"(?i)s"}',
  'sel_test{v=~"(?i)\\\\W"}',
  'sel_test{v=~"\\\\W"}',
  'sel_test{v=~"(?i)[^\\\\W]"}',
  'sel_test{v=~"\\\\w+"}',
  'sel_test{v=~"\\\\s"}',
  'sel_test{v=~"[[:space:]]"}',
  'sel_test{v=~"[[:^alpha:]]+"}',
  'sel_test{v=~"[[:punct:]]+"}',
  'sel_test{v=~"\\\\pL+"}',
  'sel_test{v=~"\\\\p{Greek}+"}',
  'sel_test{v=~"\\\\p{Han}+"}',
  'sel_test{v=~"\\\\PL"}',
  'sel_test{v=~"\\\\p{Lu}"}',
  'sel_test{v=~"(?i)\\\\p{Lu}"}',
  'sel_test{v=~"(?i)\\\\P{Lu}"}',
  'sel_test{v=~"(?i)[\\\\P{Lu}x]"}',
  'sel_test{v=~"(?i)ß"}',
  'sel_test{v=~"(?i)ǆ"}',
  'sel_test{v=~"(?i)σ"}',
  'sel_test{v=~"(?i)é"}',
  'sel_test{v=~"(?i)foo\\\\.bar"}',
  'sel_test{v=~"foo.bar"}',
  'sel_test{v=~"\\\\Qfoo.bar\\\\E"}',
  'sel_test{v=~"(?m)a$\\\\nb"}',
  'sel_test{v=~"a$\\\\nb"}',
  'sel_test{v=~"(?m)^\\\\n"}',
  'sel_test{v=~"\\\\Aa\\\\z"}',
  'sel_test{v=~"\\\\bfoo\\\\b.*"}',
  'sel_test{v=~"x{2}"}',
  'sel_test{v=~"x\\\\{2\\\\}"}',
  'sel_test{v=~"x{,2}"}',
  'sel_test{v=~"{"}',
  'sel_test{v=~"\\\\x{1F600}"}',
  'sel_test{v=~"[\\\\x{1F600}-\\\\x{1F602}]x?"}',
  'sel_test{v=~"\\\\d+|0x[[:xdigit:]]+"}',
  'sel_test{v=~"[]\\\\[]+"}',
  'sel_test{v=~"a\\\\\\\\b"}',
  'sel_test{v=~"\\\\141"}',
  'sel_test{v=~"(?U)a+?b"}',
  'sel_test{v=~"(?P<x>a)(?<y>b|c)?"}',
  'sel_test{v=~"\\\\p{LC}+|\\\\p{Cn}"}',
  'sel_test{v=~"[a-]"}',
  'sel_test{v=~"a[+.]b"}',
  'sel_test{v=~"\\t|\\v|\\f"}',
  "sel_test{v=~'a|b|ab'}",
  "sel_test{v=~`a\\.b`}",
  '{v=~"a", __name__=~"sel_.*"}',
  '{v="a"}',
  '{"my.metric"}',
  '{__name__="my.metric"}',
  '{"a.b"="c"}',
  '{"a.b"=~"c|d", "my.metric"}',
  'sum{by="x"}',
  'sel_test{__name__="other_metric"}',
  '{__name__=~"sel_test|other_metric", v=~"a"}',
];

// Prometheus refuses these too; ours must not accept anything that Prometheus refuses.
const INVALID = [
  '{a=""}',
  "{}",
  '{a=~".*"}',
  "on",
  "bool",
  'foo{a="b" c="d"}',
  'foo{a="\\q"}',
  'foo{a=~"("}',
  'foo{a=~"a**"}',
  'foo{a=~"(?=x)"}',
  'foo{a=~"(?<=x)"}',
  'foo{a=~"\\\\p{Grek}"}',
  'foo{a=~"\\\\p{greek}"}',
  'foo{a=~"x{1001}"}',
  'foo{a=~"\\\\8"}',
  'foo{a=~"\\\\p{Foo}"}',
  'foo{a=~"[z-a]"}',
  "foo[5m]",
  "rate(foo[5m])",
  "foo offset 5m",
  "1",
];

Deno.test("selector: Prometheus 3.5 selects the same series and refuses the same selectors", async () => {
  const { promtool, prometheus } = await findPrometheus("newest");
  await withTempDir("promcase-selector-", async (dir) => {
    const t = Math.floor(Date.now() / 1000) - 3600;
    const om = (s: string) =>
      s.replaceAll("\\", "\\\\").replaceAll("\n", "\\n").replaceAll('"', '\\"');
    const lines = ["# TYPE sel_test gauge", `sel_test 1 ${t}`];
    for (const v of VALUES) lines.push(`sel_test{v="${om(v)}"} 1 ${t}`);
    lines.push(
      `sel_test{v="a",w="1"} 1 ${t}`,
      `other_metric{v="a"} 1 ${t}`,
      `{"my.metric","a.b"="c"} 1 ${t}`,
      `{"my.metric","a.b"="d"} 1 ${t}`,
      `sum{by="x"} 1 ${t}`,
      "# EOF",
      "",
    );
    await backfillOpenMetrics(promtool, lines.join("\n"), `${dir}/data`);

    // Every series, straight from the block's index.
    const all: Label[][] = [];
    for await (const entry of Deno.readDir(`${dir}/data`)) {
      if (!entry.isDirectory) continue;
      using index = await IndexReader.open(`${dir}/data/${entry.name}/index`);
      for await (const s of index.series()) all.push(s.labels);
    }
    assert.equal(all.length, VALUES.length + 6);

    await using server = await startPrometheus({ bin: prometheus, dataDir: `${dir}/data` });
    const key = (labels: readonly Label[]) => JSON.stringify(labels);
    let nonEmpty = 0;
    for (const text of SELECTORS) {
      const data = await server.api("/api/v1/series", { "match[]": text }) as Record<
        string,
        string
      >[];
      const want = data.map((o) =>
        key(
          Object.entries(o).map(([name, value]) => ({ name, value })).sort((a, b) =>
            compareLabels([a], [b])
          ),
        )
      ).sort();
      const sel = parseSelector(text);
      const got = all.filter((labels) => matchesSelector(labels, sel)).map(key).sort();
      assert.deepEqual(got, want, `${text} (JS: ${sel.matchers.map((m) => m.regex).join(" ")})`);
      if (want.length > 0) nonEmpty++;
    }
    assert.ok(nonEmpty > SELECTORS.length * 0.8, `only ${nonEmpty} selectors selected something`);

    for (const text of INVALID) {
      const res = await fetch(
        `${server.url}/api/v1/series?${new URLSearchParams({ "match[]": text })}`,
      );
      const body = await res.json() as { status: string; error?: string };
      assert.equal(body.status, "error", `Prometheus accepted ${text}`);
      assert.throws(() => parseSelector(text), PromcaseError, `${text}: ${body.error}`);
    }
  });
});
