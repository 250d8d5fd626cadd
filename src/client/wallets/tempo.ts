/**
 * @module The paying side of Tempo charges (draft-tempo-charge-00): a wallet for `paymentFetch` that reads a
 * `tempo`/`charge` challenge, builds the TIP-20 transfers it asks for in one Tempo transaction (type 0x76)
 * with an expiring nonce, and hands it to the server (pull), broadcasts it itself (push), or signs an
 * EIP-712 proof for a zero amount.
 */
import { type Address, type Hex, createClient, http } from 'viem'
import type { LocalAccount } from 'viem/accounts'
import { prepareTransactionRequest, sendRawTransactionSync, signTransaction } from 'viem/actions'
import { Actions } from 'viem/tempo'
import * as v from 'valibot'
import type { Challenge } from '../../core/Challenge.js'
import { chainFor } from '../../methods/tempo/chains.js'
import { attributionMemo } from '../../methods/tempo/memo.js'
import { acceptedVersions, typedData } from '../../methods/tempo/proof.js'
import { type Mode, Request, splitTotal } from '../../methods/tempo/schema.js'
import type { Wallet } from '../fetch.js'

/** Options of `tempoWallet`. */
export type TempoWalletOptions = {
  /** The payer's key (a viem local account). */
  account: LocalAccount
  /** JSON-RPC endpoint of the Tempo chain the payer is on. */
  rpcUrl: string
  /** The chain the payer pays on; asked from the endpoint once when absent. Challenges for other chains are refused. */
  chainId?: number | undefined
  /** How non-zero charges are paid: `pull` (the server broadcasts) or `push` (the wallet does); default pull if offered. */
  mode?: Mode | undefined
  /** TIP-20 token the payer pays fees in when the server does not sponsor them (default: the charged token). */
  feeToken?: Address | undefined
  /** Longest time a signed payment stays valid, in seconds (default 25, and never past the challenge expiry). */
  validitySeconds?: number | undefined
  /** The fetch the RPC client uses (the platform's by default). */
  fetch?: typeof fetch | undefined
}

/**
 * Raised when the wallet will not pay a challenge (wrong chain, malformed request, expired, mode not offered).
 * @example
 * if (error instanceof TempoWalletError) console.warn(`not paid: ${error.message}`)
 */
export class TempoWalletError extends Error {
  override readonly name = 'TempoWalletError'
}

/** The credential payload a Tempo wallet produces. */
export type TempoWalletPayload = { type: 'transaction'; signature: Hex } | { type: 'hash'; hash: Hex } | { type: 'proof'; signature: Hex }

/**
 * A wallet that pays `tempo` charges with a local key.
 * @example
 * const wallet = tempoWallet({ account: privateKeyToAccount(key), rpcUrl: 'https://rpc.moderato.tempo.xyz', chainId: 42431 })
 * const pay = paymentFetch({ wallets: [wallet], maxAmount: { '0x20c0000000000000000000000000000000000000': '1000000' } })
 */
