/**
 * @module The payer's side of a payment channel on a local chain, for tests (runs in workerd and Node, viem
 * over fetch): signs channel-opening and top-up transactions (for a server to broadcast, or sent directly),
 * vouchers, and the payer's forced close (`requestClose`, then `withdraw` after the grace period), and moves
 * a test chain's clock.
 */
import { type Address, type Hex, createClient, encodeFunctionData, http, keccak256, zeroAddress } from 'viem'
import type { LocalAccount } from 'viem/accounts'
import { prepareTransactionRequest, signTransaction } from 'viem/actions'
import { chainFor } from '../methods/tempo/chains.js'
import { escrowAbi, tip20ChannelReserve } from '../methods/tempo/session/abi.js'
import { type Descriptor, channelId, descriptorTuple, normalizeDescriptor } from '../methods/tempo/session/descriptor.js'
import { expiringNonceHash } from '../methods/tempo/session/nonce-hash.js'
import { decodeTransaction } from '../methods/tempo/transaction.js'
import { type ChannelV1, channelIdV1, streamChannelAbi } from '../methods/tempo/session/v1.js'
import { signVoucher } from '../methods/tempo/session/voucher.js'
import { streamChannelCreation } from './escrow-bytecode.js'

/** Where the channel lives. */
export type ChannelChain = {
  /** The session chain's RPC URL (the shim's, so opens work against the stand-in). */
  url: string
  chainId: number
  /** Default: the precompile address. */
  escrow?: Address | undefined
  /** The session protocol of the escrow (default `v2`; `v1` for a stream channel contract): picks the voucher domain. */
  protocol?: 'v1' | 'v2' | undefined
}

const randomSalt = (): Hex => `0x${[...crypto.getRandomValues(new Uint8Array(32))].map((b) => b.toString(16).padStart(2, '0')).join('')}`

async function jsonRpc<T>(url: string, method: string, params: unknown[] = []): Promise<T> {
  const response = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ jsonrpc: '2.0', id: 1, method, params }) })
  const body = (await response.json()) as { result?: T; error?: { message: string } }
  if (body.error) throw new Error(`${method}: ${body.error.message}`)
  return body.result as T
}

/** Options of a payer-signed transaction. */
export type SignOptions = {
  /** Leave the fee to a fee payer: no fee token, a placeholder fee-payer signature. */
  sponsored?: boolean | undefined
  /** Seconds of validity from the later of the clock and the chain's head (default 25; the chain allows 30). */
  validFor?: number | undefined
  /** Fee token when not sponsored (default pathUSD). */
  feeToken?: Address | undefined
  /** Gas limit (default: the node's estimate, with headroom per extra call). Anvil's estimate leaves out T4's cost of new storage slots beyond the first few. */
  gas?: bigint | undefined
}

/**
 * Signs a Tempo transaction with the given calls: expiring nonce, `validBefore` from the chain's clock, and,
 * when `sponsored`, no fee token (the fee payer adds it). Returns the serialized transaction and its hash.
 * @example
 * const { serialized } = await signCalls(chain, payer, [{ to: token, data: approve }, { to: escrow, data: open }])
 */
export async function signCalls(chain: ChannelChain, account: LocalAccount, calls: { to: Address; data: Hex }[], options: SignOptions = {}): Promise<{ serialized: Hex; hash: Hex }> {
  const client = createClient({ chain: chainFor(chain.chainId, chain.url), transport: http(chain.url) })
  const head = await jsonRpc<{ timestamp: Hex }>(chain.url, 'eth_getBlockByNumber', ['latest', false])
  const now = Math.max(Math.floor(Date.now() / 1000), Number(head.timestamp))
  const prepared = (await prepareTransactionRequest(client, {
    account,
    calls,
    nonceKey: 'expiring',
    validBefore: now + (options.validFor ?? 25),
    ...(options.sponsored ? {} : { feeToken: options.feeToken ?? '0x20c0000000000000000000000000000000000000' }),
  } as never)) as Record<string, unknown> & { gas?: bigint }
  // Anvil's estimate undercounts each extra call of a batch (state created by an earlier call): headroom per call.
  prepared.gas = options.gas ?? (prepared.gas ?? 0n) + 300_000n * BigInt(calls.length - 1)
  if (options.sponsored) {
    delete prepared.feeToken
    delete prepared.feePayerSignature
    prepared.feePayer = true
  }
  const serialized = (await signTransaction(client, prepared as never)) as Hex
  return { serialized, hash: keccak256(serialized) }
}

