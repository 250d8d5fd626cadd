/**
 * @module The payee's own escrow transaction (settle, close) as a Tempo transaction built with ox: one call, an
 * expiring nonce, fees in a TIP-20 token, gas and fee caps from the node. Keeps viem's Tempo chain definitions
 * (formatters, serializers) out of a server worker.
 */
import type { Address, Hex } from 'viem'
import type { SponsorAccount } from '../sponsor-account.js'
import * as Signature from 'ox/Signature'
import * as TxEnvelopeTempo from 'ox/tempo/TxEnvelopeTempo'

/** The nonce key of Tempo's expiring nonces (2^256 - 1): no nonce to track, replay bounded by `validBefore`. */
const expiringNonceKey = (1n << 256n) - 1n

/** What the node answers for the caps: `request` is the RPC client's call. */
type Request = <T>(method: string, params: unknown[]) => Promise<T>

/**
 * Signs one escrow call from `account`: gas is the node's estimate with headroom (the estimate leaves out the sender
 * signature check, and a node may leave out the storage a payout creates: about 250k gas each under T4 rules; only
 * the gas used is charged), the fee cap twice the latest base fee.
 * @example
 * const serialized = await signPayeeCall(request, account, { chainId: 42431, to: escrow, data, feeToken, validBefore: now + 25 })
 */
export async function signPayeeCall(
  request: Request,
  account: SponsorAccount,
  call: { chainId: number; to: Address; data: Hex; feeToken: Address; validBefore: number; baseFeePerGas: bigint },
): Promise<Hex> {
  const estimate = BigInt(await request<Hex>('eth_estimateGas', [{ from: account.address, to: call.to, data: call.data }]))
  const envelope = TxEnvelopeTempo.from({
    chainId: call.chainId,
    calls: [{ to: call.to, data: call.data }],
    nonceKey: expiringNonceKey,
    nonce: 0n,
    validBefore: call.validBefore,
    feeToken: call.feeToken,
    gas: (estimate * 12n) / 10n + 5_000n + 2n * 250_000n,
    maxFeePerGas: call.baseFeePerGas * 2n + 1n,
    maxPriorityFeePerGas: 0n,
  })
  if (!account.sign) throw new TypeError('the payee account cannot sign hashes')
  const signature = await account.sign({ hash: TxEnvelopeTempo.getSignPayload(envelope) })
  return TxEnvelopeTempo.serialize(envelope, { signature: Signature.fromHex(signature) })
}
