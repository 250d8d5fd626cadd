/**
 * @module A local chain for session (payment channel) tests: the channel reserve stand-in placed at the
 * TIP-1034 precompile address of a running `anvil --network tempo --hardfork T4`, and a JSON-RPC shim in front
 * of anvil that makes up for what anvil lacks. Node only; both peers (the paying client and the server) talk
 * to the chain through the shim's URL.
 *
 * The shim, per request:
 * - `eth_sendRawTransaction` of a Tempo transaction that calls `open` on the escrow: writes the transaction's
 *   expiring-nonce hash into the stand-in's slot 1 (the precompile reads it from the enclosing transaction);
 * - any open or topUp (sent, simulated, estimated or filled): gives the stand-in an unlimited allowance from the
 *   payer for the token, once, with a zero-fee impersonated `approve` (the precompile pulls deposits without
 *   one), so the payer's balance changes exactly as on the real chain;
 * - `eth_estimateGas` and `eth_fillTransaction`: pads the gas (the stand-in is EVM code, not a precompile).
 * Chain-changing steps and every transaction sent run one at a time, so a hash written for one open is the one that
 * open reads, and no transaction mines in the middle of the shim's own zero-fee approve.
 */
import { type Server, createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { type Address, type Hex, decodeFunctionData, encodeFunctionData, keccak256, maxUint256, numberToHex, stringToHex } from 'viem'
import { escrowAbi, tip20ChannelReserve } from '../../methods/tempo/session/abi.js'
import { expiringNonceHash } from '../../methods/tempo/session/nonce-hash.js'
import { decodeTransaction } from '../../methods/tempo/transaction.js'
import { channelReserveRuntime } from '../escrow-bytecode.js'

/** What `startSessionChain` returns. */
export type SessionChain = {
  /** The shim's URL: give it to every peer instead of anvil's. */
  url: string
  /** Where the stand-in sits (the precompile address unless told otherwise). */
  escrow: Address
  /** Stops the shim (anvil keeps running; its owner stops it). */
  stop: () => Promise<void>
}

/** Options of `startSessionChain`. */
export type SessionChainOptions = {
  /** The running anvil (`--network tempo --hardfork T4`). */
  anvilUrl: string
  /** Loopback port of the shim (default: a free one). */
  port?: number | undefined
  /** Where to place the stand-in (default: the precompile address, so clients need no escrow override). */
  escrow?: Address | undefined
  /** Runtime bytecode to place (default: the committed stand-in build). */
  runtime?: Hex | undefined
  /** Factor applied to gas estimates (default 1.5). */
  gasPadding?: number | undefined
}

type RpcRequest = { jsonrpc: '2.0'; id: unknown; method: string; params?: unknown[] }
type CallLike = { to?: string | null; data?: string | null; input?: string | null }
type Funding = { kind: 'open' | 'topUp'; payer: Address; token: Address }

/** Storage slot of the stand-in that holds the expiring-nonce hash an `open` consumes. */
const contextSlot = numberToHex(1, { size: 32 })
/** Written before simulations and estimates of an open, which have no enclosing signed transaction. */
const simulationContext = keccak256(stringToHex('mpp-edge channel reserve simulation'))

async function call<T>(url: string, method: string, params: unknown[] = []): Promise<T> {
  const response = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ jsonrpc: '2.0', id: 1, method, params }) })
  const body = (await response.json()) as { result?: T; error?: { message: string } }
  if (body.error) throw new Error(`${method}: ${body.error.message}`)
  return body.result as T
}

/** The open/topUp calls to the escrow among `calls`, with the payer and token each needs. */
function fundingCalls(escrow: Address, payer: string | undefined, calls: CallLike[]): Funding[] {
  const found: Funding[] = []
  for (const c of calls) {
    const data = c.data ?? c.input
    if (!payer || !c.to || c.to.toLowerCase() !== escrow.toLowerCase() || !data) continue
    try {
      const decoded = decodeFunctionData({ abi: escrowAbi, data: data as Hex })
      if (decoded.functionName === 'open') found.push({ kind: 'open', payer: payer as Address, token: decoded.args[2] })
      if (decoded.functionName === 'topUp') found.push({ kind: 'topUp', payer: payer as Address, token: decoded.args[0].token })
    } catch {
      // Not a call the shim cares about.
    }
  }
  return found
}

/**
 * Places the channel reserve stand-in on a running anvil and starts the JSON-RPC shim in front of it.
 * @example
 * const anvil = await startAnvil({ port: 8545 })
 * const chain = await startSessionChain({ anvilUrl: anvil.url })
 * // peers use chain.url; on teardown: await chain.stop(); await anvil.stop()
 */
