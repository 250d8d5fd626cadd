/**
 * @module Zero-amount proofs: an EIP-712 signature by the `did:pkh` source over the challenge
 * (draft-tempo-charge-00, "Proof Payload"). Three shapes exist: the draft's version 1 `{challengeId}`,
 * the conformance vector's version 2 `{challengeId, realm}` and version 3 `{account, challengeId, realm}`
 * (what the mppx 0.11 client signs). Versions 2 and 3 bind the realm and are accepted; version 1 does not,
 * so a proof made for one server would pass at any other, and it is refused.
 */
import { type Address, type Hex, isAddress, recoverTypedDataAddress } from 'viem'
import { VerificationFailedError } from '../../core/Errors.js'
import { sameAddress } from './transfers.js'

/**
 * Proof versions this server accepts.
 * @example
 * acceptedVersions.includes(2) // true
 */
export const acceptedVersions = [3, 2] as const
export type ProofVersion = 1 | 2 | 3

const types = {
  1: { Proof: [{ name: 'challengeId', type: 'string' }] },
  2: {
    Proof: [
      { name: 'challengeId', type: 'string' },
      { name: 'realm', type: 'string' },
    ],
  },
  3: {
    Proof: [
      { name: 'account', type: 'address' },
      { name: 'challengeId', type: 'string' },
      { name: 'realm', type: 'string' },
    ],
  },
} as const

/**
 * The EIP-712 typed data of a proof in the given version.
 * @example
 * typedData(2, { chainId: 42431, challengeId: 'abc', realm: 'api.example.com' })
 */
export function typedData(version: ProofVersion, parameters: { chainId: number; challengeId: string; realm: string; account?: Address | undefined }) {
  const { chainId, challengeId, realm, account } = parameters
  const message =
    version === 1 ? { challengeId } : version === 2 ? { challengeId, realm } : { account: account ?? '0x0000000000000000000000000000000000000000', challengeId, realm }
  return {
    domain: { name: 'MPP', version: String(version), chainId },
    types: types[version],
    primaryType: 'Proof' as const,
    message,
  }
}

/**
 * Parses a `did:pkh:eip155:<chainId>:<address>` source.
 * @example
 * parseSource('did:pkh:eip155:42431:0xabc…') // { chainId: 42431, address: '0xabc…' }
 */
export function parseSource(source: string | undefined): { chainId: number; address: Address } | undefined {
  const match = /^did:pkh:eip155:(0|[1-9][0-9]{0,15}):(0x[0-9a-fA-F]{40})$/.exec(source ?? '')
  if (!match) return undefined
  const chainId = Number(match[1])
  if (!Number.isSafeInteger(chainId) || !isAddress(match[2]!, { strict: false })) return undefined
  return { chainId, address: match[2] as Address }
}

/**
 * Verifies a zero-amount proof: the source is a `did:pkh` on the challenge's chain and signed version 2 or 3
 * typed data for this challenge and realm. Returns the challenge id as the settlement reference.
 * @example
 * verifyProof({ signature, source, chainId: 42431, challengeId, realm })
 */
export async function verifyProof(parameters: { signature: Hex; source: string | undefined; chainId: number; challengeId: string; realm: string }): Promise<{ reference: string; payer: Address }> {
  const { signature, chainId, challengeId, realm } = parameters
  // draft-tempo-charge-00, "Proof Verification" steps 1-2.
  const source = parseSource(parameters.source)
  if (!source) throw new VerificationFailedError({ detail: 'a proof needs a did:pkh:eip155 source' })
  if (source.chainId !== chainId) throw new VerificationFailedError({ detail: `the proof source is on chain ${source.chainId}, the challenge on ${chainId}` })
  // Steps 3-4, for each accepted version.
  const signedBy = async (version: ProofVersion) => {
    try {
      const data = typedData(version, { chainId, challengeId, realm, account: source.address })
      return sameAddress(await recoverTypedDataAddress({ ...data, signature } as Parameters<typeof recoverTypedDataAddress>[0]), source.address)
    } catch {
      return false
    }
  }
  for (const version of acceptedVersions) {
    if (await signedBy(version)) return { reference: challengeId, payer: source.address }
  }
  if (await signedBy(1)) {
    throw new VerificationFailedError({ detail: 'proof version 1 does not bind the realm and is not accepted; sign version 2 or 3' })
  }
  throw new VerificationFailedError({ detail: 'the proof signature does not match its source' })
}
