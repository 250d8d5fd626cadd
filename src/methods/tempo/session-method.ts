/**
 * @module The `tempo` method, `session` intent (draft-tempo-session-00, protocol v2): channels on the TIP-1034 channel
 * reserve, opened and topped up by payer-signed transactions the server checks and broadcasts, paid with EIP-712
 * vouchers, closed by the server capturing exactly what was consumed.
 */
import type { Address, Hex } from 'viem'
import * as v from 'valibot'
import type { ChannelAccount } from '../../core/ChannelAccount.js'
import type { ChainState } from '../../core/ChannelStore.js'
import { ChallengeNotFoundError, ConfigurationError, MalformedCredentialError, VerificationFailedError } from '../../core/Errors.js'
import { ConfigError, isLoopback } from '../../core/Server.js'
import type * as Session from '../../core/Session.js'
import type { FundingContext, SessionMethod, SessionPrice } from '../../core/SessionMethod.js'
import { AmountError, toBaseUnits } from './amounts.js'
import { type Token, defaultRpcUrl, defaultTokens, tokenDisplay } from './chains.js'
import { type SponsorPolicy, defaultPolicy } from './fee-payer.js'
import { Address as AddressSchema } from './schema.js'
import { type SponsorAccount, sponsorAccount } from './sponsor-account.js'
import { sessionChain } from './session/chain.js'
import { checkDescriptor } from './session/descriptor.js'
import { channelOpenedIn, topUpIn } from './session/events.js'
import { checkOpenTransaction, checkTopUpTransaction, sponsorFunding } from './session/funding.js'
import { tip20ChannelReserve } from './session/abi.js'
import { recoverVoucherSigner } from './session/voucher.js'
import type { Rpc } from './rpc.js'
import { tempoSessionV1 } from './session-method-v1.js'
import { type Decoded, decodeTransaction, finalTransaction } from './transaction.js'

/** Configuration of the tempo session method. */
export type TempoSessionConfig = {
  /** Tempo chain id. */
  chainId: number
  /** The payee: channels pay this address. */
  recipient: string
  /** Key of the payee (or the operator) that sends `settle` and `close`: a worker secret. */
  privateKey: string
  /**
   * Session protocol (draft-tempo-session-00, "Protocol Versions"): `v2` (default), channels on the TIP-1034 channel
   * reserve; `v1`, channels on a `TempoStreamChannel` escrow contract at `escrow`, for chains where the precompile is
   * not active.
   */
  sessionProtocol?: 'v1' | 'v2' | undefined
  /** Escrow address (default: the TIP-1034 channel reserve precompile; required with `sessionProtocol: 'v1'`). */
  escrow?: string | undefined
  /** A payee-side operator put into new descriptors (its key is then `privateKey`). */
  operator?: string | undefined
  /** JSON-RPC endpoint; known chains default to viem's definitions. */
  rpcUrl?: string | undefined
  /** Accepted TIP-20 tokens (default: the chain's; the first is used when a price names none). */
  tokens?: readonly Token[] | undefined
  /** Pay the open and topUp fees for payers, under the same sponsor policy the charge method has. */
  feePayer?: { privateKey: string; feeToken?: string | undefined; policy?: Partial<SponsorPolicy> | undefined } | undefined
  /** Timeout of each RPC request in ms (default 10,000). */
  timeoutMs?: number | undefined
  /** How long an open, topUp or close waits for its receipt, in ms (default 30,000). */
  receiptTimeoutMs?: number | undefined
  /** Receipt polling interval in ms (default 500). */
  pollIntervalMs?: number | undefined
  /** The fetch the RPC client uses. */
  fetch?: typeof fetch | undefined
}

/**
 * Creates the tempo session method; configuration is checked now.
 * @example
 * const pay = payment({ …, session: { method: tempoSession({ chainId: 4217, recipient, privateKey: env.TEMPO_PAYEE_KEY }), channels } })
 */
