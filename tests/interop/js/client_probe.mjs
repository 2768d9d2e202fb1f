#!/usr/bin/env node
// Interop probe: drives the official npm `@libsql/client` against a Hrana-over-HTTP
// server and prints ONE JSON object on stdout describing what it observed.
//
// Usage:
//   node client_probe.mjs URL [AUTH_TOKEN] [--steps a,b,c] [--table NAME]
//   (or PROBE_URL / PROBE_AUTH_TOKEN / PROBE_STEPS / PROBE_TABLE in the environment)
//
// URL must end with "/" when it has a path (http://127.0.0.1:PORT/db/alice/):
// the client resolves "v2/pipeline" relative to it.
//
// PROBE_TIMEOUT_MS (default 60000) bounds the whole run.
//
// Exit status: 0 when every selected step behaved as expected, 1 when some step
// failed unexpectedly or a check did not hold, 2 on bad usage / client missing.
// The JSON object is printed in every case except usage errors.

import { readFileSync } from "node:fs";

const ALL_STEPS = [
  "setup",
  "execute_positional",
  "execute_named",
  "execute_error",
  "select_number_mode",
  "bigint",
  "floats",
  "batch_write",
  "batch_atomic_failure",
  "transaction_commit",
  "transaction_rollback",
  "execute_multiple",
  "read_mode",
  "cleanup",
];

function parseArgs(argv) {
  const opts = {
    url: process.env.PROBE_URL,
    token: process.env.PROBE_AUTH_TOKEN || undefined,
    steps: process.env.PROBE_STEPS,
    table: process.env.PROBE_TABLE,
  };
  const positional = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === "--steps") opts.steps = argv[++i];
    else if (a === "--table") opts.table = argv[++i];
    else if (a === "-h" || a === "--help") {
      process.stderr.write("usage: node client_probe.mjs URL [AUTH_TOKEN] [--steps a,b] [--table NAME]\n");
      process.stderr.write(`steps: ${ALL_STEPS.join(",")}\n`);
      process.exit(2);
    } else positional.push(a);
  }
  if (positional[0]) opts.url = positional[0];
  if (positional[1]) opts.token = positional[1];
  if (!opts.url) {
    process.stderr.write("client_probe: no URL given (argv[1] or PROBE_URL)\n");
    process.exit(2);
  }
  opts.steps = opts.steps ? opts.steps.split(",").map((s) => s.trim()).filter(Boolean) : ALL_STEPS;
  for (const s of opts.steps) {
    if (!ALL_STEPS.includes(s)) {
      process.stderr.write(`client_probe: unknown step ${JSON.stringify(s)}\n`);
      process.exit(2);
    }
  }
  if (!opts.table) opts.table = `probe_js_${process.pid}_${Date.now().toString(36)}`;
  if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(opts.table)) {
    process.stderr.write("client_probe: --table must be a plain identifier\n");
    process.exit(2);
  }
  return opts;
}

// ---- JSON-safe rendering of values returned by the client ----
function jsonValue(v) {
  if (v === null || v === undefined) return null;
  if (typeof v === "bigint") return { bigint: v.toString() };
  if (typeof v === "number") {
    if (Number.isFinite(v)) return Object.is(v, -0) ? { number: "-0" } : v;
    return { number: String(v) };
  }
  if (v instanceof ArrayBuffer) return { blob_base64: Buffer.from(new Uint8Array(v)).toString("base64") };
  if (ArrayBuffer.isView(v)) return { blob_base64: Buffer.from(v.buffer, v.byteOffset, v.byteLength).toString("base64") };
  return v;
}

function jsonResultSet(rs) {
  return {
    columns: rs.columns,
    column_types: rs.columnTypes,
    rows: rs.rows.map((row) => rs.columns.map((_, i) => jsonValue(row[i]))),
    rows_affected: rs.rowsAffected,
    last_insert_rowid: rs.lastInsertRowid === undefined || rs.lastInsertRowid === null ? null : String(rs.lastInsertRowid),
  };
}

