/**
 * @module The MPP attribution memo that binds a TIP-20 `transferWithMemo` to one challenge and realm
 * (conformance vectors tempo-receipt-verification / tempo-transaction-verification; layout in the
 * conformance README):
 *
 * | bytes  | content                                              |
 * |--------|------------------------------------------------------|
 * | 0..3   | keccak256("mpp")[0..3]                               |
 * | 4      | version 0x01                                         |
 * | 5..14  | keccak256(realm)[0..9]                               |
 * | 15..24 | client fingerprint or zeros (not checked)            |
 * | 25..31 | keccak256(challengeId)[0..6]                         |
 */
import { type Hex, concatHex, keccak256, sliceHex, stringToBytes } from 'viem'

/**
 * The 4-byte MPP tag.
 * @example
 * sliceHex(memo, 0, 4) === tag
 */
export const tag = sliceHex(keccak256(stringToBytes('mpp')), 0, 4)

/**
 * The memo layout version this module writes and reads.
 * @example
 * sliceHex(memo, 4, 5) === version
 */
export const version = '0x01'

const noClient = `0x${'00'.repeat(10)}` as Hex

function fingerprint(value: string, size: number): Hex {
  return sliceHex(keccak256(stringToBytes(value)), 0, size)
}

// A server names one realm (or a few), and each challenge id is checked twice (the calls, then the receipt): their
// fingerprints are hashed once. Bounded: the memo is cleared when full.
const fingerprints = new Map<string, string>()
function cachedFingerprint(value: string, size: number): string {
  const key = `${size}:${value}`
  let found = fingerprints.get(key)
  if (found === undefined) {
    if (fingerprints.size >= 256) fingerprints.clear()
    found = fingerprint(value, size).slice(2)
    fingerprints.set(key, found)
  }
  return found
}

/**
 * Builds the attribution memo for a challenge (what a paying client writes).
 * @example
 * attributionMemo({ realm: 'api.example.com', challengeId: 'challenge-123' }) // '0xef1ed71201…eb18f2d4402269'
 */
export function attributionMemo(parameters: { realm: string; challengeId: string; client?: string | undefined }): Hex {
  const client = parameters.client === undefined ? noClient : fingerprint(parameters.client, 10)
  return concatHex([tag, version, fingerprint(parameters.realm, 10), client, fingerprint(parameters.challengeId, 7)])
}

/**
 * Whether a memo is an MPP attribution memo bound to this realm and challenge. Bytes 15..24 may carry a
 * client fingerprint and are ignored.
 * @example
 * isBoundMemo(memo, { realm: 'api.example.com', challengeId: 'challenge-123' }) // true
 */
export function isBoundMemo(memo: string, binding: { realm: string; challengeId: string }): boolean {
  if (!/^0x[0-9a-fA-F]{64}$/.test(memo)) return false
  const lower = memo.toLowerCase()
  return (
    lower.slice(0, 10) === tag &&
    lower.slice(10, 12) === version.slice(2) &&
    lower.slice(12, 32) === cachedFingerprint(binding.realm, 10) &&
    lower.slice(52, 66) === cachedFingerprint(binding.challengeId, 7)
  )
}