export function tempoSession(config: TempoSessionConfig): SessionMethod {
  const settings = check(config)
  const chainOptions = { url: settings.rpcUrl, chainId: config.chainId, escrow: settings.escrow, timeoutMs: config.timeoutMs, pollIntervalMs: config.pollIntervalMs, fetch: config.fetch }
  const chain = sessionChain(chainOptions)
  const receiptTimeoutMs = config.receiptTimeoutMs ?? 30_000

  const at = (request: Session.Request) => ({ escrow: request.methodDetails.escrowContract as Address, chainId: request.methodDetails.chainId })
  const assertOurs = (request: Session.Request) => {
    if (request.methodDetails.chainId !== config.chainId || request.methodDetails.escrowContract !== settings.escrow) {
      throw new VerificationFailedError({ detail: 'the challenge names another chain or escrow than this server settles on' })
    }
  }
  const funding = (request: Session.Request, context: FundingContext) => ({
    escrow: settings.escrow,
    chainId: config.chainId,
    recipient: request.recipient as Address,
    currency: request.currency as Address,
    operator: request.methodDetails.operator as Address | undefined,
    expires: new Date(context.challenge.expires ?? Number.NaN),
    feePayer: request.methodDetails.feePayer === true,
  })

  // Broadcasts a checked open or topUp (co-signed when sponsored) and waits for its receipt.
  async function submit(decoded: Decoded, request: Session.Request, context: FundingContext, node: Rpc = chain.rpc) {
    let final: { serialized: Hex; hash: Hex }
    if (request.methodDetails.feePayer === true) {
      if (!settings.sponsor) throw new ConfigurationError({ detail: 'tempo session: a sponsored challenge reached a server without a fee payer' })
      final = await sponsorFunding(decoded, { policy: settings.policy, now: context.now, account: settings.sponsor, feeToken: settings.feeToken })
    } else {
      final = finalTransaction(decoded.envelope)
    }
    const hash = final.hash.toLowerCase() as Hex
    if (context.recordOnly) {
      // An expired challenge: only a transaction already on chain is recorded (it was sent while the challenge lived).
      const mined = await node.receipt(hash)
      if (!mined) throw new ChallengeNotFoundError({ detail: 'the session challenge has expired and its transaction is not on chain' })
    }
    // A transaction funds one action, once: bind its hash to this challenge before it is sent.
    await context.claimReference(hash)
    let found = await node.receipt(hash)
    if (!found) {
      if (decoded.envelope.validBefore !== undefined && decoded.envelope.validBefore <= Math.floor(Date.now() / 1000)) {
        throw new VerificationFailedError({ detail: "the transaction's validity window has passed" })
      }
      await node.broadcast(final.serialized, hash)
      found = await node.waitForReceipt(hash, Date.now() + receiptTimeoutMs)
    }
    if (found.status !== 'success' && found.status !== '0x1') throw new VerificationFailedError({ detail: `transaction ${hash} reverted` })
    return found
  }

  function request(price: SessionPrice): Session.Request {
    const token = findToken(settings.tokens, price.currency)
    const units = (value: string, what: string) => {
      try {
        return toBaseUnits(value, token.decimals).toString()
      } catch (error) {
        if (error instanceof AmountError) throw new ConfigError(`tempo session: ${what} ${error.message}`)
        throw error
      }
    }
    const amount = units(price.amount, 'amount')
    if (amount === '0') throw new ConfigError('tempo session: the price per unit must be above zero')
    return {
      amount,
      ...(price.unitType !== undefined ? { unitType: price.unitType } : {}),
      ...(price.suggestedDeposit !== undefined ? { suggestedDeposit: units(price.suggestedDeposit, 'suggestedDeposit') } : {}),
      currency: token.address.toLowerCase() as Address,
      recipient: config.recipient.toLowerCase() as Address,
      ...(price.description !== undefined ? { description: price.description } : {}),
      methodDetails: {
        escrowContract: settings.escrow,
        chainId: config.chainId,
        ...(price.minVoucherDelta !== undefined ? { minVoucherDelta: units(price.minVoucherDelta, 'minVoucherDelta') } : {}),
        ...(settings.operator ? { operator: settings.operator } : {}),
        ...(settings.sponsor ? { feePayer: true } : {}),
        sessionProtocol: settings.protocol,
      },
    }
  }

  const display = tokenDisplay(settings.tokens)

  if (settings.protocol === 'v1') {
    return { ...tempoSessionV1({ settings, chainOptions, receiptTimeoutMs, request, assertOurs, funding, submit }), display }
  }

  return {
    name: 'tempo',
    request,
    display,

    checkDescriptor(payload, request) {
      assertOurs(request)
      if (!('descriptor' in payload)) throw new MalformedCredentialError({ detail: 'a v2 session payload carries the channel descriptor' })
      checkDescriptor(payload.descriptor, {
        channelId: payload.channelId,
        ...at(request),
        recipient: request.recipient as Address,
        currency: request.currency as Address,
        operator: request.methodDetails.operator as Address | undefined,
      })
      return payload.descriptor
    },

    async recoverVoucher(voucher, request) {
      return (await recoverVoucherSigner(voucher, at(request))).toLowerCase() as `0x${string}`
    },

    async open(payload, context): Promise<ChainState> {
      const { request } = context
      const decoded = decodeTransaction(payload.transaction)
      const opened = checkOpenTransaction(decoded, funding(request, context))
      if (opened.channelId.toLowerCase() !== payload.channelId) throw new VerificationFailedError({ detail: 'the open transaction creates another channel than the payload names' })
      const receipt = await submit(decoded, request, context)
      channelOpenedIn(receipt, { escrow: settings.escrow, channelId: payload.channelId })
      // draft-tempo-session-00, "Open Verification": the chain state after the open is what the channel holds.
      const state = await chain.requireChannel(opened.descriptor)
      return chainState(payload.channelId, opened.descriptor, state)
    },

    async topUp(payload, account, context): Promise<ChainState> {
      const { request } = context
      const decoded = decodeTransaction(payload.transaction)
      checkTopUpTransaction(decoded, { ...funding(request, context), descriptor: account.descriptor })
      const receipt = await submit(decoded, request, context)
      topUpIn(receipt, { escrow: settings.escrow, channelId: account.channelId })
      const state = await chain.requireChannel(account.descriptor)
      return chainState(account.channelId, account.descriptor, state)
    },

    async close(account, voucher, capture) {
      const closed = await chain.close(settings.account, account.descriptor, { channelId: account.channelId, cumulativeAmount: voucher.cumulative, signature: voucher.signature }, capture, {
        deadline: Date.now() + receiptTimeoutMs,
      })
      return { txHash: closed.txHash.toLowerCase() as `0x${string}`, settled: closed.settledToPayee }
    },

    async settle(account, voucher) {
      const settled = await chain.settle(settings.account, account.descriptor, { channelId: account.channelId, cumulativeAmount: voucher.cumulative, signature: voucher.signature }, {
        deadline: Date.now() + receiptTimeoutMs,
      })
      return { txHash: settled.txHash.toLowerCase() as `0x${string}`, settled: settled.newSettled }
    },

    async read(account: ChannelAccount) {
      const state = await chain.getChannel(account.descriptor)
      return { deposit: state.deposit, settled: state.settled, closeRequestedAt: BigInt(state.closeRequestedAt) }
    },
  }

  function chainState(channelId: `0x${string}`, descriptor: Session.Descriptor, state: { deposit: bigint; settled: bigint; closeRequestedAt: number }): ChainState {
    return { channelId, chainId: config.chainId, escrow: settings.escrow, descriptor, deposit: state.deposit, settled: state.settled, closeRequestedAt: BigInt(state.closeRequestedAt) }
  }
}

