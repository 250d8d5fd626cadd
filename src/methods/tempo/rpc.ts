/**
 * @module The Tempo JSON-RPC calls the method makes, through viem over `fetch` with a timeout (./transport.ts). Network
 * failures, timeouts, 5xx answers and node overload become PaymentUnavailableError (503 + Retry-After), so
 * the payer can present the same credential again.
 */
import {
  BaseError,
  type Address,
  type Hex,
  HttpRequestError,
  InternalRpcError,
  LimitExceededRpcError,
  ResourceUnavailableRpcError,
  SocketClosedError,
  TimeoutError,
  createClient,
  decodeFunctionResult,
  encodeFunctionData,
  hexToBigInt,
} from 'viem'
import { ConfigurationError, PaymentUnavailableError, VerificationFailedError } from '../../core/Errors.js'
import { tip20 } from './abi.js'
import type { ReceiptLike } from './receipt.js'
import { jsonRpcTransport } from './transport.js'

/** A JSON-RPC receipt as the node returns it. */
export type RpcReceipt = ReceiptLike & { blockNumber: Hex; from?: Address | undefined }

/** Settings of the RPC client. */
export type RpcOptions = {
  url: string
  chainId: number
  /** Timeout of each JSON-RPC request in ms (default 10,000). */
  timeoutMs?: number | undefined
  /** How often to poll for a receipt in ms (default 500). */
  pollIntervalMs?: number | undefined
  /** The fetch to use (a service binding, a test proxy); the global one by default. */
  fetch?: typeof fetch | undefined
}

/** JSON-RPC error codes that mean "the node cannot serve this now" rather than "this is wrong". */
const transientCodes = new Set<number>([InternalRpcError.code, LimitExceededRpcError.code, ResourceUnavailableRpcError.code])

const transientStatus = (status: number | undefined) => status === undefined || status === 408 || status === 429 || status >= 500

/**
 * Whether an error from viem means the endpoint is unreachable, slow, overloaded or failing (so a retry may
 * succeed): no answer, a timeout, HTTP 408/429/5xx (with or without a JSON-RPC error body), or a JSON-RPC
 * internal/limit/unavailable error.
 * @example
 * if (isTransient(error)) throw new PaymentUnavailableError()
 */
export function isTransient(error: unknown): boolean {
  if (!(error instanceof BaseError)) return error instanceof TypeError
  return Boolean(
    error.walk((e) => {
      if (e instanceof TimeoutError || e instanceof SocketClosedError) return true
      if (e instanceof HttpRequestError) return transientStatus(e.status)
      const status = (e as { status?: unknown }).status
      if (typeof status === 'number' && transientStatus(status)) return true
      return typeof (e as { code?: unknown }).code === 'number' && transientCodes.has((e as { code: number }).code)
    }),
  )
}

/** Whether the endpoint refused our credentials (an RPC key problem, not the payer's). */
function isUnauthorized(error: unknown): boolean {
  return error instanceof BaseError && Boolean(error.walk((e) => e instanceof HttpRequestError && (e.status === 401 || e.status === 403)))
}