function jsonError(e) {
  const out = { name: e?.name ?? typeof e, message: String(e?.message ?? e) };
  if (e?.code !== undefined) out.code = e.code;
  if (e?.rawCode !== undefined) out.raw_code = e.rawCode;
  if (e?.extendedCode !== undefined) out.extended_code = e.extendedCode;
  if (e?.statementIndex !== undefined) out.statement_index = e.statementIndex;
  if (e?.cause?.message && e.cause.message !== out.message) out.cause = String(e.cause.message);
  return out;
}

// ---- wire recorder: wraps fetch so we can report what the client sends ----
function summarizeStmt(stmt) {
  if (!stmt) return null;
  const s = {};
  if (stmt.sql !== undefined) s.sql = stmt.sql;
  if (stmt.sql_id !== undefined) s.sql_id = stmt.sql_id;
  if (stmt.args && stmt.args.length) s.args = stmt.args;
  if (stmt.named_args && stmt.named_args.length) s.named_args = stmt.named_args;
  if (stmt.want_rows !== undefined) s.want_rows = stmt.want_rows;
  return s;
}

function summarizeRequest(r) {
  const out = { type: r.type };
  if (r.type === "execute") out.stmt = summarizeStmt(r.stmt);
  else if (r.type === "batch") {
    out.steps = r.batch.steps.map((st) => ({
      stmt: summarizeStmt(st.stmt),
      ...(st.condition ? { condition: st.condition } : {}),
    }));
  } else if (r.type === "store_sql") {
    out.sql_id = r.sql_id;
    out.sql = r.sql;
  } else if (r.type === "close_sql") out.sql_id = r.sql_id;
  else if (r.type === "sequence") out.sql = r.sql;
  return out;
}

function makeRecordingFetch(wire) {
  return async (input, init) => {
    const req = input instanceof Request ? input : new Request(input, init);
    const entry = { method: req.method, path: new URL(req.url).pathname };
    entry.content_type = req.headers.get("content-type");
    entry.authorization = req.headers.get("authorization") ? "Bearer <redacted>" : null;
    if (req.method === "POST") {
      const text = await req.clone().text();
      try {
        const body = JSON.parse(text);
        entry.baton_field = Object.prototype.hasOwnProperty.call(body, "baton")
          ? body.baton === null ? "null" : "string"
          : "absent";
        if (Array.isArray(body.requests)) entry.requests = body.requests.map(summarizeRequest);
        if (body.batch) entry.cursor_steps = body.batch.steps.length;
      } catch {
        entry.body_unparsed = text.slice(0, 200);
      }
    }
    wire.push(entry);
    const resp = await fetch(req);
    entry.status = resp.status;
    if (resp.headers.get("content-type")?.startsWith("application/json")) {
      try {
        const body = await resp.clone().json();
        if (body && "baton" in body) entry.response_baton = body.baton === null ? "null" : "string";
        if (Array.isArray(body?.results)) {
          entry.response_types = body.results.map((r) => (r.type === "ok" ? r.response?.type : `error:${r.error?.code ?? ""}`));
        }
      } catch {
        /* not our business */
      }
    }
    return resp;
  };
}

