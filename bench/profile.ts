/**
 * CPU profiles of a bench worker's isolate around a load, through wrangler dev's inspector (the V8 sampling
 * profiler of the worker), summarised by source module and by function. `npm run bench` profiles the figures
 * that miss their target; `npm run bench:profile -- '<path>' …` profiles any load of the in-process bench worker
 * (bench/workers/inproc.ts) and keeps each `.cpuprofile` (open it in Chrome DevTools, Performance).
 */
import { spawn, spawnSync } from 'node:child_process'
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { freePort } from '../src/testing/node/ports.js'

type CallFrame = { functionName: string; scriptId: string; url: string; lineNumber: number; columnNumber: number }
type ProfileNode = { id: number; callFrame: CallFrame; children?: number[] }
/** A V8 CPU profile (the inspector's `Profiler.stop` result). */
export type CpuProfile = { nodes: ProfileNode[]; samples: number[]; startTime: number; endTime: number }

/** Where time went: percentages of all samples, by source module (own code) and by function (own code). */
export type Summary = { samples: number; ms: number; modules: { module: string; percent: number }[]; functions: { name: string; module: string; percent: number }[] }

/** A connection to a worker isolate's inspector. */
export type Inspector = {
  /** Profiles the isolate while `load` runs. */
  profile: (load: () => Promise<void>, intervalUs?: number) => Promise<{ profile: CpuProfile; summary: Summary }>
  close: () => void
}

/**
 * Connects to the inspector of wrangler dev's worker (`--inspector-port`); `bundleDir` is the folder of its
 * wrangler config, under which wrangler dev keeps the bundle it serves (`.wrangler/tmp`).
 * @example
 * const inspector = await connect(inspectorPort, 'bench/workers')
 * const { summary } = await inspector.profile(() => load())
 */
export async function connect(port: number, bundleDir: string): Promise<Inspector> {
  const targets = (await (await fetch(`http://127.0.0.1:${port}/json`)).json()) as { webSocketDebuggerUrl: string }[]
  // wrangler's inspector proxy takes connections from local origins only (Node's WebSocket sends none by itself).
  const socket = new WebSocket(targets[0]!.webSocketDebuggerUrl, { headers: { origin: 'http://localhost' } } as never)
  await new Promise<void>((resolve, reject) => {
    socket.addEventListener('open', () => resolve(), { once: true })
    socket.addEventListener('error', () => reject(new Error('the inspector refused the connection')), { once: true })
  })
  let id = 0
  const pending = new Map<number, (result: unknown) => void>()
  socket.addEventListener('message', (event) => {
    const message = JSON.parse(String(event.data)) as { id?: number; result?: unknown; error?: unknown }
    if (message.id !== undefined) pending.get(message.id)?.(message.result ?? message.error)
    pending.delete(message.id ?? -1)
  })
  const send = <T>(method: string, params: object = {}) =>
    new Promise<T>((resolve) => {
      const i = ++id
      pending.set(i, resolve as (result: unknown) => void)
      socket.send(JSON.stringify({ id: i, method, params }))
    })
  await send('Profiler.enable')
  return {
    async profile(load, intervalUs = 250) {
      await send('Profiler.setSamplingInterval', { interval: intervalUs })
      await send('Profiler.start')
      const loaded = await load().then(
        () => undefined,
        (error: unknown) => ({ error }),
      )
      const { profile } = await send<{ profile: CpuProfile }>('Profiler.stop')
      if (loaded) throw loaded.error
      return { profile, summary: summarize(profile, bundleDir) }
    },
    close: () => socket.close(),
  }
}