/**
 * Signs a Tempo transaction with one call to the escrow (see `signCalls`).
 * @example
 * const { serialized } = await signEscrowCall(chain, payer, data, { sponsored: true })
 */
export function signEscrowCall(chain: ChannelChain, account: LocalAccount, data: Hex, options: SignOptions = {}): Promise<{ serialized: Hex; hash: Hex }> {
  return signCalls(chain, account, [{ to: chain.escrow ?? tip20ChannelReserve, data }], options)
}

/**
 * Signs a channel-opening transaction the way a session client does (one `open` call, random salt) and derives
 * the channel it will create. Nothing is broadcast: put `serialized` in an `open` credential, or send it.
 * @example
 * const { serialized, descriptor, channelId } = await signOpen(chain, payer, { payee, token: pathUsd, deposit: 1_000_000n })
 */
export async function signOpen(
  chain: ChannelChain,
  payer: LocalAccount,
  options: {
    payee: Address
    token: Address
    deposit: bigint
    operator?: Address | undefined
    authorizedSigner?: Address | undefined
    salt?: Hex | undefined
    sponsored?: boolean | undefined
    validFor?: number | undefined
  },
): Promise<{ serialized: Hex; hash: Hex; descriptor: Descriptor; channelId: Hex }> {
  const salt = options.salt ?? randomSalt()
  const operator = options.operator ?? zeroAddress
  const authorizedSigner = options.authorizedSigner ?? zeroAddress
  const data = encodeFunctionData({ abi: escrowAbi, functionName: 'open', args: [options.payee, operator, options.token, options.deposit, salt, authorizedSigner] })
  const signed = await signEscrowCall(chain, payer, data, options)
  const decoded = decodeTransaction(signed.serialized)
  const descriptor = normalizeDescriptor({
    payer: payer.address,
    payee: options.payee,
    operator,
    token: options.token,
    salt,
    authorizedSigner,
    expiringNonceHash: expiringNonceHash(decoded),
  })
  return { ...signed, descriptor, channelId: channelId(descriptor, { escrow: chain.escrow ?? tip20ChannelReserve, chainId: chain.chainId }) }
}

/**
 * Signs a top-up of a channel by its payer.
 * @example
 * const { serialized } = await signTopUp(chain, payer, descriptor, 500_000n)
 */
export async function signTopUp(
  chain: ChannelChain,
  payer: LocalAccount,
  descriptor: Descriptor,
  additionalDeposit: bigint,
  options: { sponsored?: boolean | undefined } = {},
): Promise<{ serialized: Hex; hash: Hex }> {
  const data = encodeFunctionData({ abi: escrowAbi, functionName: 'topUp', args: [descriptorTuple(descriptor), additionalDeposit] })
  return signEscrowCall(chain, payer, data, options)
}

/**
 * A voucher for the channel: its cumulative amount and the payer's (or authorized signer's) signature.
 * @example
 * const voucher = await voucherFor(chain, payer, channelId, 250_000n)
 */
export async function voucherFor(chain: ChannelChain, signer: LocalAccount, id: Hex, cumulativeAmount: bigint) {
  const signature = await signVoucher(signer, { channelId: id, cumulativeAmount }, { escrow: chain.escrow ?? tip20ChannelReserve, chainId: chain.chainId, protocol: chain.protocol })
  return { channelId: id, cumulativeAmount, signature }
}

/**
 * Broadcasts a signed transaction and waits for its receipt (reverted or not).
 * @example
 * const receipt = await sendSigned(chain, serialized)
 */
