// Applies OUT_DIR/migrations.js to the SQLite file DB_PATH with drizzle's own Expo
// migrator (drizzle-orm/expo-sqlite/migrator), on a better-sqlite3 database instead of
// expo-sqlite, which only runs on a phone. The migrator turns { journal, migrations }
// into entries (statements split at the breakpoints, when as folderMillis, hash '')
// and hands them to db.dialect.migrate(entries, db.session): the dialect is the same
// SQLiteSyncDialect for both drivers, so only the driver underneath differs.
// Prints one JSON object: the __drizzle_migrations rows afterwards.
//   node --import ./expo/register.mjs ./expo/apply_export.mjs OUT_DIR DB_PATH
import { resolve } from "node:path";
import { pathToFileURL } from "node:url";

import Database from "better-sqlite3";
import { drizzle } from "drizzle-orm/better-sqlite3";
import { migrate } from "drizzle-orm/expo-sqlite/migrator";

const [outDir, dbPath] = process.argv.slice(2);
if (!outDir || !dbPath) {
  console.error("usage: apply_export.mjs OUT_DIR DB_PATH");
  process.exit(2);
}
const config = (await import(pathToFileURL(resolve(outDir, "migrations.js")).href)).default;
const sqlite = new Database(dbPath);
try {
  await migrate(drizzle({ client: sqlite }), config);
  const rows = sqlite
    .prepare("SELECT id, hash, created_at FROM __drizzle_migrations ORDER BY created_at")
    .all();
  console.log(JSON.stringify({ rows }));
} finally {
  sqlite.close();
}
