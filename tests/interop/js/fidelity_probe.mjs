#!/usr/bin/env node
// Fidelity probe: runs ONE scenario through the official npm `@libsql/client` and prints
// ONE JSON object of what the client observed (results, and errors as the client exposes
// them). It judges nothing: tests/interop/test_fidelity.py compares the object with what
// Turso's server (sqld) answers.
//
// Usage:
//   node fidelity_probe.mjs SCENARIO URL [--token TOKEN] [--dir DIR]
//
// URL: http://127.0.0.1:PORT/db/NAME/ (trailing slash), ws://127.0.0.1:PORT/db/NAME, or
// http://127.0.0.1:PORT for a server of one file. DIR (scenario "attach"): where the
// refused ATTACH and VACUUM INTO would create their files.
//
// Every scenario works in a fresh database (it creates its tables without IF NOT EXISTS).
// Exit status: 0 when the scenario ran to its end (whatever it observed), 1 when something
// failed that the scenario did not expect to fail (the JSON then has "unexpected"),
// 2 on bad usage. PROBE_TIMEOUT_MS (default 60000) bounds the whole run.

import { createClient, LibsqlError } from "@libsql/client";

const TIMEOUT_MS = Number(process.env.PROBE_TIMEOUT_MS || 60000);

// An error as the application sees it. extendedCode and rawCode are rendered as null
// when the client leaves them undefined.
function describeError(e) {
  if (!(e instanceof Error)) return { thrown: String(e) };
  return {
    name: e.name,
    libsql_error: e instanceof LibsqlError,
    code: e.code ?? null,
    extendedCode: e.extendedCode ?? null,
    rawCode: e.rawCode ?? null,
    message: e.message,
  };
}

// {ok: true, value} or {ok: false, error}: a step that may fail, recorded either way.
async function attempt(fn) {
  try {
    return { ok: true, value: await fn() };
  } catch (e) {
    return { ok: false, error: describeError(e) };
  }
}

function plain(v) {
  if (typeof v === "bigint") return v.toString();
  if (v instanceof ArrayBuffer) return Buffer.from(v).toString("hex");
  return v;
}

function rowsOf(rs) {
  return rs.rows.map((row) => Array.from(row, plain));
}

async function values(client, table = "t") {
  return rowsOf(await client.execute(`SELECT v FROM ${table} ORDER BY rowid`)).map((r) => r[0]);
}

