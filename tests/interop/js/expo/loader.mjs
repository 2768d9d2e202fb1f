// Node ESM loader hooks that give a drizzle-kit Expo export the module semantics the
// app's bundler gives it (Metro + babel-plugin-inline-import):
//   - `import x from './NNNN_tag.sql'`   -> x is the file's text;
//   - `import journal from './meta/_journal.json'` (no import attribute) -> the parsed JSON;
//   - a `.js` file outside node_modules is an ES module, whatever package.json says.
// Registered by register.mjs: `node --import ./expo/register.mjs script.mjs`.
import { readFile } from "node:fs/promises";

const ours = (url) => url.startsWith("file:") && !url.includes("/node_modules/");

export async function load(url, context, nextLoad) {
  if (!ours(url)) {
    return nextLoad(url, context);
  }
  const path = new URL(url).pathname;
  if (path.endsWith(".sql")) {
    const text = await readFile(new URL(url), "utf8");
    return { format: "module", source: `export default ${JSON.stringify(text)};\n`, shortCircuit: true };
  }
  if (path.endsWith(".json") && context.importAttributes?.type !== "json") {
    const text = await readFile(new URL(url), "utf8");
    JSON.parse(text); // a broken journal fails here, with the file named by Node
    return { format: "module", source: `export default ${text};\n`, shortCircuit: true };
  }
  if (path.endsWith(".js")) {
    const source = await readFile(new URL(url), "utf8");
    return { format: "module", source, shortCircuit: true };
  }
  return nextLoad(url, context);
}
