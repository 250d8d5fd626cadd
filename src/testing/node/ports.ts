/** @module Loopback helpers for local test services: a free port, and an HTTP server listening on one. */
import type { Server as HttpServer } from 'node:http'
import { createServer } from 'node:net'

/**
 * Asks the OS for a free loopback port.
 * @example
 * const port = await freePort()
 */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer()
    server.unref()
    server.on('error', reject)
    server.listen(0, '127.0.0.1', () => {
      const address = server.address()
      server.close(() => (typeof address === 'object' && address ? resolve(address.port) : reject(new Error('no port'))))
    })
  })
}

/**
 * Starts an HTTP server on a loopback port (0: any free one); resolves to its URL and a stop that drops open connections.
 * @example
 * const { url, stop } = await listen(createServer(handler), 0)
 */
export async function listen(server: HttpServer, port: number): Promise<{ url: string; stop: () => Promise<void> }> {
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(port, '127.0.0.1', () => resolve())
  })
  const address = server.address()
  const bound = typeof address === 'object' && address ? address.port : port
  return {
    url: `http://127.0.0.1:${bound}`,
    stop: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections()
        server.close(() => resolve())
      }),
  }
}
