/**
 * @module A loopback HTTP service that starts private chains on request, for tests that move a chain's clock
 * (`evm_increaseTime` runs every later transaction's validity window against the moved clock, so a shared chain
 * would refuse other tests' transactions). Node only; tests in workerd call it with `fetch`:
 * `POST /chains` → `{ "url": … }` (a fresh chain, with whatever `start` sets up), `DELETE /chains?url=…` stops one.
 * Every chain still running is stopped with the service.
 */
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'

/** A started chain. */
export type StartedChain = { url: string; stop: () => Promise<void> }

/**
 * Starts the chain factory on a loopback port (0: any free one); `start` makes one chain (for example anvil plus
 * the session shim).
 * @example
 * const factory = await startChainFactory({ port: 0, start: async () => { … return { url, stop } } })
 */
export async function startChainFactory(options: { port: number; start: () => Promise<StartedChain> }): Promise<{ url: string; stop: () => Promise<void> }> {
  const running = new Map<string, StartedChain>()
  const server = createServer((req, res) => {
    const reply = (status: number, body: unknown) => res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body))
    const target = new URL(req.url ?? '/', 'http://localhost')
    req.resume()
    if (target.pathname !== '/chains') return reply(404, { error: 'not found' })
    if (req.method === 'POST') {
      options.start().then(
        (chain) => {
          running.set(chain.url, chain)
          reply(200, { url: chain.url })
        },
        (error: unknown) => reply(500, { error: String(error) }),
      )
      return
    }
    if (req.method === 'DELETE') {
      const chain = running.get(target.searchParams.get('url') ?? '')
      if (!chain) return reply(404, { error: 'no such chain' })
      running.delete(chain.url)
      chain.stop().then(
        () => reply(200, { stopped: chain.url }),
        (error: unknown) => reply(500, { error: String(error) }),
      )
      return
    }
    reply(405, { error: 'method not allowed' })
  })
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(options.port, '127.0.0.1', () => resolve())
  })
  const { port } = server.address() as AddressInfo
  return {
    url: `http://127.0.0.1:${port}`,
    stop: async () => {
      server.closeAllConnections()
      await new Promise<void>((resolve) => server.close(() => resolve()))
      await Promise.all([...running.values()].map((chain) => chain.stop()))
      running.clear()
    },
  }
}
