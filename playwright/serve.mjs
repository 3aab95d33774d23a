// A small static server for the smoke pages: `/pkg/*` from the wasm-bindgen output folder
// ($TRIBUTARY_SMOKE_PKG), `/fixtures/*` from tributary-model's test fixtures (small Hugging Face
// checkpoints with their transformers reference), `/models/*` from the folder of the default
// model file ($TRIBUTARY_MODEL_FILE, installed by `cargo xtask setup`), `/verifier/*` from the
// wallet package (pkg/), everything else from ./smoke. Loopback only.
//
//   node serve.mjs [--port N]     prints "serving http://127.0.0.1:N/" once it listens
import { createServer } from 'node:http';
import { readFile } from 'node:fs/promises';
import { dirname, extname, join, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = resolve(fileURLToPath(new URL('.', import.meta.url)));

const TYPES = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.wasm': 'application/wasm',
  '.json': 'application/json',
  '.css': 'text/css; charset=utf-8',
};

function smokeRoutes() {
  const pkg = process.env.TRIBUTARY_SMOKE_PKG;
  if (!pkg) throw new Error('TRIBUTARY_SMOKE_PKG is not set (cargo xtask builds the page and sets it)');
  return [
    { prefix: '/pkg/', dir: resolve(pkg) },
    { prefix: '/fixtures/', dir: join(here, '..', 'crates', 'tributary-model', 'tests', 'fixtures') },
    ...(process.env.TRIBUTARY_MODEL_FILE
      ? [{ prefix: '/models/', dir: resolve(dirname(process.env.TRIBUTARY_MODEL_FILE)) }]
      : []),
    // The wallet package: its web build and its test fixtures.
    { prefix: '/verifier/', dir: join(here, '..', 'pkg') },
    { prefix: '/', dir: join(here, 'smoke') },
  ];
}

/** Maps a URL path to a file inside one of the route folders, or null (never outside them). */
function locate(routes, urlPath) {
  let path;
  try {
    path = decodeURIComponent(urlPath.split('?')[0]);
  } catch {
    return null;
  }
  if (path.endsWith('/')) path += 'index.html';
  for (const { prefix, dir } of routes) {
    if (!path.startsWith(prefix)) continue;
    const file = resolve(dir, '.' + path.slice(prefix.length - 1));
    return file.startsWith(dir + sep) ? file : null;
  }
  return null;
}

/** Starts the server; resolves to { url, close, requests } where requests counts by path. */
export function startServer({ port = 0, routes = smokeRoutes() } = {}) {
  const requests = new Map();
  const server = createServer(async (req, res) => {
    requests.set(req.url, (requests.get(req.url) ?? 0) + 1);
    const file = locate(routes, req.url);
    if (!file) {
      res.writeHead(404).end('not found');
      return;
    }
    try {
      const body = await readFile(file);
      res.writeHead(200, {
        'content-type': TYPES[extname(file)] ?? 'application/octet-stream',
        'cache-control': 'no-store',
      });
      res.end(body);
    } catch {
      res.writeHead(404).end('not found');
    }
  });
  return new Promise((ok, fail) => {
    server.once('error', fail);
    server.listen(port, '127.0.0.1', () => {
      const { port: bound } = server.address();
      ok({
        url: `http://127.0.0.1:${bound}/`,
        requests,
        close: () => new Promise((done) => server.close(done)),
      });
    });
  });
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const at = process.argv.indexOf('--port');
  const port = at > 0 ? Number(process.argv[at + 1]) : 8080;
  startServer({ port }).then(
    ({ url }) => console.log(`serving ${url}`),
    (err) => {
      console.error(`serve.mjs: ${err.message}`);
      process.exit(1);
    },
  );
}
