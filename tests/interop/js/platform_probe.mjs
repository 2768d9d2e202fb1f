#!/usr/bin/env node
// Interop probe: drives Turso's official Platform API client (npm `@tursodatabase/api`)
// against a Platform API server (the local Turso of per_user_db.dev) and prints ONE
// JSON object on stdout describing what it observed.
//
// Usage:
//   node platform_probe.mjs API_URL ORG API_TOKEN [--name DB] [--group GROUP]
//   (or PROBE_API_URL / PROBE_ORG / PROBE_API_TOKEN / PROBE_NAME / PROBE_GROUP)
//
// API_URL is the server's base (http://127.0.0.1:PORT); the client is given
// API_URL + "/v1/". Steps: create the database, create it again (expects a 409), mint a
// token, list, get, run `select 1` through @libsql/client at "libsql://" + Hostname with
// that token (skipped when @libsql/client is not installed), delete, get again (404).
//
// Exit status: 0 when every step behaved as expected, 1 when some step did not,
// 2 on bad usage or when @tursodatabase/api cannot be loaded. The JSON object is printed
// in every case except usage errors.

function parseArgs(argv) {
  const opts = {
    apiUrl: process.env.PROBE_API_URL,
    org: process.env.PROBE_ORG,
    token: process.env.PROBE_API_TOKEN,
    name: process.env.PROBE_NAME || "platform-probe",
    group: process.env.PROBE_GROUP || "default",
  };
  const positional = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === "--name") opts.name = argv[++i];
    else if (a === "--group") opts.group = argv[++i];
    else if (a === "-h" || a === "--help") {
      process.stderr.write("usage: node platform_probe.mjs API_URL ORG API_TOKEN [--name DB] [--group G]\n");
      process.exit(2);
    } else positional.push(a);
  }
  [opts.apiUrl = opts.apiUrl, opts.org = opts.org, opts.token = opts.token] = positional;
  if (!opts.apiUrl || !opts.org || !opts.token) {
    process.stderr.write("platform_probe: API_URL, ORG and API_TOKEN are required\n");
    process.exit(2);
  }
  return opts;
}

function describeError(e) {
  return { name: e?.name ?? typeof e, message: String(e?.message ?? e), status: e?.status ?? null };
}

async function main() {
  const opts = parseArgs(process.argv.slice(2));
  const report = { api_url: opts.apiUrl, org: opts.org, name: opts.name, steps: {}, ok: true };
  let api;
  try {
    api = await import("@tursodatabase/api");
  } catch (e) {
    report.ok = false;
    report.error = `cannot load @tursodatabase/api: ${String(e)}`;
    process.stdout.write(JSON.stringify(report) + "\n");
    process.exit(2);
  }
  const turso = api.createClient({
    org: opts.org,
    token: opts.token,
    baseUrl: opts.apiUrl.replace(/\/+$/, "") + "/v1/",
  });

  async function step(name, fn, check) {
    try {
      const value = await fn();
      const problem = check ? check(value) : null;
      report.steps[name] = { ok: !problem, value, ...(problem ? { problem } : {}) };
      if (problem) report.ok = false;
      return value;
    } catch (e) {
      report.steps[name] = { ok: false, error: describeError(e) };
      report.ok = false;
      return undefined;
    }
  }

  async function expectFailure(name, fn, status) {
    try {
      const value = await fn();
      report.steps[name] = { ok: false, value, problem: `expected HTTP ${status}, got success` };
      report.ok = false;
    } catch (e) {
      const error = describeError(e);
      const ok = error.status === status;
      report.steps[name] = { ok, error, ...(ok ? {} : { problem: `expected HTTP ${status}` }) };
      if (!ok) report.ok = false;
    }
  }

  const created = await step(
    "create",
    () => turso.databases.create(opts.name, { group: opts.group }),
    (db) => (db?.name === opts.name && db.id && db.hostname ? null : "missing name/id/hostname"),
  );
  await expectFailure("create_again", () => turso.databases.create(opts.name, { group: opts.group }), 409);
  const token = await step(
    "create_token",
    () => turso.databases.createToken(opts.name, { expiration: "1d", authorization: "full-access" }),
    (t) => (typeof t?.jwt === "string" && t.jwt.split(".").length === 3 ? null : "no JWT"),
  );
  await step(
    "list",
    () => turso.databases.list({ group: opts.group }),
    (dbs) => (Array.isArray(dbs) && dbs.some((d) => d.name === opts.name) ? null : "database not listed"),
  );
  const got = await step(
    "get",
    () => turso.databases.get(opts.name),
    (db) => (db?.id === created?.id && db?.group === opts.group ? null : "id/group differ from create"),
  );

  const hostname = got?.hostname ?? created?.hostname;
  if (hostname && token?.jwt) {
    let libsql = null;
    try {
      libsql = await import("@libsql/client");
    } catch {
      report.steps.query = { ok: true, skipped: "@libsql/client not installed" };
    }
    if (libsql) {
      const url = "libsql://" + hostname;
      await step(
        "query",
        async () => {
          const client = libsql.createClient({ url, authToken: token.jwt });
          try {
            const rs = await client.execute("select 1 as one");
            return { url, one: Number(rs.rows[0].one) };
          } finally {
            client.close();
          }
        },
        (v) => (v.one === 1 ? null : "select 1 did not return 1"),
      );
    }
  }

  await step(
    "delete",
    () => turso.databases.delete(opts.name),
    (r) => (r?.database === opts.name ? null : "delete did not echo the name"),
  );
  await expectFailure("get_deleted", () => turso.databases.get(opts.name), 404);

  process.stdout.write(JSON.stringify(report) + "\n");
  process.exit(report.ok ? 0 : 1);
}

main().catch((e) => {
  process.stdout.write(JSON.stringify({ ok: false, error: describeError(e) }) + "\n");
  process.exit(1);
});