function unavailable(what: string, cause: unknown): PaymentUnavailableError {
  return new PaymentUnavailableError({ detail: `the Tempo RPC endpoint is unavailable (${what})`, retryAfter: 2, cause })
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

/** The RPC calls the Tempo method needs. */
export type Rpc = ReturnType<typeof rpc>

/**
 * Builds the RPC client for one chain.
 * @example
 * const node = rpc({ url: 'https://rpc.tempo.xyz', chainId: 4217 })
 * const receipt = await node.receipt(hash)
 */
export function rpc(options: RpcOptions) {
  const pollIntervalMs = options.pollIntervalMs ?? 500
  // Raw JSON-RPC only: no chain definition (its Tempo formatters are for building transactions, not reading).
  const client = createClient({ transport: jsonRpcTransport({ url: options.url, timeoutMs: options.timeoutMs ?? 10_000, fetch: options.fetch }) })
  let chainChecked = false

  async function request<T>(what: string, method: string, params: unknown[]): Promise<T> {
    try {
      return (await client.request({ method, params } as never)) as T
    } catch (error) {
      if (isUnauthorized(error)) throw new ConfigurationError({ detail: `the Tempo RPC endpoint refused the request (${what})`, cause: error })
      if (isTransient(error)) throw unavailable(what, error)
      throw error
    }
  }

  /** Refuses to work against an endpoint that serves another chain (checked once per isolate). */
  async function checkChain(): Promise<void> {
    if (chainChecked) return
    const id = Number(await request<Hex>('chain id', 'eth_chainId', []))
    if (id !== options.chainId) throw new ConfigurationError({ detail: `the Tempo RPC endpoint serves chain ${id}, not ${options.chainId}` })
    chainChecked = true
  }

  async function receipt(hash: Hex): Promise<RpcReceipt | null> {
    await checkChain()
    return request<RpcReceipt | null>('receipt', 'eth_getTransactionReceipt', [hash])
  }

  /** Waits for a receipt until `deadline` (ms since epoch); a 503 once it passes, so the payer retries. */
  async function waitForReceipt(hash: Hex, deadline: number): Promise<RpcReceipt> {
    for (;;) {
      const found = await receipt(hash)
      if (found) return found
      if (Date.now() + pollIntervalMs > deadline) {
        throw new PaymentUnavailableError({ detail: 'the transaction is not in a block yet', retryAfter: 2 })
      }
      await sleep(pollIntervalMs)
    }
  }

  /** Waits until the receipt's block has `confirmations` blocks on top of it, counting itself. */
  async function waitForConfirmations(found: RpcReceipt, confirmations: number, deadline: number): Promise<void> {
    if (confirmations <= 1) return
    const target = hexToBigInt(found.blockNumber) + BigInt(confirmations - 1)
    for (;;) {
      if (BigInt(await request<Hex>('block number', 'eth_blockNumber', [])) >= target) return
      if (Date.now() + pollIntervalMs > deadline) {
        throw new PaymentUnavailableError({ detail: 'the transaction does not have enough confirmations yet', retryAfter: 2 })
      }
      await sleep(pollIntervalMs)
    }
  }

  return {
    client,
    receipt,
    waitForReceipt,
    waitForConfirmations,

    /** The timestamp of a block, in ms since the epoch. */
    async blockTime(blockNumber: Hex): Promise<number> {
      const block = await request<{ timestamp: Hex } | null>('block', 'eth_getBlockByNumber', [blockNumber, false])
      if (!block) throw new PaymentUnavailableError({ detail: 'the Tempo RPC endpoint does not have the block yet', retryAfter: 2 })
      return Number(hexToBigInt(block.timestamp)) * 1000
    },

    /** Whether the node knows the transaction (pending or mined). */
    async known(hash: Hex): Promise<boolean> {
      await checkChain()
      return (await request<unknown>('transaction', 'eth_getTransactionByHash', [hash])) !== null
    },

    /**
     * Broadcasts a signed transaction. A refusal by the node is a verification failure, unless the node
     * already has the transaction (a retry of one that is pending or mined, whatever the node calls it).
     */
    async broadcast(serialized: Hex, hash: Hex): Promise<void> {
      await checkChain()
      try {
        await request<Hex>('broadcast', 'eth_sendRawTransaction', [serialized])
      } catch (error) {
        if (error instanceof PaymentUnavailableError) throw error
        if ((await request<unknown>('transaction', 'eth_getTransactionByHash', [hash])) !== null) return
        const message = error instanceof BaseError ? error.details || error.shortMessage : String(error)
        throw new VerificationFailedError({ detail: `the network refused the transaction: ${message.slice(0, 200)}`, cause: error })
      }
    },

    /**
     * Simulates each of a sender's calls with a plain `eth_call` (no fee fields); a revert is a verification
     * failure. Call by call, because a batched Tempo `eth_call` does not report an inner revert on every node.
     */
    async simulate(from: Address, calls: readonly { to?: Address | undefined; data?: Hex | undefined }[]): Promise<void> {
      await checkChain()
      for (const call of calls) {
        try {
          await client.request({ method: 'eth_call', params: [{ from, to: call.to, data: call.data }, 'latest'] } as never)
        } catch (error) {
          if (isTransient(error)) throw unavailable('simulation', error)
          throw new VerificationFailedError({ detail: 'the transaction would revert', cause: error })
        }
      }
    },

    /** A TIP-20 balance in base units. */
    async balance(token: Address, account: Address): Promise<bigint> {
      await checkChain()
      const data = encodeFunctionData({ abi: tip20, functionName: 'balanceOf', args: [account] })
      const result = await request<Hex>('balance', 'eth_call', [{ to: token, data }, 'latest'])
      return decodeFunctionResult({ abi: tip20, functionName: 'balanceOf', data: result })
    },
  }
}