export async function startSessionChain(options: SessionChainOptions): Promise<SessionChain> {
  const anvil = options.anvilUrl
  const escrow = (options.escrow ?? tip20ChannelReserve).toLowerCase() as Address
  const padding = options.gasPadding ?? 1.5
  await call(anvil, 'anvil_setCode', [escrow, options.runtime ?? channelReserveRuntime])

  const approved = new Set<string>()
  let queue: Promise<unknown> = Promise.resolve()
  /** Runs chain-changing steps and the request they prepare one at a time. */
  const serially = <T>(work: () => Promise<T>): Promise<T> => {
    const next = queue.then(work, work)
    queue = next.catch(() => undefined)
    return next
  }

  /** An unlimited allowance from the payer to the stand-in, given once, at no fee to the payer. */
  async function allow(payer: Address, token: Address): Promise<void> {
    const key = `${payer}:${token}`.toLowerCase()
    if (approved.has(key)) return
    const data = encodeFunctionData({
      abi: [{ type: 'function', name: 'approve', stateMutability: 'nonpayable', inputs: [{ name: 'spender', type: 'address' }, { name: 'amount', type: 'uint256' }], outputs: [{ type: 'bool' }] }],
      functionName: 'approve',
      args: [escrow, maxUint256],
    })
    const head = await call<{ baseFeePerGas: Hex }>(anvil, 'eth_getBlockByNumber', ['latest', false])
    await call(anvil, 'anvil_impersonateAccount', [payer])
    try {
      await call(anvil, 'anvil_setNextBlockBaseFeePerGas', ['0x0'])
      const hash = await call<Hex>(anvil, 'eth_sendTransaction', [{ from: payer, to: token, data, gas: '0x2dc6c0', maxFeePerGas: '0x0', maxPriorityFeePerGas: '0x0' }])
      let receipt = await call<{ status: Hex } | null>(anvil, 'eth_getTransactionReceipt', [hash])
      // A transaction sent to anvil directly, not through this shim's queue, can take the zero-fee block first: the
      // approve then waits in the pool for a block whose base fee is zero again.
      for (let tries = 0; receipt === null && tries < 5; tries++) {
        await call(anvil, 'anvil_setNextBlockBaseFeePerGas', ['0x0'])
        await call(anvil, 'evm_mine')
        receipt = await call<{ status: Hex } | null>(anvil, 'eth_getTransactionReceipt', [hash])
      }
      if (receipt?.status !== '0x1') throw new Error(`the shim's approve for ${payer} ${receipt ? 'reverted' : 'was not mined'}`)
    } finally {
      await call(anvil, 'anvil_setNextBlockBaseFeePerGas', [head.baseFeePerGas])
      await call(anvil, 'anvil_stopImpersonatingAccount', [payer])
    }
    approved.add(key)
  }

  async function prepare(fundings: Funding[], context: Hex | undefined): Promise<void> {
    for (const f of fundings) await allow(f.payer, f.token)
    if (!fundings.some((f) => f.kind === 'open')) return
    if (context) await call(anvil, 'anvil_setStorageAt', [escrow, contextSlot, context])
    else if (BigInt(await call<Hex>(anvil, 'eth_getStorageAt', [escrow, contextSlot, 'latest'])) === 0n) {
      await call(anvil, 'anvil_setStorageAt', [escrow, contextSlot, simulationContext])
    }
  }

  const forward = async (request: RpcRequest): Promise<Record<string, unknown>> => {
    const response = await fetch(anvil, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(request) })
    return (await response.json()) as Record<string, unknown>
  }

  const pad = (gas: unknown) => (typeof gas === 'string' ? numberToHex(BigInt(Math.ceil(Number(BigInt(gas)) * padding))) : gas)

  async function handle(request: RpcRequest): Promise<Record<string, unknown>> {
    const params = request.params ?? []
    if (request.method === 'eth_sendRawTransaction' && typeof params[0] === 'string' && /^0x7[68]/i.test(params[0])) {
      let fundings: Funding[] = []
      let context: Hex | undefined
      try {
        const decoded = decodeTransaction(params[0])
        fundings = fundingCalls(escrow, decoded.sender, decoded.envelope.calls as CallLike[])
        context = expiringNonceHash(decoded)
      } catch {
        // Let the node refuse what does not decode.
      }
      // Every transaction goes through the queue: one mined between the shim's zero-fee block setting and its
      // approve would leave that approve unmined.
      if (fundings.length === 0) return serially(() => forward(request))
      return serially(async () => {
        await prepare(fundings, context)
        return forward(request)
      })
    }
    if (request.method === 'eth_sendRawTransaction' || request.method === 'eth_sendTransaction') return serially(() => forward(request))
    if (request.method === 'eth_estimateGas' || request.method === 'eth_fillTransaction' || request.method === 'eth_call') {
      const tx = (params[0] ?? {}) as CallLike & { from?: string; calls?: CallLike[] }
      const fundings = fundingCalls(escrow, tx.from, tx.calls ?? [tx])
      const run = async () => {
        if (fundings.length > 0) await prepare(fundings, undefined)
        const answer = await forward(request)
        if (request.method === 'eth_estimateGas' && answer.result) answer.result = pad(answer.result)
        const filled = answer.result as { tx?: { gas?: unknown } } | undefined
        if (request.method === 'eth_fillTransaction' && filled?.tx) filled.tx.gas = pad(filled.tx.gas)
        return answer
      }
      return fundings.length > 0 ? serially(run) : run()
    }
    return forward(request)
  }

  const server: Server = createServer((req, res) => {
    let body = ''
    req.setEncoding('utf8')
    req.on('data', (chunk: string) => (body += chunk))
    req.on('end', async () => {
      try {
        const parsed = JSON.parse(body) as RpcRequest | RpcRequest[]
        const answer = Array.isArray(parsed) ? await Promise.all(parsed.map(handle)) : await handle(parsed)
        res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(answer))
      } catch (error) {
        res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ jsonrpc: '2.0', id: null, error: { code: -32603, message: String(error) } }))
      }
    })
  })
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(options.port ?? 0, '127.0.0.1', () => resolve())
  })
  const { port } = server.address() as AddressInfo
  return {
    url: `http://127.0.0.1:${port}`,
    escrow,
    stop: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections()
        server.close(() => resolve())
      }),
  }
}
