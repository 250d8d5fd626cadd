/**
 * @module What a running local demo tells its clients: `npm start` writes `.mpp-demo/<gateway port>/state.json`
 * once the gateway is ready (and removes the folder when it stops); `npm run pay` finds it from the URL's port
 * and pays with the first funded demo payer key in it.
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import type { Hex } from 'viem'

/**
 * The repository root.
 * @example
 * join(root, 'demo', 'pricing.json')
 */
export const root = fileURLToPath(new URL('..', import.meta.url))

/** What `npm start` records about the running demo. */
export type DemoState = {
  /** The gateway's base URL. */
  gateway: string
  /** The local Tempo chain's JSON-RPC URL and id. */
  rpc: string
  chainId: number
  /** The local Stripe API server's URL. */
  stripe: string
  /** The process id of `npm start`'s script. */
  pid: number
  /** Funded demo payer keys; each pays any number of times (the local chain runs Tempo's T4 rules). */
  payers: Hex[]
}

/**
 * The folder of the demo whose gateway listens on `port`.
 * @example
 * demoDir(8787) // '/…/mpp-edge/.mpp-demo/8787'
 */
export function demoDir(port: number | string): string {
  return join(root, '.mpp-demo', String(port))
}

/**
 * Writes the state file (readable by the owner only: it holds keys, even if only demo ones).
 * @example
 * writeState(demoDir(8787), state)
 */
export function writeState(dir: string, state: DemoState): void {
  mkdirSync(dir, { recursive: true })
  writeFileSync(join(dir, 'state.json'), JSON.stringify(state, null, 2), { mode: 0o600 })
}

/**
 * Reads the state of the demo whose gateway serves `url`, or undefined when none runs there.
 * @example
 * const state = readState(new URL('http://127.0.0.1:8787/v1/reports/daily'))
 */
export function readState(url: URL): { dir: string; state: DemoState } | undefined {
  const port = url.port || (url.protocol === 'https:' ? '443' : '80')
  const dir = demoDir(port)
  try {
    const state = JSON.parse(readFileSync(join(dir, 'state.json'), 'utf8')) as DemoState
    return new URL(state.gateway).host === url.host || isLoopback(url.hostname) ? { dir, state } : undefined
  } catch {
    return undefined
  }
}

function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '[::1]' || /^127\./.test(host)
}
