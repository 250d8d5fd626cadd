/**
 * The package as a seller gets it: `npm pack` (which builds dist/), the tarball installed alone into a copy of
 * examples/hono-worker (`--no-save --offline`; every other dependency resolves from this repository's
 * node_modules), the example type-checked against the packed types, and its vitest-pool-workers suite run
 * (paying with the testing kit). A broken `exports` map or a file missing from the package fails here.
 */
import { type SpawnOptions, spawn } from 'node:child_process'
import { cpSync, existsSync, lstatSync, mkdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs'
import { dirname, join, relative, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'

const root = resolve(dirname(fileURLToPath(import.meta.url)), '../..')
// Inside the repository, so that Node, TypeScript and vite find every other dependency in its node_modules.
const work = join(root, '.tmp', `package-${process.pid}-${Date.now()}`)
const example = join(work, 'hono-worker')
const manifest = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as {
  exports: Record<string, string | { types: string; default: string }>
  dependencies: Record<string, string>
}

/** Runs a command; resolves to its exit code and output (never rejects on a failing exit). */
function run(command: string, args: string[], options: SpawnOptions & { cwd: string }): Promise<{ code: number; output: string }> {
  return new Promise((done, fail) => {
    const child = spawn(command, args, { ...options, stdio: ['ignore', 'pipe', 'pipe'] })
    let output = ''
    child.stdout?.on('data', (chunk) => (output += chunk))
    child.stderr?.on('data', (chunk) => (output += chunk))
    child.once('error', fail)
    child.once('close', (code) => done({ code: code ?? 1, output }))
  })
}

// The example's own run must start its own services: drop the ports and vitest state of this run.
const childEnv = Object.fromEntries(Object.entries(process.env).filter(([key]) => !key.startsWith('MPP_TEST_') && !key.startsWith('VITEST') && key !== 'TEST')) as NodeJS.ProcessEnv

let tarball: string
let packed: string[]

describe('the packed package in a seller project (examples/hono-worker)', { timeout: 150_000 }, () => {
  beforeAll(async () => {
    mkdirSync(work, { recursive: true })
    const pack = await run('npm', ['pack', '--json', '--pack-destination', work], { cwd: root })
    expect(pack.code, pack.output).toBe(0)
    const [info] = JSON.parse(pack.output.slice(pack.output.indexOf('[\n'))) as { filename: string; files: { path: string }[] }[]
    tarball = join(work, info!.filename)
    packed = info!.files.map((file) => file.path)
  }, 150_000)

  afterAll(() => {
    rmSync(work, { recursive: true, force: true })
  })

  it('holds only what a seller needs, and every file the exports map names', () => {
    const extra = packed.filter((path) => !path.startsWith('dist/') && !['package.json', 'README.md', 'CHANGELOG.md'].includes(path))
    expect(extra).toEqual([])
    expect(packed.filter((path) => /(^|\/)(test|bench|demo|scripts)\//.test(path) || path.endsWith('.ts') && !path.endsWith('.d.ts'))).toEqual([])
    for (const [entry, target] of Object.entries(manifest.exports)) {
      if (typeof target === 'string') continue
      expect(packed, `${entry} types`).toContain(target.types.replace(/^\.\//, ''))
      expect(packed, `${entry} code`).toContain(target.default.replace(/^\.\//, ''))
    }
  })

  it('installs alone, offline, and the example type-checks against the packed types and passes its suite', async () => {
    cpSync(join(root, 'examples/hono-worker'), example, { recursive: true, filter: (path) => !/(^|\/)(node_modules|\.wrangler)$/.test(path) })
    // npm must not resolve anything but the tarball: the example's other dependencies and the package's own are
    // links into this repository's node_modules (what a seller's install would put there).
    const own = JSON.parse(readFileSync(join(example, 'package.json'), 'utf8')) as Record<string, Record<string, string> | undefined>
    const names = new Set([...Object.keys(own.dependencies ?? {}), ...Object.keys(own.devDependencies ?? {}), ...Object.keys(manifest.dependencies)])
    names.delete('mpp-edge')
    for (const name of names) {
      const link = join(example, 'node_modules', name)
      mkdirSync(dirname(link), { recursive: true })
      symlinkSync(relative(dirname(link), join(root, 'node_modules', name)), link)
    }
    const install = await run('npm', ['install', '--no-save', '--offline', '--no-package-lock', '--legacy-peer-deps', '--ignore-scripts', '--no-audit', '--no-fund', tarball], { cwd: example })
    expect(install.code, install.output).toBe(0)
    const installed = join(example, 'node_modules', 'mpp-edge')
    expect(lstatSync(installed).isSymbolicLink()).toBe(false)
    expect(existsSync(join(installed, 'src'))).toBe(false)
    // Nothing else came from npm's cache (a fresh machine has none): every other dependency is still the link.
    expect([...names].filter((name) => !lstatSync(join(example, 'node_modules', name)).isSymbolicLink())).toEqual([])

    // Every entry of the exports map resolves to its types in the seller's project (not only the ones the example uses).
    const entries = Object.keys(manifest.exports).filter((entry) => entry !== './package.json').map((entry) => `mpp-edge${entry.slice(1)}`)
    writeFileSync(join(example, 'test', 'entries.ts'), entries.map((name, i) => `import * as entry${i} from '${name}'\nvoid entry${i}\n`).join(''))
    const typecheck = await run(process.execPath, [join(root, 'node_modules/typescript/bin/tsc'), '--noEmit', '-p', example], { cwd: example })
    expect(typecheck.code, typecheck.output).toBe(0)

    const report = join(work, 'example-results.json')
    const suite = await run(process.execPath, [join(root, 'node_modules/vitest/vitest.mjs'), 'run', '--reporter=json', `--outputFile=${report}`], { cwd: example, env: childEnv })
    expect(suite.code, suite.output.slice(-4000)).toBe(0)
    const results = JSON.parse(readFileSync(report, 'utf8')) as { numPassedTests: number; numFailedTests: number }
    expect(results).toMatchObject({ numPassedTests: 6, numFailedTests: 0 })
  }, 150_000)
})
