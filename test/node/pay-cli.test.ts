/**
 * `npm run pay` as a person types it: a URL without its scheme gets the URL it meant instead of "Invalid URL";
 * and the bundle it runs from (scripts/bundled.mjs) follows every change to the files it holds.
 */
import { spawn } from 'node:child_process'
import { mkdirSync, rmSync, utimesSync, writeFileSync } from 'node:fs'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { afterAll, describe, expect, it } from 'vitest'

const root = resolve(dirname(fileURLToPath(import.meta.url)), '../..')

/** Runs a command to its end: exit code, stdout and stderr. */
function run(command: string, args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((done) => {
    const child = spawn(command, args, { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] })
    let stdout = ''
    let stderr = ''
    child.stdout.on('data', (chunk) => (stdout += chunk))
    child.stderr.on('data', (chunk) => (stderr += chunk))
    child.on('exit', (code) => done({ code, stdout, stderr }))
  })
}

describe('npm run pay', () => {
  it('behavior: a URL without its scheme is refused with the whole URL it meant', async () => {
    const result = await run('npm', ['run', '-s', 'pay', '--', '127.0.0.1:8787/v1/reports/daily'])
    expect(result.stderr).toContain('npm run pay: 127.0.0.1:8787/v1/reports/daily has no scheme: give the whole URL, as in http://127.0.0.1:8787/v1/reports/daily')
    expect(result.stderr).not.toContain('Invalid URL')
    expect(result.code).toBe(1)
  })

  it('behavior: another scheme is refused by name', async () => {
    const result = await run('npm', ['run', '-s', 'pay', '--', 'ftp://127.0.0.1/x'])
    expect(result.stderr).toContain('ftp://127.0.0.1/x is not an http or https URL')
    expect(result.code).toBe(1)
  })
})

describe('scripts/bundled.mjs', () => {
  const name = `bundled-${process.pid}`
  const dir = join(root, '.tmp', name)
  const cache = join(root, 'node_modules', '.cache', 'mpp-edge')
  afterAll(() => {
    rmSync(dir, { recursive: true, force: true })
    rmSync(join(cache, `${name}.mjs`), { force: true })
    rmSync(join(cache, `${name}.inputs.json`), { force: true })
  })

  it('behavior: runs a TypeScript script with its arguments, and rebuilds when a file it imports changed', async () => {
    mkdirSync(dir, { recursive: true })
    const script = join(dir, `${name}.ts`)
    writeFileSync(script, "import { word } from './word.js'\nconst here: string = new URL('.', import.meta.url).pathname\nconsole.log(word, process.argv.slice(2).join(' '), here)\n")
    writeFileSync(join(dir, 'word.ts'), "export const word: string = 'first'\n")
    const first = await run(process.execPath, ['scripts/bundled.mjs', script, 'a', 'b'])
    expect(first.stderr).toBe('')
    // import.meta.url still names the script's own file, not the bundle's.
    expect(first.stdout).toBe(`first a b ${dir}/\n`)
    writeFileSync(join(dir, 'word.ts'), "export const word: string = 'second'\n")
    // A later modification time even on a file system with coarse timestamps.
    utimesSync(join(dir, 'word.ts'), new Date(), new Date(Date.now() + 2_000))
    const second = await run(process.execPath, ['scripts/bundled.mjs', script])
    expect(second.stdout).toBe(`second  ${dir}/\n`)
  })
})