// ---- the probe ----
async function main() {
  const opts = parseArgs(process.argv.slice(2));
  let libsql;
  let version = null;
  try {
    libsql = await import("@libsql/client");
    const pkg = new URL("./node_modules/@libsql/client/package.json", import.meta.url);
    try {
      version = JSON.parse(readFileSync(pkg, "utf8")).version;
    } catch {
      version = null; // resolved from elsewhere (e.g. NODE_PATH)
    }
  } catch (e) {
    process.stderr.write(`client_probe: cannot load @libsql/client: ${e?.message ?? e}\n`);
    process.exit(2);
  }

  const wire = [];
  const out = {
    probe: "libsql-client-js",
    client: { name: "@libsql/client", version },
    node: process.version,
    url: opts.url.replace(/([?&]authToken=)[^&]*/, "$1<redacted>"),
    table: opts.table,
    steps_requested: opts.steps,
    results: {},
    checks: {},
    observations: {},
    unexpected_errors: [],
    wire,
  };
  const T = opts.table;
  const recordingFetch = makeRecordingFetch(wire);
  const mk = (intMode) =>
    libsql.createClient({ url: opts.url, authToken: opts.token, intMode, fetch: recordingFetch });
  const db = mk("number");
  const dbBig = mk("bigint");

  const want = new Set(opts.steps);
  const check = (name, cond) => {
    out.checks[name] = Boolean(cond);
  };
  async function step(name, fn) {
    if (!want.has(name)) return;
    const started = wire.length;
    try {
      out.results[name] = { ok: true, ...(await fn()) };
    } catch (e) {
      out.results[name] = { ok: false, error: jsonError(e) };
      out.unexpected_errors.push({ step: name, error: jsonError(e) });
    }
    out.results[name].wire_range = [started, wire.length];
  }
  const count = async (where) => {
    const rs = await db.execute(`SELECT count(*) AS n FROM ${T} WHERE ${where}`);
    return Number(rs.rows[0][0]);
  };

  await step("setup", async () => {
    await db.execute(`DROP TABLE IF EXISTS ${T}`);
    const rs = await db.execute(
      `CREATE TABLE ${T} (id INTEGER PRIMARY KEY, tag TEXT, i INTEGER, f REAL, s TEXT, b BLOB, n ANY, x)`,
    );
    return { create: jsonResultSet(rs) };
  });

  await step("execute_positional", async () => {
    const blob = new Uint8Array([0, 1, 2, 250, 255]);
    const ins = await db.execute({
      sql: `INSERT INTO ${T} (tag, i, f, s, b, n) VALUES (?, ?, ?, ?, ?, ?)`,
      args: ["pos", 42, 1.5, "héllo ✓ 'q' \"dq\"", blob, null],
    });
    // also the (sql, args) two-argument form
    const sel = await db.execute(
      `SELECT i, typeof(i), f, typeof(f), s, b, typeof(b), n, typeof(n) FROM ${T} WHERE tag = ?`,
      ["pos"],
    );
    const r = sel.rows[0];
    check("positional_int_roundtrip", r[0] === 42 && r[1] === "integer");
    check("positional_float_roundtrip", r[2] === 1.5 && r[3] === "real");
    check("positional_text_roundtrip", r[4] === "héllo ✓ 'q' \"dq\"");
    check(
      "positional_blob_roundtrip",
      r[5] instanceof ArrayBuffer && Buffer.from(new Uint8Array(r[5])).equals(Buffer.from(blob)) && r[6] === "blob",
    );
    check("positional_null_roundtrip", r[7] === null && r[8] === "null");
    // Declared types of table columns, "" for expressions (the server sends null), as sqld.
    check(
      "column_types",
      JSON.stringify(sel.columnTypes) ===
        JSON.stringify(["INTEGER", "", "REAL", "", "TEXT", "BLOB", "", "ANY", ""]),
    );
    check("insert_rows_affected", ins.rowsAffected === 1);
    check("insert_last_insert_rowid", ins.lastInsertRowid !== undefined && BigInt(ins.lastInsertRowid) > 0n);
    return { insert: jsonResultSet(ins), select: jsonResultSet(sel) };
  });

  await step("execute_named", async () => {
    // @libsql/client sends object keys verbatim as named_args names; the
    // three prefixes are exercised, plus a key given without its prefix.
    const ins = await db.execute({
      sql: `INSERT INTO ${T} (tag, i, s, x) VALUES (:tag, @i, $s, :bare)`,
      args: { ":tag": "named", "@i": 7n, $s: "dollar", bare: "no-prefix-key" },
    });
    const sel = await db.execute({ sql: `SELECT i, s, x FROM ${T} WHERE tag = :t`, args: { ":t": "named" } });
    const r = sel.rows[0];
    check("named_args_roundtrip", r !== undefined && r[0] === 7 && r[1] === "dollar");
    // {a: 1} with ":a" in the SQL is the documented usage, so the bare key must bind.
    check("named_args_bare_key", r !== undefined && r[2] === "no-prefix-key");
    return { insert: jsonResultSet(ins), select: jsonResultSet(sel) };
  });

  await step("execute_error", async () => {
    // An SQL error must come back as a LibsqlError, and the stream must stay usable.
    let err = null;
    try {
      await db.execute(`SELEC 1`);
    } catch (e) {
      err = jsonError(e);
    }
    let err2 = null;
    try {
      await db.execute(`INSERT INTO ${T} (id) VALUES (1), (1)`);
    } catch (e) {
      err2 = jsonError(e);
    }
    check("syntax_error_raised", err !== null);
    check("constraint_error_raised", err2 !== null);
    // sqld sends the primary code only; the client reads no other field.
    check("constraint_error_code", err2?.code === "SQLITE_CONSTRAINT");
    const after = await db.execute("SELECT 1");
    check("usable_after_error", after.rows[0][0] === 1);
    return { syntax_error: err, constraint_error: err2 };
  });

  await step("select_number_mode", async () => {
    const rs = await db.execute("SELECT 1 AS one, 9007199254740991 AS max_safe, NULL AS nil, 'x' AS t");
    check("number_mode_safe_ints", rs.rows[0][0] === 1 && rs.rows[0][1] === Number.MAX_SAFE_INTEGER);
    check("column_names", JSON.stringify(rs.columns) === JSON.stringify(["one", "max_safe", "nil", "t"]));
    // intMode "number" must refuse to round a too-large integer
    let overflow = null;
    try {
      await db.execute("SELECT 9223372036854775807");
    } catch (e) {
      overflow = jsonError(e);
    }
    check("number_mode_large_int_rejected", overflow !== null);
    return { select: jsonResultSet(rs), large_int_error: overflow };
  });

  await step("bigint", async () => {
    const big = [9223372036854775807n, -9223372036854775808n, 9007199254740993n, 0n, -1n];
    const ins = [];
    for (const v of big) {
      ins.push(jsonResultSet(await dbBig.execute({ sql: `INSERT INTO ${T} (tag, i) VALUES ('big', ?)`, args: [v] })));
    }
    const sel = await dbBig.execute(`SELECT i, typeof(i) FROM ${T} WHERE tag = 'big' ORDER BY id`);
    const got = sel.rows.map((r) => r[0]);
    check("bigint_roundtrip", got.length === big.length && got.every((v, k) => typeof v === "bigint" && v === big[k]));
    check("bigint_stored_as_integer", sel.rows.every((r) => r[1] === "integer"));
    const expr = await dbBig.execute("SELECT 9223372036854775807 AS a, -9223372036854775807 - 1 AS b");
    check("bigint_from_sql", expr.rows[0][0] === 9223372036854775807n && expr.rows[0][1] === -9223372036854775808n);
    return { select: jsonResultSet(sel), expr: jsonResultSet(expr) };
  });

  await step("floats", async () => {
    const vals = [0.1, -2.5e-300, 1.7976931348623157e308, 3.0, -0.0];
    for (const v of vals) {
      await db.execute({ sql: `INSERT INTO ${T} (tag, x) VALUES ('flt', ?)`, args: [v] });
    }
    const sel = await db.execute(`SELECT x, typeof(x) FROM ${T} WHERE tag = 'flt' ORDER BY id`);
    const got = sel.rows.map((r) => r[0]);
    // JS numbers always travel as {"type":"float"}: 3.0 arrives as REAL, not INTEGER.
    check("floats_roundtrip", got.length === vals.length && got.every((v, k) => v === vals[k]));
    check("js_number_sent_as_real", sel.rows[3][1] === "real");
    const expr = await db.execute("SELECT 0.5 * 3, typeof(0.5 * 3), 1e300 * 1e-300");
    return { select: jsonResultSet(sel), expr: jsonResultSet(expr) };
  });

  await step("batch_write", async () => {
    const res = await db.batch(
      [
        { sql: `INSERT INTO ${T} (tag, i) VALUES (?, ?)`, args: ["batch", 1] },
        { sql: `INSERT INTO ${T} (tag, i) VALUES (?, ?)`, args: ["batch", 2] },
        [`INSERT INTO ${T} (tag, i) VALUES (?, ?)`, ["batch", 3]],
        `SELECT count(*), sum(i) FROM ${T} WHERE tag = 'batch'`,
      ],
      "write",
    );
    check("batch_results_count", res.length === 4);
    check("batch_sees_own_writes", res[3].rows[0][0] === 3 && res[3].rows[0][1] === 6);
    check("batch_committed", (await count("tag = 'batch'")) === 3);
    return { results: res.map(jsonResultSet) };
  });

  await step("batch_atomic_failure", async () => {
    let err = null;
    try {
      await db.batch(
        [
          { sql: `INSERT INTO ${T} (tag, i) VALUES ('atomic', 1)`, args: [] },
          { sql: `INSERT INTO ${T} (tag, i) VALUES ('atomic', 2)`, args: [] },
          { sql: `INSERT INTO no_such_table_${T} VALUES (1)`, args: [] },
          { sql: `INSERT INTO ${T} (tag, i) VALUES ('atomic', 4)`, args: [] },
        ],
        "write",
      );
    } catch (e) {
      err = jsonError(e);
    }
    const left = await count("tag = 'atomic'");
    check("batch_failure_raised", err !== null);
    check("batch_failure_index", err !== null && err.statement_index === 2);
    check("batch_failure_nothing_committed", left === 0);
    // the connection is not left inside a transaction: a later write still commits
    await db.execute(`INSERT INTO ${T} (tag) VALUES ('after_atomic')`);
    check("autocommit_after_failed_batch", (await count("tag = 'after_atomic'")) === 1);
    return { error: err, rows_left: left };
  });

  await step("transaction_commit", async () => {
    const tx = await db.transaction("write");
    let inside;
    try {
      await tx.execute({ sql: `INSERT INTO ${T} (tag, i) VALUES ('tx_commit', ?)`, args: [1] });
      await tx.batch([
        { sql: `INSERT INTO ${T} (tag, i) VALUES ('tx_commit', ?)`, args: [2] },
        { sql: `UPDATE ${T} SET i = i * 10 WHERE tag = 'tx_commit'`, args: [] },
      ]);
      inside = await tx.execute(`SELECT sum(i) FROM ${T} WHERE tag = 'tx_commit'`);
      await tx.commit();
    } finally {
      tx.close();
    }
    check("tx_sees_own_writes", inside.rows[0][0] === 30);
    check("tx_commit_visible", (await count("tag = 'tx_commit'")) === 2);
    check("tx_closed_after_commit", tx.closed === true);
    return { inside: jsonResultSet(inside) };
  });

  await step("transaction_rollback", async () => {
    const tx = await db.transaction("write");
    let inside;
    try {
      await tx.execute(`INSERT INTO ${T} (tag, i) VALUES ('tx_rollback', 1)`);
      inside = await tx.execute(`SELECT count(*) FROM ${T} WHERE tag = 'tx_rollback'`);
      await tx.rollback();
    } finally {
      tx.close();
    }
    check("tx_rollback_saw_row_inside", inside.rows[0][0] === 1);
    check("tx_rollback_discarded", (await count("tag = 'tx_rollback'")) === 0);
    // a statement that fails inside a transaction does not end it
    const tx2 = await db.transaction("write");
    let midErr = null;
    try {
      await tx2.execute(`INSERT INTO ${T} (tag) VALUES ('tx_rollback2')`);
      try {
        await tx2.execute("SELECT * FROM no_such_table_at_all");
      } catch (e) {
        midErr = jsonError(e);
      }
      await tx2.execute(`INSERT INTO ${T} (tag) VALUES ('tx_rollback2')`);
      await tx2.rollback();
    } finally {
      tx2.close();
    }
    check("tx_error_inside_raised", midErr !== null);
    check("tx_rollback_after_error_discarded", (await count("tag = 'tx_rollback2'")) === 0);
    return { inside: jsonResultSet(inside), error_inside: midErr };
  });

  await step("execute_multiple", async () => {
    // executeMultiple() sends one "sequence" request (several statements, no args)
    await db.executeMultiple(
      `INSERT INTO ${T} (tag, i) VALUES ('multi', 1); INSERT INTO ${T} (tag, i) VALUES ('multi', 2);`,
    );
    check("execute_multiple_applied", (await count("tag = 'multi'")) === 2);
    return {};
  });

  await step("read_mode", async () => {
    // "read" mode sends "BEGIN TRANSACTION READONLY". libSQL makes that a
    // read-only transaction; plain SQLite reads READONLY as a transaction name
    // and opens an ordinary deferred one (writes allowed). Observations only.
    const res = {};
    try {
      const rs = await db.batch([`SELECT count(*) FROM ${T}`], "read");
      res.batch_read = { ok: true, rows: jsonResultSet(rs[0]).rows };
    } catch (e) {
      res.batch_read = { ok: false, error: jsonError(e) };
    }
    try {
      const tx = await db.transaction("read");
      try {
        const rs = await tx.execute(`SELECT count(*) FROM ${T}`);
        let writeErr = null;
        try {
          await tx.execute(`INSERT INTO ${T} (tag) VALUES ('read_tx_write')`);
        } catch (e) {
          writeErr = jsonError(e);
        }
        await tx.rollback();
        res.transaction_read = { ok: true, rows: jsonResultSet(rs).rows, write_error: writeErr };
      } finally {
        tx.close();
      }
    } catch (e) {
      res.transaction_read = { ok: false, error: jsonError(e) };
    }
    out.observations.read_batch_supported = res.batch_read.ok;
    out.observations.read_transaction_supported = res.transaction_read.ok;
    out.observations.read_transaction_rejects_writes =
      res.transaction_read.ok && res.transaction_read.write_error !== null;
    return res;
  });

  await step("cleanup", async () => {
    await db.execute(`DROP TABLE IF EXISTS ${T}`);
    return {};
  });

  db.close();
  dbBig.close();

  // Anything the client sent, in short: endpoints and request types.
  const endpoints = [...new Set(wire.map((w) => `${w.method} ${w.path}`))];
  const requestTypes = [...new Set(wire.flatMap((w) => (w.requests ?? []).map((r) => r.type)))];
  out.summary = {
    endpoints,
    request_types: requestTypes,
    http_requests: wire.length,
    sends_close: requestTypes.includes("close"),
    uses_batons: wire.some((w) => w.baton_field === "string"),
    uses_store_sql: requestTypes.includes("store_sql"),
    uses_cursor: wire.some((w) => w.path.endsWith("/cursor")),
    uses_sequence: requestTypes.includes("sequence"),
  };
  const failedChecks = Object.entries(out.checks).filter(([, v]) => !v).map(([k]) => k);
  out.failed_checks = failedChecks;
  out.ok = out.unexpected_errors.length === 0 && failedChecks.length === 0;
  process.stdout.write(JSON.stringify(out) + "\n");
  process.exitCode = out.ok ? 0 : 1;
}

// A server that never answers must not hang the test run.
const timeoutMs = Number(process.env.PROBE_TIMEOUT_MS || 60000);
setTimeout(() => {
  process.stdout.write(
    JSON.stringify({ probe: "libsql-client-js", ok: false, fatal: { name: "Timeout", message: `probe exceeded ${timeoutMs} ms` } }) + "\n",
  );
  process.exit(1);
}, timeoutMs).unref();

main().catch((e) => {
  process.stdout.write(JSON.stringify({ probe: "libsql-client-js", ok: false, fatal: jsonError(e) }) + "\n");
  process.exitCode = 1;
});