function findToken(tokens: readonly Token[], currency: string | undefined): Token {
  if (currency === undefined) return tokens[0]!
  const token = tokens.find((t) => t.address.toLowerCase() === currency.toLowerCase() || t.symbol?.toLowerCase() === currency.toLowerCase())
  if (!token) throw new ConfigError(`tempo session: currency "${currency}" is not an accepted token`)
  return token
}

/** The checked configuration. */
export type SessionSettings = ReturnType<typeof check>

function check(config: TempoSessionConfig) {
  const fail = (message: string): never => {
    throw new ConfigError(`tempo session: ${message}`)
  }
  if (!Number.isSafeInteger(config.chainId) || config.chainId < 1) fail('chainId must be a positive integer')
  if (!v.is(AddressSchema, config.recipient)) fail('recipient must be an address')
  // ox's key handling (as the fee sponsor's): viem's full local account would bring its serializers into a worker.
  let account: SponsorAccount | undefined
  try {
    account = sponsorAccount(config.privateKey as Hex)
  } catch {
    fail('privateKey is not a valid private key')
  }
  const operator = config.operator === undefined ? undefined : v.is(AddressSchema, config.operator) ? (config.operator.toLowerCase() as Address) : fail('operator must be an address')
  const signer = account!.address.toLowerCase()
  if (signer !== config.recipient.toLowerCase() && signer !== operator) fail('privateKey must be the key of the recipient (or of the operator)')
  const protocol = config.sessionProtocol ?? 'v2'
  if (protocol !== 'v1' && protocol !== 'v2') fail('sessionProtocol must be "v1" or "v2"')
  // A v1 escrow is a contract deployment: there is no address to assume.
  if (protocol === 'v1' && config.escrow === undefined) fail('escrow (the v1 stream channel contract) is required with sessionProtocol "v1"')
  const escrow = (config.escrow ?? tip20ChannelReserve).toLowerCase() as Address
  if (!v.is(AddressSchema, escrow)) fail('escrow must be an address')
  const rpcUrl = config.rpcUrl ?? defaultRpcUrl(config.chainId)
  if (!rpcUrl) fail(`rpcUrl is required for chain ${config.chainId}`)
  const url = new URL(rpcUrl!)
  if (url.protocol !== 'https:' && !(url.protocol === 'http:' && isLoopback(url.hostname))) fail('rpcUrl must use https (plain http only on loopback)')
  const tokens = config.tokens ?? defaultTokens(config.chainId)
  if (tokens.length === 0) fail('tokens must not be empty')
  let sponsor: SponsorAccount | undefined
  if (config.feePayer) {
    try {
      sponsor = sponsorAccount(config.feePayer.privateKey as Hex)
    } catch {
      fail('feePayer.privateKey is not a valid private key')
    }
  }
  if (protocol === 'v1' && operator) fail('operator is a v2 setting: a v1 channel has no operator')
  return {
    protocol,
    account: account!,
    operator,
    escrow,
    rpcUrl: rpcUrl!,
    tokens,
    sponsor,
    feeToken: (config.feePayer?.feeToken ?? '0x20c0000000000000000000000000000000000000') as Hex,
    policy: { ...defaultPolicy, ...config.feePayer?.policy } as SponsorPolicy,
  }
}
