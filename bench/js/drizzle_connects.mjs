// The peer of bench.connect: what a drizzle app does per request to stay migrated.
//
//   node bench/js/drizzle_connects.mjs URL MIGRATIONS_DIR COUNT CONCURRENCY
//
// COUNT times, at most CONCURRENCY at once: a new @libsql/client, drizzle's libsql
// migrator over it (create the version table, read the newest row, run the pending
// batch), close. Prints one JSON line: {"count", "seconds", "median_ms"}.
// The packages come from tests/interop/js (installed by .ci/install-interop).
import { createRequire } from "node:module";
import { fileURLToPath, pathToFileURL } from "node:url";
import path from "node:path";

const here = path.dirname(fileURLToPath(import.meta.url));
const require = createRequire(path.join(here, "../../tests/interop/js/package.json"));
const load = async (name) => import(pathToFileURL(require.resolve(name)).href);
const { createClient } = await load("@libsql/client");
const { drizzle } = await load("drizzle-orm/libsql");
const { migrate } = await load("drizzle-orm/libsql/migrator");

const [url, migrationsFolder, countText, concurrencyText] = process.argv.slice(2);
const count = Number(countText);
const concurrency = Number(concurrencyText);

async function once() {
  const client = createClient({ url });
  try {
    await migrate(drizzle(client), { migrationsFolder });
  } finally {
    client.close();
  }
}

const timings = [];
let next = 0;
async function worker() {
  while (next < count) {
    next += 1;
    const started = performance.now();
    await once();
    timings.push(performance.now() - started);
  }
}

const started = performance.now();
await Promise.all(Array.from({ length: concurrency }, worker));
const seconds = (performance.now() - started) / 1000;
timings.sort((a, b) => a - b);
console.log(JSON.stringify({ count, seconds, median_ms: timings[Math.floor(timings.length / 2)] }));