export function tempoWallet(options: TempoWalletOptions): Wallet & { pay: (challenge: Challenge) => Promise<{ payload: TempoWalletPayload; source: string }> } {
  const transport = http(options.rpcUrl, { retryCount: 0, ...(options.fetch ? { fetchFn: options.fetch } : {}) })
  const validity = options.validitySeconds ?? 25
  if (!Number.isInteger(validity) || validity < 1) throw new TempoWalletError('validitySeconds must be a positive integer')
  let chainId: Promise<number> | undefined = options.chainId !== undefined ? Promise.resolve(options.chainId) : undefined
  const ownChain = () =>
    (chainId ??= createClient({ transport })
      .request({ method: 'eth_chainId' })
      .then((id) => Number(id))
      .catch((error: unknown) => {
        chainId = undefined
        throw error
      }))

  return {
    method: 'tempo',
    intents: ['charge'],
    async pay(challenge) {
      if (challenge.method !== 'tempo' || challenge.intent !== 'charge') {
        throw new TempoWalletError(`a tempo wallet pays tempo charges, not ${challenge.method} ${challenge.intent}`)
      }
      const parsed = v.safeParse(Request, challenge.request)
      if (!parsed.success) throw new TempoWalletError(`the challenge request is not a valid Tempo charge: ${parsed.issues[0].message}`)
      const request = parsed.output
      const chain = await ownChain()
      // Signing for another chain could spend funds somewhere the payer did not intend.
      if (request.methodDetails.chainId !== chain) {
        throw new TempoWalletError(`the challenge asks for chain ${request.methodDetails.chainId}, this wallet pays on chain ${chain}`)
      }
      const account = options.account
      const source = `did:pkh:eip155:${chain}:${account.address}`
      const client = createClient({ chain: chainFor(chain, options.rpcUrl), transport, account })

      // draft-tempo-charge-00, "Proof Payload": a zero amount is paid with a signature, never a transfer.
      if (BigInt(request.amount) === 0n) {
        if (!account.signTypedData) throw new TempoWalletError('the account cannot sign typed data')
        const data = typedData(acceptedVersions[0], { chainId: chain, challengeId: challenge.id, realm: challenge.realm, account: account.address })
        const signature = await account.signTypedData(data as Parameters<NonNullable<LocalAccount['signTypedData']>>[0])
        return { payload: { type: 'proof', signature }, source }
      }

      const sponsored = request.methodDetails.feePayer === true
      const mode = pickMode(options.mode, request.methodDetails.supportedModes, sponsored)
      const validBefore = deadline(challenge, validity)

      // draft-tempo-charge-00, "Split Payments / Client Behavior": the primary recipient gets the remainder
      // with the server's memo (or the challenge-bound attribution memo); each split its amount and memo.
      const primary = BigInt(request.amount) - splitTotal(request.methodDetails.splits)
      const memo = request.methodDetails.memo ?? attributionMemo({ realm: challenge.realm, challengeId: challenge.id })
      const calls = [
        Actions.token.transfer.call(client, { token: request.currency, to: request.recipient, amount: primary, memo }),
        ...(request.methodDetails.splits ?? []).map((split) =>
          Actions.token.transfer.call(client, { token: request.currency, to: split.recipient, amount: BigInt(split.amount), ...(split.memo ? { memo: split.memo } : {}) }),
        ),
      ]

      // Expiring nonce (nonce key 2^256-1, nonce 0): the transaction cannot be replayed after validBefore.
      const prepared = (await prepareTransactionRequest(client, {
        account,
        calls,
        nonceKey: 'expiring',
        validBefore,
        // draft-tempo-charge-00, "Client Requirements": a USD fee token unless the server pays the fee.
        ...(sponsored ? {} : { feeToken: options.feeToken ?? request.currency }),
      } as never)) as Record<string, unknown> & { gas?: bigint }
      // The node's estimate leaves out the sender's signature check and prices each batched call after the first
      // as a transfer to an existing holder; a split to a new holder creates its balance (~267k gas on T4).
      prepared.gas = (prepared.gas ?? 0n) + 5_000n + 275_000n * BigInt(calls.length - 1)
      if (sponsored) {
        // draft-tempo-charge-00, "Fee Payment": sign the hand-off with no fee token and a placeholder fee-payer signature.
        delete prepared.feeToken
        delete prepared.feePayerSignature
        prepared.feePayer = true
      }
      const signed = (await signTransaction(client, prepared as never)) as Hex
      if (mode === 'pull') return { payload: { type: 'transaction', signature: signed }, source }

      const receipt = (await sendRawTransactionSync(client, { serializedTransaction: signed, throwOnReceiptRevert: false } as never)) as { status: string; transactionHash: Hex }
      if (receipt.status !== 'success') throw new TempoWalletError(`the payment transaction ${receipt.transactionHash} reverted`)
      return { payload: { type: 'hash', hash: receipt.transactionHash }, source }
    },
  }
}

function pickMode(wanted: Mode | undefined, offered: readonly Mode[] | undefined, sponsored: boolean): Mode {
  // draft-tempo-charge-00, "Hash Settlement / Limitations": a sponsored charge cannot be paid by hash.
  const modes = (offered ?? ['pull', 'push']).filter((mode) => !(sponsored && mode === 'push'))
  if (wanted) {
    if (!modes.includes(wanted)) throw new TempoWalletError(`the challenge does not accept ${wanted} payments (it offers ${modes.join(', ') || 'none'})`)
    return wanted
  }
  const mode = modes.includes('pull') ? 'pull' : modes[0]
  if (!mode) throw new TempoWalletError('the challenge offers no payment mode this wallet can use')
  return mode
}

// draft-tempo-charge-00, "Request Schema": validBefore no later than the challenge expiry.
function deadline(challenge: Challenge, validity: number): number {
  const now = Math.floor(Date.now() / 1000)
  const expires = challenge.expires ? Math.floor(Date.parse(challenge.expires) / 1000) : Number.NaN
  if (Number.isNaN(expires)) throw new TempoWalletError('the challenge has no expiry to bound the payment by')
  const validBefore = Math.min(now + validity, expires)
  if (validBefore <= now) throw new TempoWalletError('the challenge has expired')
  return validBefore
}
