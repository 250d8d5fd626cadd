// `node scripts/bundled.mjs <script.ts> [args…]`: runs one of this repository's TypeScript scripts as a single
// esbuild bundle kept in node_modules/.cache/mpp-edge/. Loaded through tsx, `npm run pay` spent about a second (and
// several on a busy machine) resolving viem's modules one by one through the loader; the bundle holds only what the
// script uses and loads as one file. It is rebuilt when a repository file in it changed or `npm ci` ran again.
import { mkdirSync, readFileSync, renameSync, statSync, writeFileSync } from 'node:fs'
import { basename, dirname, join, relative, resolve } from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..')
const [script, ...args] = process.argv.slice(2)
if (!script) {
  process.stderr.write('usage: node scripts/bundled.mjs <script.ts> [args…]\n')
  process.exit(2)
}
const entry = resolve(root, script)
const cache = join(root, 'node_modules', '.cache', 'mpp-edge')
const name = basename(entry).replace(/\.ts$/, '')
const bundle = join(cache, `${name}.mjs`)
const manifest = join(cache, `${name}.inputs.json`)
// npm ci and npm install rewrite this file: a changed dependency tree invalidates every bundle.
const installed = join(root, 'node_modules', '.package-lock.json')

/** The modification time of a file, or -1 when it is gone. */
function mtime(path) {
  try {
    return statSync(path).mtimeMs
  } catch {
    return -1
  }
}

function fresh() {
  try {
    const inputs = JSON.parse(readFileSync(manifest, 'utf8'))
    return Object.entries(inputs).every(([path, time]) => mtime(join(root, path)) === time) && mtime(bundle) > 0
  } catch {
    return false
  }
}

async function build() {
  const { build } = await import('esbuild')
  const result = await build({
    absWorkingDir: root,
    entryPoints: [entry],
    bundle: true,
    platform: 'node',
    format: 'esm',
    target: 'node20',
    write: false,
    metafile: true,
    logLevel: 'error',
    // Bundled CommonJS dependencies call require(); an ES module has none of its own.
    banner: { js: "import { createRequire as __createRequire } from 'node:module'; const require = __createRequire(import.meta.url);" },
    plugins: [
      {
        // import.meta.url keeps naming the module's own file (demo/state.ts finds the repository root with it).
        name: 'own-import-meta-url',
        setup(builder) {
          builder.onLoad({ filter: /\.ts$/ }, (file) => {
            if (file.path.includes('/node_modules/')) return undefined
            const source = readFileSync(file.path, 'utf8')
            return { contents: source.replaceAll('import.meta.url', JSON.stringify(pathToFileURL(file.path).href)), loader: 'ts' }
          })
        },
      },
    ],
  })
  const own = Object.keys(result.metafile.inputs).filter((path) => !path.startsWith('node_modules/'))
  const inputs = Object.fromEntries([...own, relative(root, installed)].map((path) => [path, mtime(join(root, path))]))
  mkdirSync(cache, { recursive: true })
  // Written aside and renamed: two runs building at once never see half a bundle.
  const temporary = `${bundle}.${process.pid}`
  writeFileSync(temporary, result.outputFiles[0].contents)
  renameSync(temporary, bundle)
  writeFileSync(manifest, JSON.stringify(inputs))
}

if (!fresh()) await build()
process.argv = [process.argv[0], entry, ...args]
await import(pathToFileURL(bundle).href)