const SCENARIOS = {
  // 1. rowsAffected of INSERT ... SELECT under a WITH clause, and of several rows.
  async rows_affected(client) {
    await client.execute("CREATE TABLE t (v INTEGER)");
    const one = await client.execute("WITH x AS (SELECT 1 AS v) INSERT INTO t SELECT v FROM x");
    const three = await client.execute(
      "WITH x(v) AS (VALUES (2), (3), (4)) INSERT INTO t SELECT v FROM x",
    );
    const two = await client.execute("INSERT INTO t VALUES (5), (6)");
    const [batched] = await client.batch(
      ["WITH x(v) AS (VALUES (7), (8)) INSERT INTO t SELECT v FROM x"],
      "write",
    );
    const tx = await client.transaction("write");
    const inTransaction = await tx.execute(
      "WITH x(v) AS (VALUES (9), (10), (11), (12)) INSERT INTO t SELECT v FROM x",
    );
    await tx.commit();
    return {
      cte_one: one.rowsAffected,
      cte_three: three.rowsAffected,
      values_two: two.rowsAffected,
      batch_cte_two: batched.rowsAffected,
      transaction_cte_four: inTransaction.rowsAffected,
      values: await values(client),
    };
  },

  // 2. A named parameter in the SQL with no value among the arguments.
  async missing_named_arg(client) {
    await client.execute("CREATE TABLE t (a, b)");
    const execute = await attempt(() =>
      client.execute({ sql: "INSERT INTO t VALUES (:a, :b)", args: { a: 1 } }),
    );
    const prefixed = await attempt(() =>
      client.execute({ sql: "INSERT INTO t VALUES (@a, $b)", args: { "@a": 1 } }),
    );
    const batch = await attempt(() =>
      client.batch([{ sql: "INSERT INTO t VALUES (:a, :b)", args: { b: 2 } }], "write"),
    );
    const rows = rowsOf(await client.execute("SELECT a, b FROM t"));
    return { execute, prefixed, batch, rows };
  },

  // 3. Constraint violations, each on its own.
  async constraints(client) {
    await client.batch(
      [
        "CREATE TABLE parent (id INTEGER PRIMARY KEY)",
        "CREATE TABLE t (id INTEGER PRIMARY KEY, u TEXT UNIQUE, n TEXT NOT NULL," +
          " c INTEGER CHECK (c > 0), p INTEGER REFERENCES parent (id))",
        "INSERT INTO parent VALUES (1)",
        "INSERT INTO t VALUES (1, 'x', 'n', 1, 1)",
      ],
      "write",
    );
    const primary_key = await attempt(() =>
      client.execute("INSERT INTO t VALUES (1, 'y', 'n', 1, 1)"),
    );
    const unique = await attempt(() => client.execute("INSERT INTO t VALUES (2, 'x', 'n', 1, 1)"));
    const not_null = await attempt(() =>
      client.execute("INSERT INTO t VALUES (3, 'z', NULL, 1, 1)"),
    );
    const check = await attempt(() => client.execute("INSERT INTO t VALUES (4, 'w', 'n', 0, 1)"));
    // One stream: the pragma is in force for the INSERT whatever the server's default.
    const foreign_key = await attempt(() =>
      client.executeMultiple(
        "PRAGMA foreign_keys = ON; INSERT INTO t VALUES (5, 'v', 'n', 1, 99);",
      ),
    );
    const in_batch = await attempt(() =>
      client.batch(["INSERT INTO t VALUES (6, 'x', 'n', 1, 1)"], "write"),
    );
    const count = rowsOf(await client.execute("SELECT count(*) FROM t"))[0][0];
    return { primary_key, unique, not_null, check, foreign_key, in_batch, count };
  },

  // 4. Declared column types of a SELECT, and of an expression column.
  async decltypes(client) {
    await client.execute(
      "CREATE TABLE t (a INTEGER, b TEXT, c REAL, d BLOB, e NUMERIC, f)",
    );
    await client.execute("INSERT INTO t VALUES (1, 'b', 1.5, x'00', 2, 'f')");
    const sql = "SELECT a, b, c, d, e, f, a + 1 AS g FROM t";
    const rs = await client.execute(sql);
    const tx = await client.transaction("read");
    const inTransaction = await tx.execute(sql);
    await tx.rollback();
    return {
      columns: rs.columns,
      columnTypes: rs.columnTypes,
      transaction_columnTypes: inTransaction.columnTypes,
    };
  },

  // 5. Writes with a read-only token, including after turning query_only off.
  async read_only(client) {
    const read = await attempt(async () => (await values(client)).length);
    const insert = await attempt(() => client.execute("INSERT INTO t VALUES (100)"));
    const pragma = await attempt(() => client.execute("PRAGMA query_only = OFF"));
    const batch = await attempt(() =>
      client.batch(["PRAGMA query_only = OFF", "INSERT INTO t VALUES (101)"], "deferred"),
    );
    const sequence = await attempt(() =>
      client.executeMultiple("PRAGMA query_only = OFF; INSERT INTO t VALUES (102);"),
    );
    const transaction = await attempt(async () => {
      const tx = await client.transaction("deferred");
      try {
        await attempt(() => tx.execute("PRAGMA query_only = OFF"));
        await tx.execute("INSERT INTO t VALUES (103)");
        await tx.commit();
      } finally {
        tx.close();
      }
    });
    const ddl = await attempt(() => client.execute("CREATE TABLE u (v)"));
    return {
      read,
      insert,
      pragma,
      batch,
      sequence,
      transaction,
      ddl,
      values: await values(client),
    };
  },

  // 6. ATTACH of another file and VACUUM INTO a new one.
  async attach(client, opts) {
    await client.execute("CREATE TABLE t (v)");
    await client.execute("INSERT INTO t VALUES (1)");
    const dir = opts.dir;
    return {
      attach: await attempt(() => client.execute(`ATTACH DATABASE '${dir}/attached.db' AS other`)),
      attach_in_sequence: await attempt(() =>
        client.executeMultiple(`ATTACH '${dir}/sequenced.db' AS other; CREATE TABLE other.x (v);`),
      ),
      attach_memory: await attempt(() => client.execute("ATTACH ':memory:' AS scratch")),
      vacuum_into: await attempt(() => client.execute(`VACUUM INTO '${dir}/vacuumed.db'`)),
      vacuum_into_relative: await attempt(() => client.execute("VACUUM INTO 'relative.db'")),
      values: await values(client),
    };
  },

  // 7. Everything an app does, against one file served at the root.
  async root(client) {
    const create = await client.execute("CREATE TABLE t (v TEXT)");
    const insert = await client.execute({ sql: "INSERT INTO t VALUES (?)", args: ["execute"] });
    await client.batch(
      [
        { sql: "INSERT INTO t VALUES (?)", args: ["batch 1"] },
        { sql: "INSERT INTO t VALUES (?)", args: ["batch 2"] },
      ],
      "write",
    );
    const committed = await client.transaction("write");
    await committed.execute("INSERT INTO t VALUES ('committed')");
    await committed.commit();
    const rolledBack = await client.transaction("write");
    await rolledBack.execute("INSERT INTO t VALUES ('rolled back')");
    const seen = await values(rolledBack);
    await rolledBack.rollback();
    return {
      create_rows_affected: create.rowsAffected,
      insert_rows_affected: insert.rowsAffected,
      seen_before_rollback: seen,
      values: await values(client),
    };
  },

  // 8, 9. A transaction held open past the server's limit; another client then writes.
  async transaction_timeout(client, opts) {
    await client.execute("CREATE TABLE t (v TEXT)");
    const tx = await client.transaction("write");
    await tx.execute("INSERT INTO t VALUES ('held')");
    // The other client's write waits on the lock the transaction holds (SQLite's busy
    // timeout) until the server rolls the transaction back: no sleeping here.
    const other = createClient({ url: opts.url, authToken: opts.token });
    const otherWrite = await attempt(async () =>
      (await other.execute("INSERT INTO t VALUES ('other')")).rowsAffected,
    );
    const next = await attempt(() => tx.execute("INSERT INTO t VALUES ('after')"));
    const commit = await attempt(() => tx.commit());
    tx.close();
    const after = await values(other);
    other.close();
    return { other_write: otherWrite, next_statement: next, commit, values: after };
  },
};

