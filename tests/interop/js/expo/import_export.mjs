// Imports OUT_DIR/migrations.js the way an Expo app does and prints, as one JSON
// object, what drizzle's Expo migrator would receive: the journal and, per key, the SQL.
//   node --import ./expo/register.mjs ./expo/import_export.mjs OUT_DIR
import { resolve } from "node:path";
import { pathToFileURL } from "node:url";

const outDir = process.argv[2];
if (!outDir) {
  console.error("usage: import_export.mjs OUT_DIR");
  process.exit(2);
}
const exported = (await import(pathToFileURL(resolve(outDir, "migrations.js")).href)).default;
const migrations = exported.migrations;
console.log(
  JSON.stringify({
    topLevelKeys: Object.keys(exported),
    keys: Object.keys(migrations),
    types: Object.fromEntries(Object.entries(migrations).map(([k, v]) => [k, typeof v])),
    journal: exported.journal,
    migrations,
  }),
);
