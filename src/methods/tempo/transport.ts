/**
 * @module JSON-RPC over `fetch` as a viem transport, raising the errors viem's `http` transport raises
 * (HttpRequestError with the status, RpcRequestError with the node's code, TimeoutError) but building them only
 * when a call fails: viem's `http` builds a TimeoutError (a stack trace) and a `Request` for every call, which
 * is most of an RPC call's CPU time when the node answers fast.
 */
import { HttpRequestError, ResponseBodyTooLargeError, RpcRequestError, TimeoutError, type Transport, custom, stringify } from 'viem'
import * as Body from '../../core/Body.js'

/** Settings of the transport. */
export type TransportOptions = {
  /** The JSON-RPC endpoint; `user:password@` in it becomes a Basic `Authorization` header, as with viem's `http`. */
  url: string
  /** Timeout of each call, the response body included, in ms. */
  timeoutMs: number
  /** The fetch to use; the global one by default. */
  fetch?: typeof fetch | undefined
  /** Largest response body read, in bytes (default 10 MiB, viem's). */
  maxResponseBytes?: number | undefined
}

type RpcBody = { jsonrpc: '2.0'; id: number; method: string; params?: unknown }

/**
 * A viem transport posting one JSON-RPC call per request.
 * @example
 * const client = createClient({ transport: jsonRpcTransport({ url: 'https://rpc.tempo.xyz', timeoutMs: 10_000 }) })
 */
export function jsonRpcTransport(options: TransportOptions): Transport {
  const { url, authorization } = parseUrl(options.url)
  const headers: Record<string, string> = { 'content-type': 'application/json', ...(authorization ? { authorization } : {}) }
  const maxBytes = options.maxResponseBytes ?? 10 * 1024 * 1024
  let id = 0
  const post = async (body: RpcBody): Promise<unknown> => {
    const fetchFn = options.fetch ?? fetch
    let response: Response
    let text: string
    try {
      response = await fetchFn(url, { method: 'POST', headers, body: stringify(body), signal: AbortSignal.timeout(options.timeoutMs) })
      text = await readText(response, maxBytes)
    } catch (error) {
      if (error instanceof ResponseBodyTooLargeError) throw error
      if ((error as { name?: unknown })?.name === 'TimeoutError') throw new TimeoutError({ body, url })
      throw new HttpRequestError({ body, url, cause: error as Error })
    }
    let data: { result?: unknown; error?: unknown }
    try {
      data = JSON.parse(text || '{}')
    } catch (error) {
      if (response.ok) throw new HttpRequestError({ body, url, status: response.status, cause: error as Error })
      data = { error: text }
    }
    if (!response.ok) {
      // A JSON-RPC error body keeps its code (and the status, for retries), as viem's http transport does.
      if (isRpcError(data)) throw new RpcRequestError({ body, error: data.error, headers: response.headers, status: response.status, url })
      throw new HttpRequestError({ body, url, status: response.status, headers: response.headers, details: stringify(data?.error) || response.statusText })
    }
    if (data?.error) throw new RpcRequestError({ body, error: data.error as never, url })
    return data?.result
  }
  return custom(
    { request: ({ method, params }: { method: string; params?: unknown }) => post({ jsonrpc: '2.0', id: id++, method, params }) },
    { retryCount: 0 },
  )

  async function readText(response: Response, max: number): Promise<string> {
    const tooLarge = (size: number) => new ResponseBodyTooLargeError({ maxSize: max, size })
    const declared = response.headers.get('content-length')
    if (declared !== null && Number(declared) > max) throw tooLarge(Number(declared))
    if (declared !== null || !response.body) return response.text()
    // No declared length: read with the bound.
    const reader = response.body.getReader()
    const read = await Body.readUpTo(reader, max)
    if (!read.complete) {
      await reader.cancel().catch(() => {})
      throw tooLarge(read.size)
    }
    return new TextDecoder().decode(Body.concat(read.chunks, read.size))
  }
}

function isRpcError(data: unknown): data is { error: { code: number; message: string; data?: unknown } } {
  const error = (data as { error?: { code?: unknown; message?: unknown } } | null)?.error
  return typeof error?.code === 'number' && typeof error.message === 'string'
}

function parseUrl(raw: string): { url: string; authorization?: string | undefined } {
  const url = new URL(raw)
  if (!url.username) return { url: raw }
  const authorization = `Basic ${btoa(`${decodeURIComponent(url.username)}:${decodeURIComponent(url.password)}`)}`
  url.username = ''
  url.password = ''
  return { url: url.toString(), authorization }
}