export async function sendSigned(chain: ChannelChain, serialized: Hex) {
  const hash = await jsonRpc<Hex>(chain.url, 'eth_sendRawTransaction', [serialized])
  for (let i = 0; i < 100; i++) {
    const receipt = await jsonRpc<{ status: Hex; transactionHash: Hex; gasUsed: Hex; logs: { address: string; topics: string[]; data: string }[] } | null>(
      chain.url,
      'eth_getTransactionReceipt',
      [hash],
    )
    if (receipt) return receipt
    await new Promise((resolve) => setTimeout(resolve, 100))
  }
  throw new Error(`transaction ${hash} was not mined`)
}

/**
 * The payer starts a forced close: `requestClose` on the escrow, sent and mined.
 * @example
 * await requestClose(chain, payer, descriptor)
 */
export async function requestClose(chain: ChannelChain, payer: LocalAccount, descriptor: Descriptor) {
  const data = encodeFunctionData({ abi: escrowAbi, functionName: 'requestClose', args: [descriptorTuple(descriptor)] })
  return sendSigned(chain, (await signEscrowCall(chain, payer, data)).serialized)
}

/**
 * The payer withdraws what is left after the grace period: `withdraw` on the escrow, sent and mined.
 * @example
 * await increaseTime(chain, 901); await withdraw(chain, payer, descriptor)
 */
export async function withdraw(chain: ChannelChain, payer: LocalAccount, descriptor: Descriptor) {
  const data = encodeFunctionData({ abi: escrowAbi, functionName: 'withdraw', args: [descriptorTuple(descriptor)] })
  return sendSigned(chain, (await signEscrowCall(chain, payer, data)).serialized)
}

/**
 * Moves a local chain's clock forward and mines a block (anvil `evm_increaseTime` + `evm_mine`). Workerd's clock
 * does not move: a test fires time-based work (alarms) itself.
 * @example
 * await increaseTime(chain, Number(closeGracePeriodSeconds) + 1)
 */
export async function increaseTime(chain: Pick<ChannelChain, 'url'>, seconds: number): Promise<void> {
  await jsonRpc(chain.url, 'evm_increaseTime', [seconds])
  await jsonRpc(chain.url, 'evm_mine')
}

/**
 * A private chain from the chain factory of the test setup, for a test that moves the chain's clock; stop it
 * when done.
 * @example
 * const own = await privateChain(env.TEST_CHAIN_FACTORY_URL)
 * try { … } finally { await own.stop() }
 */
export async function privateChain(factoryUrl: string): Promise<{ url: string; stop: () => Promise<void> }> {
  const response = await fetch(`${factoryUrl}/chains`, { method: 'POST' })
  if (!response.ok) throw new Error(`the chain factory answered ${response.status}: ${await response.text()}`)
  const { url } = (await response.json()) as { url: string }
  return {
    url,
    stop: async () => {
      await fetch(`${factoryUrl}/chains?url=${encodeURIComponent(url)}`, { method: 'DELETE' }).then((r) => r.body?.cancel())
    },
  }
}

/**
 * Deploys the v1 stream channel stand-in with a plain (type 2) transaction from the node's first dev account
 * (a contract creation inside a Tempo transaction never mines on anvil). Returns its address.
 * @example
 * const escrow = await deployStreamChannel(env.TEST_SESSION_RPC_URL)
 */
export async function deployStreamChannel(url: string): Promise<Address> {
  const [deployer] = await jsonRpc<Address[]>(url, 'eth_accounts')
  const hash = await jsonRpc<Hex>(url, 'eth_sendTransaction', [{ from: deployer, data: streamChannelCreation, type: '0x2' }])
  for (let i = 0; i < 100; i++) {
    const receipt = await jsonRpc<{ status: Hex; contractAddress: Address | null } | null>(url, 'eth_getTransactionReceipt', [hash])
    if (receipt) {
      if (receipt.status !== '0x1' || !receipt.contractAddress) throw new Error('the stream channel deployment reverted')
      return receipt.contractAddress.toLowerCase() as Address
    }
    await new Promise((resolve) => setTimeout(resolve, 100))
  }
  throw new Error(`deployment ${hash} was not mined`)
}