function parseArgs(argv) {
  const [scenario, url, ...rest] = argv;
  const opts = { scenario, url, token: undefined, dir: undefined };
  for (let i = 0; i < rest.length; i++) {
    if (rest[i] === "--token") opts.token = rest[++i];
    else if (rest[i] === "--dir") opts.dir = rest[++i];
    else opts.bad = rest[i];
  }
  if (!(scenario in SCENARIOS) || !url || opts.bad !== undefined) {
    process.stderr.write(
      "usage: node fidelity_probe.mjs SCENARIO URL [--token TOKEN] [--dir DIR]\n" +
        `scenarios: ${Object.keys(SCENARIOS).join(", ")}\n`,
    );
    process.exit(2);
  }
  return opts;
}

async function main() {
  const opts = parseArgs(process.argv.slice(2));
  const guard = setTimeout(() => {
    process.stdout.write(JSON.stringify({ unexpected: `timed out after ${TIMEOUT_MS} ms` }) + "\n");
    process.exit(1);
  }, TIMEOUT_MS);
  guard.unref();
  const client = createClient({ url: opts.url, authToken: opts.token });
  let report;
  let status = 0;
  try {
    report = await SCENARIOS[opts.scenario](client, opts);
  } catch (e) {
    report = { unexpected: describeError(e), stack: e instanceof Error ? e.stack : undefined };
    status = 1;
  } finally {
    client.close();
  }
  process.stdout.write(JSON.stringify(report) + "\n");
  process.exitCode = status;
}

await main();
