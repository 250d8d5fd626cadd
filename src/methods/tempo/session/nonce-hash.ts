/**
 * @module The expiring-nonce hash of a channel-opening Tempo transaction, part of the v2 descriptor and so of
 * the channel id (draft-tempo-session-00, "Channel Descriptor"; TIP-1034).
 */
import { type Hex, concat, keccak256 } from 'viem'
import { TxEnvelopeTempo } from 'ox/tempo'
import type { Decoded } from '../transaction.js'

/**
 * keccak256(encodeForSigning(tx) ‖ sender): the sender-signed body with the fee-payer signature nulled, so a
 * fee payer's co-signature (added after the payer signed) does not change it.
 * @example
 * expiringNonceHash(decodeTransaction(payload.transaction))
 */
export function expiringNonceHash(decoded: Decoded): Hex {
  const { from: _handoffSender, ...envelope } = decoded.envelope
  const body = envelope.feePayerSignature === undefined ? envelope : { ...envelope, feePayerSignature: null }
  return keccak256(concat([TxEnvelopeTempo.encodeForSigning(body as TxEnvelopeTempo.TxEnvelopeTempo), decoded.sender]))
}
