/**
 * @module The `tempo` payment method, `charge` intent: TIP-20 transfers on Tempo verified on-chain
 * (draft-tempo-charge-00). Amounts, token, recipient, chain, memo and splits always come from the
 * HMAC-bound request the server issued, never from the credential.
 */
import type { Address, Hex } from 'viem'
import * as v from 'valibot'
import { ConfigurationError, PaymentUnavailableError, VerificationFailedError } from '../../core/Errors.js'
import { define, type Method, type Price, type Settlement, type VerifyContext } from '../../core/Method.js'
import { ConfigError, clockSkewMs, isLoopback, referenceKeepUntil } from '../../core/Server.js'
import { AmountError, toBaseUnits } from './amounts.js'
import { type Token, defaultRpcUrl, defaultTokens, tokenDisplay } from './chains.js'
import { type Gate, type SenderGate, type SponsorPolicy, defaultPolicy, inFlight, localSenders, maxFee, sponsor } from './fee-payer.js'
import { parseSource, verifyProof } from './proof.js'
import { type SponsorAccount, sponsorAccount } from './sponsor-account.js'
import { checkReceipt } from './receipt.js'
import { type Rpc, rpc } from './rpc.js'
import { Address as AddressSchema, Bytes32, type Mode, Payload, Request, maxSplits } from './schema.js'
import { type Decoded, type Envelope, checkTransaction, decodeEnvelope, decodeTransaction, finalTransaction } from './transaction.js'
import { type Attribution, sameAddress } from './transfers.js'

/** Configuration of the tempo method. */
export type TempoConfig = {
  /** Tempo chain id: 4217 (mainnet), 42431 (Moderato testnet) or a local chain's id. */
  chainId: number
  /** Address that receives payments (the remainder after splits). */
  recipient: string
  /** JSON-RPC endpoint, or endpoints by chain id; known chains default to viem's definitions. */
  rpcUrl?: string | Readonly<Record<number, string>> | undefined
  /** Accepted TIP-20 tokens; the first is used when a price names no currency (default: the chain's, pathUSD). */
  tokens?: readonly Token[] | undefined
  /** Extra recipients, each paid a fixed decimal amount in token units out of every price. */
  splits?: readonly { recipient: string; amount: string; memo?: string | undefined }[] | undefined
  /** A fixed memo the primary transfer must carry, instead of the challenge-bound attribution memo (pull only). */
  memo?: string | undefined
  /**
   * `required` (default): without a server memo, the primary transfer must be a `transferWithMemo` whose memo
   * binds it to the challenge and realm. `optional` also accepts plain transfers, for payers that cannot write
   * memos: then only the single use of a transaction hash ties a payment to a challenge, so hash (push)
   * credentials are refused and offering push is a start-up error.
   */
  attribution?: Attribution | undefined
  /** Submission modes offered for non-zero charges (default both; only `pull` with fee sponsorship, a `memo` or `attribution: 'optional'`). */
  modes?: readonly Mode[] | undefined
  /** Pay transaction fees for payers: the sponsor key (a worker secret), fee token and policy caps. */
  feePayer?:
    | {
        /** Sponsor private key, e.g. from `wrangler secret put TEMPO_SPONSOR_KEY`. */
        privateKey: string
        /** TIP-20 token the sponsor pays fees in (default pathUSD). */
        feeToken?: string | undefined
        /** Caps on what is sponsored (defaults in `defaultPolicy`). */
        policy?: Partial<SponsorPolicy> | undefined
        /**
         * A cap on transactions in flight shared by every isolate (`sponsorGate(env.SPONSOR_GATE, …)`);
         * without it `policy.maxInFlight` is counted per isolate.
         */
        gate?: Gate | undefined
        /**
         * Per-sender limits shared by every isolate (`senderLimit(env.SENDER_LIMIT, …)`): one transaction in
         * flight per sender, a refusal after reverts; without it they are counted per isolate.
         */
        senders?: SenderGate | undefined
      }
    | undefined
  /** Blocks a payment's block needs, counting itself, before it settles (default 1: Tempo blocks are final). */
  confirmations?: number | undefined
  /** Timeout of each RPC request in ms (default 10,000). */
  timeoutMs?: number | undefined
  /** How long verification waits for a receipt before answering 503, in ms (default 30,000). */
  receiptTimeoutMs?: number | undefined
  /** Receipt polling interval in ms (default 500). */
  pollIntervalMs?: number | undefined
  /** The fetch the RPC client uses (the platform's by default). */
  fetch?: typeof fetch | undefined
}

