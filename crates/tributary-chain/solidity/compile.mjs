// Compiles contracts/*.sol with the pinned solc-js into ../artifacts/<Contract>.json (Foundry's
// artifact shape: abi, bytecode.object, deployedBytecode.object, plus the storage layout), which
// tributary-chain's `alloy::sol!` bindings read. Run by `cargo xtask chain-artifacts`
// (and by `cargo xtask test`, into a temporary folder, to check the committed ones are current); the output
// is committed, so building the Rust crates needs neither Node nor solc.
import { readFileSync, readdirSync, writeFileSync, mkdirSync, renameSync } from "node:fs";
import { createRequire } from "node:module";
import path from "node:path";
import { fileURLToPath } from "node:url";

const here = path.dirname(fileURLToPath(import.meta.url));
const require = createRequire(import.meta.url);
const solc = require("solc");

const sources = {};
for (const file of readdirSync(path.join(here, "contracts")).sort()) {
  if (file.endsWith(".sol")) {
    sources[`contracts/${file}`] = { content: readFileSync(path.join(here, "contracts", file), "utf8") };
  }
}

const input = {
  language: "Solidity",
  sources,
  settings: {
    optimizer: { enabled: true, runs: 200 },
    evmVersion: "cancun",
    // No metadata hash in the bytecode: the artifacts stay byte-identical across machines.
    metadata: { bytecodeHash: "none" },
    outputSelection: { "*": { "*": ["abi", "evm.bytecode.object", "evm.deployedBytecode.object", "storageLayout"] } },
  },
};

function findImports(name) {
  try {
    return { contents: readFileSync(require.resolve(name), "utf8") };
  } catch (e) {
    return { error: `cannot import ${name}: ${e.message}` };
  }
}

const output = JSON.parse(solc.compile(JSON.stringify(input), { import: findImports }));
const errors = (output.errors || []).filter((e) => e.severity === "error");
for (const e of output.errors || []) console.error(e.formattedMessage);
if (errors.length) process.exit(1);

// An output folder may be given (the freshness check compiles into a temporary one).
const out = process.argv[2] ? path.resolve(process.argv[2]) : path.join(here, "..", "artifacts");
mkdirSync(out, { recursive: true });
for (const [source, contracts] of Object.entries(output.contracts)) {
  if (!source.startsWith("contracts/")) continue; // imported OpenZeppelin sources
  for (const [name, c] of Object.entries(contracts)) {
    const artifact = {
      contractName: name,
      sourceName: source,
      compiler: { solc: solc.version(), optimizerRuns: 200, evmVersion: "cancun" },
      abi: c.abi,
      bytecode: { object: `0x${c.evm.bytecode.object}` },
      deployedBytecode: { object: `0x${c.evm.deployedBytecode.object}` },
      storageLayout: c.storageLayout,
    };
    const file = path.join(out, `${name}.json`);
    writeFileSync(`${file}.partial`, JSON.stringify(artifact, null, 1) + "\n");
    renameSync(`${file}.partial`, file);
    console.log(`compiled ${source}:${name}`);
  }
}
