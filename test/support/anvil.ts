import { type ChildProcess, spawn } from 'node:child_process'
import { createRequire } from 'node:module'
import { dirname, join } from 'node:path'

const require = createRequire(import.meta.url)

/** Path of the anvil binary shipped inside the npm package. */
export function anvilBinary(): string {
  const pkg = dirname(require.resolve('@foundry-rs/anvil-linux-amd64/package.json'))
  return join(pkg, 'bin', 'anvil')
}

/** JSON-RPC call against a local node. */
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

/** Starts `anvil --network tempo` on a loopback port, waits until it answers and mines one block. */
export async function startAnvil(options: { port: number; chainId?: number }): Promise<{ url: string; stop: () => Promise<void> }> {
  const url = `http://127.0.0.1:${options.port}`
  const child: ChildProcess = spawn(
    anvilBinary(),
    ['--network', 'tempo', '--chain-id', String(options.chainId ?? 42431), '--host', '127.0.0.1', '--port', String(options.port), '--accounts', '10', '--silent'],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  )
  let stderr = ''
  child.stderr?.on('data', (chunk) => (stderr += chunk))
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()))
  const deadline = Date.now() + 15_000
  for (;;) {
    if (child.exitCode !== null) throw new Error(`anvil exited: ${stderr}`)
    try {
      await rpc(url, 'eth_chainId')
      break
    } catch {
      if (Date.now() > deadline) throw new Error(`anvil did not start: ${stderr}`)
      await new Promise((r) => setTimeout(r, 50))
    }
  }
  // A chain at genesis has timestamp 1, which makes validAfter-bounded Tempo transactions invalid.
  await rpc(url, 'evm_mine')
  return {
    url,
    stop: async () => {
      if (child.exitCode === null) child.kill('SIGTERM')
      await exited
    },
  }
}
