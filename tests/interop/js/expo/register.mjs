// `node --import <this file>`: installs loader.mjs before the main module loads.
import { register } from "node:module";

register("./loader.mjs", import.meta.url);
