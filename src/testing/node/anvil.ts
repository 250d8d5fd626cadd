/**
 * @module The local chains: `anvil --network tempo --hardfork T4` from the `@foundry-rs/anvil` npm package (its
 * platform binary, no download), or a plain EVM anvil (`network: 'evm'`), on a loopback port, in its own process group.
 */
import { type ChildProcess, spawn } from 'node:child_process'
import { createRequire } from 'node:module'
import { dirname, join } from 'node:path'

const require = createRequire(import.meta.url)

/** The platform packages `@foundry-rs/anvil` ships its binary in. */
const platforms: Record<string, string> = {
  'linux-x64': 'linux-amd64',
  'linux-arm64': 'linux-arm64',
  'darwin-x64': 'darwin-amd64',
  'darwin-arm64': 'darwin-arm64',
}

/**
 * Path of the anvil binary of this platform, inside the npm package (`node_modules/.bin/anvil` is a Node wrapper
 * that does not forward SIGTERM).
 * @example
 * spawn(anvilBinary(), anvilArgs({ port: 8545 }))
 */
export function anvilBinary(): string {
  const platform = platforms[`${process.platform}-${process.arch}`]
  if (!platform) throw new Error(`@foundry-rs/anvil has no binary for ${process.platform}-${process.arch}`)
  // Resolved from the wrapper package, wherever the package manager put it.
  const wrapper = createRequire(require.resolve('@foundry-rs/anvil/package.json'))
  const pkg = dirname(wrapper.resolve(`@foundry-rs/anvil-${platform}/package.json`))
  return join(pkg, 'bin', 'anvil')
}

/** Which chain anvil runs: Tempo (the default) or a plain EVM chain (Ethereum rules, ETH for gas). */
export type AnvilNetwork = 'tempo' | 'evm'

/**
 * Arguments for a local chain on loopback: Tempo, or with `network: 'evm'` a plain EVM chain (chain id 31337 unless
 * told). On Tempo the hardfork is T4: on anvil's default (T0) the expiring nonce
 * key is treated as an ordinary 2D nonce, so every expiring-nonce transaction after an account's first is dropped
 * silently; on T4 an account pays any number of times, as on a real Tempo chain, and the signature-verifier
 * precompile that payment channels use works (it reverts on T0–T2).
 * @example
 * spawn(anvilBinary(), anvilArgs({ port: 8545 }))
 */
export function anvilArgs(options: { port: number; chainId?: number; accounts?: number; network?: AnvilNetwork | undefined }): string[] {
  const tempo = (options.network ?? 'tempo') === 'tempo'
  return [
    ...(tempo ? ['--network', 'tempo', '--hardfork', 'T4'] : []),
    '--chain-id', String(options.chainId ?? (tempo ? 42431 : 31337)),
    '--host', '127.0.0.1',
    '--port', String(options.port),
    '--accounts', String(options.accounts ?? 10),
  ]
}

/**
 * JSON-RPC call against a local node.
 * @example
 * await rpc(url, 'evm_mine')
 */
export async function rpc<T = unknown>(url: string, method: string, params: unknown[] = []): Promise<T> {
  const res = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ jsonrpc: '2.0', id: 1, method, params }),
  })
  const body = (await res.json()) as { result?: T; error?: { message: string } }
  if (body.error) throw new Error(`${method}: ${body.error.message}`)
  return body.result as T
}

/**
 * Starts `anvil --network tempo --hardfork T4` (or, with `network: 'evm'`, a plain EVM anvil) on a loopback port in
 * its own process group, waits until it answers and mines one block; `stop` ends the whole group, so nothing is
 * left running.
 * @example
 * const chain = await startAnvil({ port: await freePort() })
 * await chain.stop()
 */
export async function startAnvil(options: { port: number; chainId?: number; network?: AnvilNetwork | undefined }): Promise<{ url: string; stop: () => Promise<void> }> {
  const url = `http://127.0.0.1:${options.port}`
  const child: ChildProcess = spawn(anvilBinary(), [...anvilArgs(options), '--silent'], { stdio: ['ignore', 'ignore', 'pipe'], detached: true })
  let stderr = ''
  child.stderr?.on('data', (chunk) => (stderr += chunk))
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()))
  const kill = (signal: NodeJS.Signals) => {
    try {
      if (child.pid) process.kill(-child.pid, signal)
    } catch {
      // The group is already gone.
    }
  }
  // A crashing test runner must not leave the chain behind.
  const onExit = () => kill('SIGKILL')
  process.once('exit', onExit)
  const deadline = Date.now() + 15_000
  for (;;) {
    if (child.exitCode !== null) throw new Error(`anvil exited: ${stderr}`)
    try {
      await rpc(url, 'eth_chainId')
      break
    } catch {
      if (Date.now() > deadline) {
        kill('SIGKILL')
        throw new Error(`anvil did not start: ${stderr}`)
      }
      await new Promise((r) => setTimeout(r, 50))
    }
  }
  // A chain at genesis has timestamp 1, which makes validAfter-bounded Tempo transactions invalid.
  await rpc(url, 'evm_mine')
  return {
    url,
    stop: async () => {
      process.off('exit', onExit)
      if (child.exitCode === null && child.signalCode === null) kill('SIGTERM')
      await exited
    },
  }
}