/** A Tempo charge request as issued by this method. */
export type TempoRequest = v.InferOutput<typeof Request>
/** A Tempo credential payload. */
export type TempoPayload = v.InferOutput<typeof Payload>

const pathUsd: Address = '0x20c0000000000000000000000000000000000000'

/**
 * Creates the tempo method. Configuration is checked now, so a bad setting fails at start-up.
 * @example
 * const pay = payment({ realm, secret, methods: [tempo({ chainId: 4217, recipient: '0x…' })], store })
 * app.get('/report', pay.charge({ amount: '0.01' }), handler)
 */
export function tempo(config: TempoConfig): Method<TempoRequest, TempoPayload> {
  const settings = check(config)
  const node: Rpc = rpc({
    url: settings.rpcUrl,
    chainId: config.chainId,
    timeoutMs: config.timeoutMs,
    pollIntervalMs: config.pollIntervalMs,
    fetch: config.fetch,
  })
  const local = inFlight(settings.policy.maxInFlight)
  const gate: Gate = config.feePayer?.gate ?? { acquire: async () => local.acquire() }
  const senders: SenderGate = config.feePayer?.senders ?? localSenders(settings.policy)

  return define<TempoRequest, TempoPayload>({
    name: 'tempo',
    intents: ['charge'],
    request: Request,
    payload: Payload,
    charge(price: Price): TempoRequest {
      const token = findToken(settings.tokens, price.currency)
      let amount: bigint
      let splits: { amount: string; recipient: Address; memo?: Hex | undefined }[] | undefined
      try {
        amount = toBaseUnits(price.amount, token.decimals)
        splits = config.splits?.map((split) => ({
          amount: toBaseUnits(split.amount, token.decimals).toString(),
          recipient: split.recipient as Address,
          ...(split.memo ? { memo: split.memo as Hex } : {}),
        }))
      } catch (error) {
        if (error instanceof AmountError) throw new ConfigError(`tempo: ${error.message}`)
        throw error
      }
      if (splits && amount > 0n && splits.reduce((sum, s) => sum + BigInt(s.amount), 0n) >= amount) {
        throw new ConfigError(`tempo: splits leave nothing of ${price.amount} for the recipient`)
      }
      return {
        amount: amount.toString(),
        currency: token.address,
        recipient: config.recipient as Address,
        ...(price.description !== undefined ? { description: price.description } : {}),
        ...(price.externalId !== undefined ? { externalId: price.externalId } : {}),
        methodDetails: {
          chainId: config.chainId,
          ...(settings.sponsor ? { feePayer: true } : {}),
          ...(config.memo ? { memo: config.memo as Hex } : {}),
          // A zero-amount charge pays nobody: its proof carries no transfers.
          ...(splits && amount > 0n ? { splits } : {}),
          ...(settings.modes ? { supportedModes: [...settings.modes] } : {}),
        },
      }
    },
    display: tokenDisplay(settings.tokens),
    async verify(context): Promise<Settlement> {
      const { request, credential } = context
      if (request.methodDetails.chainId !== config.chainId) {
        throw new VerificationFailedError({ detail: `the challenge is for chain ${request.methodDetails.chainId}, this server settles on ${config.chainId}` })
      }
      const zero = BigInt(request.amount) === 0n
      // draft-tempo-charge-00, "Proof Payload": proofs for zero amounts only, and only proofs for them.
      if (zero !== (credential.payload.type === 'proof')) {
        throw new VerificationFailedError({ detail: zero ? 'a zero-amount charge takes a proof credential' : 'a proof settles only a zero-amount charge' })
      }
      const receipt = request.externalId !== undefined ? { externalId: request.externalId } : undefined
      const payload = credential.payload
      if (payload.type === 'proof') {
        const { reference } = await verifyProof({
          signature: payload.signature as Hex,
          source: credential.source,
          chainId: config.chainId,
          challengeId: context.challenge.id,
          realm: context.challenge.realm,
        })
        return { reference, receipt }
      }
      const reference = payload.type === 'transaction' ? await pull(context, payload.signature) : await push(context, payload.hash)
      return { reference, receipt }
    },
  })

  function modeOffered(request: TempoRequest, mode: Mode): boolean {
    return request.methodDetails.supportedModes?.includes(mode) ?? true
  }

  function expiresOf(context: VerifyContext<TempoRequest, TempoPayload>): Date {
    const expires = new Date(context.challenge.expires ?? Number.NaN)
    if (Number.isNaN(expires.getTime())) throw new VerificationFailedError({ detail: 'the challenge has no expiry' })
    return expires
  }

  async function pull(context: VerifyContext<TempoRequest, TempoPayload>, signature: string): Promise<string> {
    const { request, challenge } = context
    // draft-tempo-charge-00, "Transaction Verification" step 7.
    if (!modeOffered(request, 'pull')) throw new VerificationFailedError({ detail: 'transaction credentials are not accepted for this challenge' })
    const sponsored = request.methodDetails.feePayer === true
    // Only sponsoring needs the sender (the fee payer signs over it; limits and balances are the sender's): a payer
    // paying its own fee is checked by the chain, which refuses a transaction whose signature is not valid.
    const decoded: Envelope = sponsored ? decodeTransaction(signature) : decodeEnvelope(signature)
    const sender = sponsored ? (decoded as Decoded).sender : undefined
    const check = {
      terms: request,
      binding: { realm: challenge.realm, challengeId: challenge.id },
      chainId: config.chainId,
      expires: expiresOf(context),
      feePayer: sponsored,
      attribution: settings.attribution,
    }
    let final: { serialized: Hex; hash: Hex }
    if (sponsored) {
      if (!settings.sponsor) throw new ConfigurationError({ detail: 'tempo: a sponsored challenge reached a server without a fee payer' })
      final = await sponsor(decoded as Decoded, { ...check, policy: settings.policy, now: context.now, account: settings.sponsor, feeToken: settings.feeToken })
    } else {
      checkTransaction(decoded, check)
      final = finalTransaction(decoded.envelope)
    }
    const hash = final.hash.toLowerCase() as Hex
    // The hash is known before anything is sent: bind it to this challenge, and record it on the challenge as the
    // payment committed to, first. A later attempt then resolves this transaction and never broadcasts another.
    // It is mined before validBefore, so no challenge issued after that can take it (see settled()).
    await context.claimReference(hash, { keepUntil: referenceKeepUntil(decoded.envelope.validBefore! * 1000 + clockSkewMs) })
    await context.commit(hash)
    const deadline = Date.now() + settings.receiptTimeoutMs
    // A retry of a credential whose transaction already went out finds its receipt here.
    let found = await node.receipt(hash)
    if (!found) {
      if (decoded.envelope.validBefore! <= Math.floor(Date.now() / 1000)) {
        throw new VerificationFailedError({ detail: "the transaction's validity window has passed" })
      }
      // One sponsored transaction in flight per sender, until its receipt or its validBefore: several backed by
      // one balance cannot all pass the checks below and then revert at the sponsor's cost.
      if (sponsored) await senders.begin(sender!, hash, decoded.envelope.validBefore! * 1000)
      let sent = false
      let release: (() => Promise<void> | void) | undefined
      try {
        if (sponsored) {
          release = await gate.acquire()
          // A transaction that fails on-chain would still cost the sponsor its fee: the calls must succeed,
          // together (they are exactly the required transfers, so the payer must hold the whole amount).
          await node.simulate(sender!, decoded.envelope.calls as never)
          if ((await node.balance(request.currency, sender!)) < BigInt(request.amount)) {
            throw new VerificationFailedError({ detail: 'the transaction would revert: the payer cannot cover the amount' })
          }
          if ((await node.balance(settings.feeToken, settings.sponsor!.address)) < maxFee(decoded.envelope)) {
            throw new PaymentUnavailableError({ detail: 'the fee sponsor cannot cover this fee right now', retryAfter: 30 })
          }
        }
        sent = true
        await node.broadcast(final.serialized, hash)
        found = await node.waitForReceipt(hash, deadline)
      } catch (error) {
        // Nothing went out, or the node refused it: the sender's slot is free. A transaction whose fate is
        // unknown keeps it until its receipt is seen or its validBefore passes.
        if (sponsored && (!sent || !(error instanceof PaymentUnavailableError))) await senders.end(sender!, hash, 'not-sent')
        throw error
      } finally {
        await release?.()
      }
    }
    if (found.transactionHash.toLowerCase() !== hash) throw new VerificationFailedError({ detail: 'the node returned a receipt for another transaction' })
    // The outcome is known: a reverted sponsored transaction counts against its sender.
    if (sponsored) await senders.end(sender!, hash, found.status === 'success' || found.status === '0x1' ? 'success' : 'reverted')
    await node.waitForConfirmations(found, settings.confirmations, deadline)
    // The receipt settles: it must show the same transfers the calls promised.
    checkReceipt(found, check)
    await settled(context, found)
    return hash
  }

  /**
   * A transfer settles only a challenge issued before its block (a minute of clock skew allowed): an older
   * transfer cannot pay a newer challenge, so its reference can be forgotten once every challenge issued
   * before its block has expired. Returns the block time.
   */
  async function settled(context: VerifyContext<TempoRequest, TempoPayload>, found: { blockNumber: Hex; transactionHash: string }): Promise<number> {
    const blockTime = await node.blockTime(found.blockNumber)
    if (blockTime < context.issuedAt.getTime() - clockSkewMs) {
      throw new VerificationFailedError({ detail: `transaction ${found.transactionHash} was mined before this challenge was issued` })
    }
    return blockTime
  }

  async function push(context: VerifyContext<TempoRequest, TempoPayload>, rawHash: string): Promise<string> {
    const { request, challenge, credential } = context
    // draft-tempo-charge-00, "Hash Settlement / Limitations".
    if (request.methodDetails.feePayer === true) throw new VerificationFailedError({ detail: 'hash credentials are refused when the server pays the fee' })
    if (request.methodDetails.memo !== undefined || settings.attribution === 'optional') {
      throw new VerificationFailedError({
        detail: 'hash credentials are refused: this server does not require the challenge-bound memo, so a pushed hash could be claimed by anyone who saw it; send a transaction credential',
      })
    }
    if (!modeOffered(request, 'push')) throw new VerificationFailedError({ detail: 'hash credentials are not accepted for this challenge' })
    if (credential.source !== undefined) {
      const source = parseSource(credential.source)
      if (!source || source.chainId !== config.chainId) throw new VerificationFailedError({ detail: 'the credential source is not a did:pkh on this chain' })
    }
    const hash = rawHash.toLowerCase() as Hex
    const deadline = Date.now() + settings.receiptTimeoutMs
    let found = await node.receipt(hash)
    if (!found && !(await node.known(hash))) {
      // A transaction broadcast through another node may not have reached ours yet: the payer may retry.
      throw new PaymentUnavailableError({ detail: `transaction ${hash} is not known on chain ${config.chainId} yet`, retryAfter: 2 })
    }
    // The node has it: this is the payment committed to this challenge until its receipt says otherwise.
    await context.commit(hash)
    found ??= await node.waitForReceipt(hash, deadline)
    if (found.transactionHash.toLowerCase() !== hash) throw new VerificationFailedError({ detail: 'the node returned a receipt for another transaction' })
    await node.waitForConfirmations(found, settings.confirmations, deadline)
    checkReceipt(found, { terms: request, binding: { realm: challenge.realm, challengeId: challenge.id }, attribution: settings.attribution })
    const blockTime = await settled(context, found)
    // Accept only once the hash is bound to this challenge; a hash settles one challenge, until no challenge it
    // could pay (one issued before its block) is alive.
    await context.claimReference(hash, { keepUntil: referenceKeepUntil(blockTime + clockSkewMs) })
    return hash
  }
}

