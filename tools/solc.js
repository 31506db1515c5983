#!/usr/bin/env node
// A native-`solc` stand-in backed by solc-js (the official compiler built to WASM), so that
// ape-solidity (through py-solc-x) can compile offline. It answers the two calls ape makes:
//   solc --version
//   solc --standard-json [--base-path P] [--include-path P]... [--allow-paths P]  < input.json
// See ../shared/TOOLCHAIN.md for why: no native solc is reachable from this machine.
"use strict";
const fs = require("fs");
const path = require("path");

// Reached through a symlink in $SOLCX_BINARY_PATH: resolve to the repository's node_modules.
const root = path.dirname(path.dirname(fs.realpathSync(__filename)));
const solc = require(path.join(root, "node_modules", "solc"));

const args = process.argv.slice(2);

if (args.includes("--version")) {
  // py-solc-x parses the second line: "Version: X.Y.Z+commit.HASH..."
  process.stdout.write("solc, the solidity compiler commandline interface\n");
  process.stdout.write(`Version: ${solc.version()}\n`);
} else if (args.includes("--standard-json")) {
  const roots = [];
  for (let i = 0; i < args.length; i++) {
    if (args[i] === "--base-path" || args[i] === "--include-path") roots.push(args[++i]);
  }
  if (roots.length === 0) roots.push(process.cwd());
  const findImports = (p) => {
    for (const r of [...roots, ""]) {
      const full = path.resolve(r, p);
      if (fs.existsSync(full)) return { contents: fs.readFileSync(full, "utf8") };
    }
    return { error: `File not found: ${p}` };
  };
  const input = fs.readFileSync(0, "utf8");
  // NOTE: no process.exit() after writing: it truncates piped output at 64 KiB.
  process.stdout.write(solc.compile(input, { import: findImports }));
} else {
  process.stderr.write("solc.js shim: only --version and --standard-json are supported\n");
  process.exitCode = 2;
}