const approveAbi = [
  { type: 'function', name: 'approve', stateMutability: 'nonpayable', inputs: [{ name: 'spender', type: 'address' }, { name: 'amount', type: 'uint256' }], outputs: [{ type: 'bool' }] },
] as const

/** Gas of a v1 open or topUp batch: T4 prices each new storage slot at about 250k gas, which anvil's estimate leaves out. */
const v1FundingGas = 3_000_000n

/**
 * Signs a v1 channel-opening transaction the way mppx's legacy session client does (`approve` of the deposit to the
 * escrow, then `open`, in one transaction; random salt) and derives the channel id. Nothing is broadcast.
 * @example
 * const { serialized, channelId } = await signOpenV1({ url, chainId, escrow, protocol: 'v1' }, payer, { payee, token: pathUsd, deposit: 1_000_000n })
 */
export async function signOpenV1(
  chain: ChannelChain & { escrow: Address },
  payer: LocalAccount,
  options: { payee: Address; token: Address; deposit: bigint; authorizedSigner?: Address | undefined; salt?: Hex | undefined; sponsored?: boolean | undefined; approve?: bigint | undefined },
): Promise<{ serialized: Hex; hash: Hex; channel: ChannelV1; channelId: Hex }> {
  const channel: ChannelV1 = {
    payer: payer.address.toLowerCase() as Address,
    payee: options.payee.toLowerCase() as Address,
    token: options.token.toLowerCase() as Address,
    salt: options.salt ?? randomSalt(),
    authorizedSigner: (options.authorizedSigner ?? zeroAddress).toLowerCase() as Address,
  }
  const approve = encodeFunctionData({ abi: approveAbi, functionName: 'approve', args: [chain.escrow, options.approve ?? options.deposit] })
  const open = encodeFunctionData({ abi: streamChannelAbi, functionName: 'open', args: [channel.payee, channel.token, options.deposit, channel.salt, channel.authorizedSigner] })
  const signed = await signCalls(chain, payer, [{ to: options.token, data: approve }, { to: chain.escrow, data: open }], { sponsored: options.sponsored, gas: v1FundingGas })
  return { ...signed, channel, channelId: channelIdV1(channel, { escrow: chain.escrow, chainId: chain.chainId }) }
}

/**
 * Signs a v1 top-up by the channel's payer (`approve` of the amount, then `topUp`).
 * @example
 * const { serialized } = await signTopUpV1(chain, payer, { channelId, token: pathUsd, additionalDeposit: 500_000n })
 */
export async function signTopUpV1(
  chain: ChannelChain & { escrow: Address },
  payer: LocalAccount,
  options: { channelId: Hex; token: Address; additionalDeposit: bigint; sponsored?: boolean | undefined },
): Promise<{ serialized: Hex; hash: Hex }> {
  const approve = encodeFunctionData({ abi: approveAbi, functionName: 'approve', args: [chain.escrow, options.additionalDeposit] })
  const topUp = encodeFunctionData({ abi: streamChannelAbi, functionName: 'topUp', args: [options.channelId, options.additionalDeposit] })
  return signCalls(chain, payer, [{ to: options.token, data: approve }, { to: chain.escrow, data: topUp }], { sponsored: options.sponsored, gas: v1FundingGas })
}

/**
 * The payer of a v1 channel starts a forced close: `requestClose(channelId)`, sent and mined.
 * @example
 * await requestCloseV1(chain, payer, channelId)
 */
export async function requestCloseV1(chain: ChannelChain & { escrow: Address }, payer: LocalAccount, id: Hex) {
  const data = encodeFunctionData({ abi: streamChannelAbi, functionName: 'requestClose', args: [id] })
  return sendSigned(chain, (await signEscrowCall(chain, payer, data)).serialized)
}