function findToken(tokens: readonly Token[], currency: string | undefined): Token {
  if (currency === undefined) return tokens[0]!
  const token = tokens.find((t) => sameAddress(t.address, currency) || t.symbol?.toLowerCase() === currency.toLowerCase())
  if (!token) throw new ConfigError(`tempo: currency "${currency}" is not an accepted token`)
  return token
}

function check(config: TempoConfig) {
  const fail = (message: string): never => {
    throw new ConfigError(`tempo: ${message}`)
  }
  if (!Number.isSafeInteger(config.chainId) || config.chainId < 1) fail('chainId must be a positive integer')
  if (!v.is(AddressSchema, config.recipient)) fail('recipient must be an address')
  const rpcUrl = (typeof config.rpcUrl === 'string' ? config.rpcUrl : config.rpcUrl?.[config.chainId]) ?? defaultRpcUrl(config.chainId)
  if (!rpcUrl) fail(`rpcUrl is required for chain ${config.chainId}`)
  const url = new URL(rpcUrl!)
  if (url.protocol !== 'https:' && !(url.protocol === 'http:' && isLoopback(url.hostname))) fail('rpcUrl must use https (plain http only on loopback)')
  const tokens = config.tokens ?? defaultTokens(config.chainId)
  if (tokens.length === 0) fail('tokens must not be empty')
  for (const token of tokens) {
    if (!v.is(AddressSchema, token.address)) fail(`token ${token.address} is not an address`)
    if (!Number.isInteger(token.decimals) || token.decimals < 0 || token.decimals > 36) fail(`token ${token.address} has invalid decimals`)
  }
  if (config.memo !== undefined && !v.is(Bytes32, config.memo)) fail('memo must be 32 bytes of hex')
  if (config.splits) {
    if (config.splits.length === 0 || config.splits.length > maxSplits) fail(`splits must hold 1 to ${maxSplits} entries`)
    for (const split of config.splits) {
      if (!v.is(AddressSchema, split.recipient)) fail('every split recipient must be an address')
      if (split.memo !== undefined && !v.is(Bytes32, split.memo)) fail('split memos must be 32 bytes of hex')
      if (!/^(0|[1-9][0-9]*)(\.[0-9]+)?$/.test(split.amount) || /^0(\.0*)?$/.test(split.amount)) fail('split amounts must be positive decimal strings')
    }
  }
  const attribution = config.attribution ?? 'required'
  if (attribution !== 'required' && attribution !== 'optional') fail('attribution must be "required" or "optional"')
  let signer: SponsorAccount | undefined
  if (config.feePayer) {
    try {
      signer = sponsorAccount(config.feePayer.privateKey as Hex)
    } catch {
      fail('feePayer.privateKey is not a valid private key')
    }
    if (config.feePayer.feeToken !== undefined && !v.is(AddressSchema, config.feePayer.feeToken)) fail('feePayer.feeToken must be an address')
  }
  const policy: SponsorPolicy = { ...defaultPolicy, ...config.feePayer?.policy }
  if (policy.maxGas <= 0n || policy.maxFeePerTransaction <= 0n) fail('feePayer.policy caps must be positive')
  if (!Number.isInteger(policy.maxValidityWindowSeconds) || policy.maxValidityWindowSeconds < 1) fail('feePayer.policy.maxValidityWindowSeconds must be a positive integer')
  for (const name of ['maxInFlight', 'maxInFlightPerSender', 'maxRevertsPerSender', 'revertWindowSeconds'] as const) {
    if (!Number.isInteger(policy[name]) || policy[name] < 1) fail(`feePayer.policy.${name} must be a positive integer`)
  }
  if (!Number.isInteger(policy.maxValidAfterSeconds) || policy.maxValidAfterSeconds < 0) fail('feePayer.policy.maxValidAfterSeconds must be a whole number')
  // Only the challenge-bound memo ties a pushed transfer to its payer's challenge: without it, anyone who saw
  // the hash could present it for their own challenge first (the credential `source` is not authenticated).
  const unbound = config.memo !== undefined ? 'memo' : attribution === 'optional' ? 'attribution "optional"' : undefined
  const modes = config.modes ?? (signer || unbound ? (['pull'] as const) : undefined)
  if (modes) {
    if (modes.length === 0 || modes.some((mode) => mode !== 'pull' && mode !== 'push')) fail('modes must list "pull" and/or "push"')
    if (signer && modes.includes('push')) fail('push cannot be offered when the server pays fees (a hash credential cannot be sponsored)')
    if (unbound && modes.includes('push')) {
      fail(`push cannot be offered with ${unbound}: push requires the challenge-bound memo, without which anyone who sees a pushed hash could claim it`)
    }
  }
  const confirmations = config.confirmations ?? 1
  if (!Number.isInteger(confirmations) || confirmations < 1) fail('confirmations must be a positive integer')
  return {
    rpcUrl: rpcUrl!,
    tokens,
    attribution,
    modes: modes ? [...new Set(modes)] : undefined,
    sponsor: signer,
    feeToken: (config.feePayer?.feeToken ?? pathUsd) as Address,
    policy,
    confirmations,
    receiptTimeoutMs: config.receiptTimeoutMs ?? 30_000,
  }
}
