/**
 * @module The fee sponsor's signing account from its private key, with ox's secp256k1 alone: viem's
 * `privateKeyToAccount` brings transaction, message and typed-data signing the sponsor never uses into the bundle.
 */
import type { Address, Hex } from 'viem'
import * as OxAddress from 'ox/Address'
import * as Secp256k1 from 'ox/Secp256k1'
import * as Signature from 'ox/Signature'

/** What the sponsor needs of an account: its address and a signature over a hash (a viem LocalAccount fits). */
export type SponsorAccount = { address: Address; sign?: ((parameters: { hash: Hex }) => Promise<Hex>) | undefined }

/**
 * The account of a private key; throws when the key is not a valid secp256k1 private key.
 * @example
 * const account = sponsorAccount(env.TEMPO_SPONSOR_KEY)
 * const signature = await account.sign({ hash })
 */
export function sponsorAccount(privateKey: Hex): SponsorAccount & { sign: (parameters: { hash: Hex }) => Promise<Hex> } {
  const address = OxAddress.fromPublicKey(Secp256k1.getPublicKey({ privateKey }))
  return { address, sign: async ({ hash }) => Signature.toHex(Secp256k1.sign({ payload: hash, privateKey })) }
}