// esbuild marks each module of a bundle with a `// path/to/module.ts` line: a function's module is the last
// marker above it.
function moduleIndex(text: string): { line: number; module: string }[] {
  const markers: { line: number; module: string }[] = []
  const lines = text.split('\n')
  for (let i = 0; i < lines.length; i++) {
    const match = /^\/\/ ((?:\.\.\/)*(?:node_modules\/)?[\w@./+-]+\.(?:[cm]?[jt]s))$/.exec(lines[i]!)
    if (match) markers.push({ line: i, module: match[1]!.replace(/^(\.\.\/)+/, '').replace(/^node_modules\//, '') })
  }
  return markers
}

function moduleAt(markers: { line: number; module: string }[], line: number): string {
  let lo = 0
  let hi = markers.length - 1
  let found = '(bundle)'
  while (lo <= hi) {
    const mid = (lo + hi) >> 1
    if (markers[mid]!.line <= line) {
      found = markers[mid]!.module
      lo = mid + 1
    } else hi = mid - 1
  }
  return found
}

// A package's modules count as the package; the worker's own modules by path.
const group = (module: string) => (/^(@[\w.-]+\/)?[\w.-]+\/(_esm|_cjs|dist|lib|esm)\//.test(module) ? module.split('/').slice(0, module.startsWith('@') ? 2 : 1).join('/') : module)

// The bundle wrangler dev serves, by its file name: the newest under the config's .wrangler/tmp (the inspector
// proxy does not pass `Debugger.getScriptSource` on).
function bundleText(dir: string, name: string): string {
  const tmp = join(dir, '.wrangler', 'tmp')
  const candidates = existsSync(tmp) ? readdirSync(tmp).map((d) => join(tmp, d, name)).filter((f) => existsSync(f)) : []
  const newest = candidates.sort((a, b) => statSync(b).mtimeMs - statSync(a).mtimeMs)[0]
  return newest ? readFileSync(newest, 'utf8') : ''
}

function summarize(profile: CpuProfile, bundleDir: string): Summary {
  const counts = new Map<number, number>()
  for (const sample of profile.samples) counts.set(sample, (counts.get(sample) ?? 0) + 1)
  const indexes = new Map<string, { line: number; module: string }[]>()
  const modules = new Map<string, number>()
  const functions = new Map<string, { name: string; module: string; count: number }>()
  for (const node of profile.nodes) {
    const count = counts.get(node.id) ?? 0
    if (count === 0) continue
    const frame = node.callFrame
    let module: string
    if (!frame.url || frame.scriptId === '0') module = frame.functionName.startsWith('(') ? frame.functionName : '(workerd built-ins)'
    else if (!frame.url.endsWith('.js')) module = `(workerd: ${frame.url.split('/').pop()})`
    else {
      let index = indexes.get(frame.url)
      if (!index) indexes.set(frame.url, (index = moduleIndex(bundleText(bundleDir, frame.url.split('/').pop()!))))
      module = group(moduleAt(index, frame.lineNumber))
    }
    modules.set(module, (modules.get(module) ?? 0) + count)
    const key = `${frame.functionName}@${module}`
    const entry = functions.get(key) ?? { name: frame.functionName || '(anonymous)', module, count: 0 }
    entry.count += count
    functions.set(key, entry)
  }
  const total = profile.samples.length || 1
  const percent = (count: number) => Math.round((1000 * count) / total) / 10
  return {
    samples: profile.samples.length,
    ms: (profile.endTime - profile.startTime) / 1000,
    modules: [...modules].sort((a, b) => b[1] - a[1]).map(([module, count]) => ({ module, percent: percent(count) })),
    functions: [...functions.values()].sort((a, b) => b.count - a.count).map((f) => ({ name: f.name, module: f.module, percent: percent(f.count) })),
  }
}

/**
 * A summary as Markdown: the modules and functions taking the most samples (self time).
 * @example
 * console.log(formatSummary(summary, 8))
 */
export function formatSummary(summary: Summary, top = 8): string {
  const modules = summary.modules.slice(0, top).map((m) => `${m.module} ${m.percent}%`)
  const functions = summary.functions.slice(0, top).map((f) => `\`${f.name}\` (${f.module}) ${f.percent}%`)
  return `by module: ${modules.join(', ')}; by function: ${functions.join(', ')} (${summary.samples} samples over ${(summary.ms / 1000).toFixed(1)} s)`
}

/**
 * Node before 22 keeps WebSocket behind a flag: when the global is missing, runs this script again with it and
 * exits with that run's status.
 * @example
 * withWebSocket()
 */
export function withWebSocket(): void {
  if (typeof globalThis.WebSocket !== 'undefined') return
  const run = spawnSync(process.execPath, ['--experimental-websocket', ...process.execArgv, ...process.argv.slice(1)], { stdio: 'inherit' })
  process.exit(run.status ?? 1)
}

// `npm run bench:profile -- '/paid?case=pull&n=10' …`: serve the in-process worker, profile each load for
// PROFILE_SECONDS (default 5), print the summaries and keep the profiles.
if (import.meta.url === `file://${process.argv[1]}`) {
  withWebSocket()
  const root = new URL('..', import.meta.url).pathname
  const paths = process.argv.slice(2)
  if (paths.length === 0) throw new Error("name the loads to profile, e.g. '/paid?case=pull&n=10' '/run?app=ours&case=unpaid&n=50'")
  const seconds = Number(process.env.PROFILE_SECONDS ?? 5)
  const port = await freePort()
  const inspectorPort = await freePort()
  const state = mkdtempSync(join(tmpdir(), 'mpp-profile-'))
  const out = mkdtempSync(join(tmpdir(), 'mpp-profiles-'))
  const args = ['dev', '--config', 'bench/workers/inproc.toml', '--ip', '127.0.0.1', '--port', String(port), '--local', '--inspector-port', String(inspectorPort), '--persist-to', state]
  const child = spawn(join(root, 'node_modules', '.bin', 'wrangler'), args, { cwd: root, stdio: 'ignore', detached: true, env: { ...process.env, WRANGLER_SEND_METRICS: 'false', CI: '1' } })
  const url = `http://127.0.0.1:${port}`
  try {
    const deadline = Date.now() + 90_000
    while (!(await fetch(`${url}/one/bare`).then((r) => r.ok, () => false))) {
      if (Date.now() > deadline) throw new Error('wrangler dev did not start')
      await new Promise((r) => setTimeout(r, 250))
    }
    const inspector = await connect(inspectorPort, join(root, 'bench', 'workers'))
    for (const path of paths) {
      for (let i = 0; i < 3; i++) await fetch(url + path).then((r) => r.text()) // warm-up
      let n = 0
      const { profile, summary } = await inspector.profile(async () => {
        const end = Date.now() + seconds * 1000
        while (Date.now() < end) {
          const response = await fetch(url + path)
          if (!response.ok) throw new Error(`${path}: ${response.status} ${await response.text()}`)
          await response.text()
          n++
        }
      })
      const file = join(out, `${path.replace(/[^a-z0-9]+/gi, '_')}.cpuprofile`)
      writeFileSync(file, JSON.stringify(profile))
      console.log(`${path}: ${n} outside requests in ${seconds} s (${file})\n  ${formatSummary(summary, 12)}\n`)
    }
    inspector.close()
  } finally {
    process.kill(-child.pid!, 'SIGTERM')
    await new Promise((r) => setTimeout(r, 500))
    rmSync(state, { recursive: true, force: true })
  }
}
