// Node.js entry (wasm-bindgen's ES module output for Node; the wasm is loaded on import).
export * from "./types.js";
