// Browser entry (wasm-bindgen's `web` output): call the default export once before anything else.
export * from "./types.js";

/** Fetches and instantiates the wasm (by default from beside this module). */
export default function init(
  moduleOrPath?: { module_or_path: RequestInfo | URL | Response | BufferSource | WebAssembly.Module },
): Promise<unknown>;
