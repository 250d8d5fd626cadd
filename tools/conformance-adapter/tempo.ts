/**
 * Conformance adapter commands for the tempo method. Each reads a vector's `input` and answers the value of its
 * `expected`, or throws the PaymentError the worker would (the adapter reports it as `verification_error`).
 * They run the same functions the worker's verify step runs: `checkReceipt`, `decodeTransaction` +
 * `checkTransaction`, `sponsor` (policy, call check, co-signature) and the proof typed data.
 */
import { type Hex, maxUint256 } from 'viem'
import { privateKeyToAccount } from 'viem/accounts'
import * as v from 'valibot'
import { AccessList, Secp256k1 } from 'ox'
import { SignatureEnvelope, TxEnvelopeTempo } from 'ox/tempo'
import { VerificationFailedError } from '../../src/core/Errors.js'
import { type SponsorPolicy, defaultPolicy, sponsor } from '../../src/methods/tempo/fee-payer.js'

// The cosign vectors are written against the reference SDK's sponsor policy (gas up to 2,000,000, a validity window
// up to 600 s: `now+60` passes, `now+1800` and 2,000,001 gas fail). Our defaults are sized for Tempo's T4 gas costs
// and the chain's 30 s bound on expiring nonces (see defaultPolicy), so the vectors' policy is set explicitly: the
// vectors check that a policy is enforced, not its numbers.
const vectorPolicy: SponsorPolicy = { ...defaultPolicy, maxGas: 2_000_000n, maxValidityWindowSeconds: 600 }
import { typedData } from '../../src/methods/tempo/proof.js'
import { checkReceipt } from '../../src/methods/tempo/receipt.js'
import { checkTransaction, decodeTransaction } from '../../src/methods/tempo/transaction.js'

/** Default chain when a vector's request names none (draft-tempo-charge-00, "Method Details"). */
const defaultChainId = 42431
/** Lifetime the server gives a challenge; cosign vectors carry no expiry, so the adapter supplies it. */
const challengeLifetimeMs = 300_000

const Terms = v.looseObject({
  amount: v.string(),
  currency: v.string(),
  recipient: v.string(),
  methodDetails: v.optional(
    v.looseObject({
      chainId: v.optional(v.number()),
      feePayer: v.optional(v.boolean()),
      memo: v.optional(v.string()),
      splits: v.optional(v.array(v.object({ amount: v.string(), recipient: v.string(), memo: v.optional(v.string()) }))),
    }),
  ),
})

const Log = v.object({ address: v.string(), topics: v.array(v.string()), data: v.string() })
const Receipt = v.object({ transactionHash: v.string(), status: v.string(), logs: v.array(Log) })

const CredentialInput = v.object({
  credential: v.object({
    challenge: v.looseObject({ id: v.string(), realm: v.string(), expires: v.optional(v.string()), request: Terms }),
    payload: v.looseObject({ type: v.string(), hash: v.optional(v.string()), signature: v.optional(v.string()) }),
  }),
  receipt: v.optional(Receipt),
})

/** `tempo.receipt.verify`: a hash credential settled by the vector's receipt. */
async function receiptVerify(input: unknown) {
  const { credential, receipt } = v.parse(CredentialInput, input)
  if (!receipt) throw new VerificationFailedError({ detail: 'no receipt for the transaction' })
  const { challenge, payload } = credential
  if (payload.hash !== undefined && payload.hash.toLowerCase() !== receipt.transactionHash.toLowerCase()) {
    throw new VerificationFailedError({ detail: 'the receipt is for another transaction' })
  }
  const { reference } = checkReceipt(receipt, { terms: challenge.request, binding: { realm: challenge.realm, challengeId: challenge.id } })
  return { status: 'success', reference }
}

/**
 * `tempo.transaction.verify`: a transaction credential checked before broadcast, then settled by its receipt.
 * A payload that is not a decodable Tempo transaction goes straight to the receipt-log check.
 */
async function transactionVerify(input: unknown) {
  const { credential, receipt } = v.parse(CredentialInput, input)
  const { challenge, payload } = credential
  const binding = { realm: challenge.realm, challengeId: challenge.id }
  let decoded: ReturnType<typeof decodeTransaction> | undefined
  try {
    decoded = decodeTransaction(payload.signature ?? '')
  } catch {
    decoded = undefined
  }
  if (decoded) {
    const details = challenge.request.methodDetails
    checkTransaction(decoded, {
      terms: challenge.request,
      binding,
      chainId: details?.chainId ?? defaultChainId,
      expires: new Date(challenge.expires ?? Number.NaN),
      feePayer: details?.feePayer === true,
    })
  }
  if (!receipt) throw new VerificationFailedError({ detail: 'no receipt for the transaction' })
  const { reference } = checkReceipt(receipt, { terms: challenge.request, binding })
  return { status: 'success', reference }
}

const Call = v.object({ to: v.string(), value: v.optional(v.union([v.number(), v.string()])), data: v.optional(v.string()) })
const CosignInput = v.object({
  payerPrivateKey: v.string(),
  feePayerPrivateKey: v.string(),
  feeToken: v.string(),
  challenge: v.optional(v.looseObject({ id: v.string(), realm: v.string(), expires: v.optional(v.string()) })),
  request: Terms,
  transaction: v.object({
    chainId: v.number(),
    maxPriorityFeePerGas: v.union([v.number(), v.string()]),
    maxFeePerGas: v.union([v.number(), v.string()]),
    gasLimit: v.union([v.number(), v.string()]),
    calls: v.array(Call),
    accessList: v.array(v.tuple([v.string(), v.array(v.string())])),
    nonceKey: v.union([v.literal('max'), v.number(), v.string()]),
    nonce: v.union([v.number(), v.string()]),
    validBefore: v.union([v.number(), v.string()]),
    feeToken: v.nullable(v.string()),
  }),
})

function seconds(value: number | string, now: Date): number {
  const relative = typeof value === 'string' ? /^now\+(\d+)$/.exec(value) : null
  return relative ? Math.floor(now.getTime() / 1000) + Number(relative[1]) : Number(value)
}

/** `tempo.fee_payer.cosign`: the payer signs a sponsorship hand-off; the server checks it and co-signs. */
async function feePayerCosign(input: unknown) {
  const parsed = v.parse(CosignInput, input)
  const { transaction: tx } = parsed
  const now = new Date()
  const envelope = TxEnvelopeTempo.from({
    chainId: tx.chainId,
    maxPriorityFeePerGas: BigInt(tx.maxPriorityFeePerGas),
    maxFeePerGas: BigInt(tx.maxFeePerGas),
    gas: BigInt(tx.gasLimit),
    calls: tx.calls.map((call) => ({ to: call.to as Hex, value: BigInt(call.value ?? 0), ...(call.data ? { data: call.data as Hex } : {}) })),
    accessList: AccessList.fromTupleList(tx.accessList as never),
    nonceKey: tx.nonceKey === 'max' ? maxUint256 : BigInt(tx.nonceKey),
    nonce: BigInt(tx.nonce),
    validBefore: seconds(tx.validBefore, now),
    ...(tx.feeToken ? { feeToken: tx.feeToken as Hex } : {}),
    feePayerSignature: null,
  })
  const payer = privateKeyToAccount(parsed.payerPrivateKey as Hex)
  const signature = Secp256k1.sign({ payload: TxEnvelopeTempo.getSignPayload(envelope), privateKey: parsed.payerPrivateKey as Hex })
  // The 0x78 hand-off a sponsored client sends (it carries the sender, and any fee token the client put in).
  const handoff = TxEnvelopeTempo.serialize(envelope, { signature: SignatureEnvelope.from(signature), format: 'feePayer', sender: payer.address })
  const challenge = parsed.challenge ?? { id: '', realm: '' }
  const final = await sponsor(decodeTransaction(handoff), {
    terms: parsed.request,
    binding: { realm: challenge.realm, challengeId: challenge.id },
    chainId: parsed.request.methodDetails?.chainId ?? defaultChainId,
    expires: challenge.expires ? new Date(challenge.expires) : new Date(now.getTime() + challengeLifetimeMs),
    feePayer: true,
    policy: vectorPolicy,
    now,
    account: privateKeyToAccount(parsed.feePayerPrivateKey as Hex),
    feeToken: parsed.feeToken as Hex,
  })
  const cosigned = TxEnvelopeTempo.deserialize(final.serialized as TxEnvelopeTempo.Serialized)
  return {
    type: final.serialized.slice(0, 4),
    feeToken: cosigned.feeToken,
    feePayerSignaturePresent: Boolean(cosigned.feePayerSignature),
    accessListLength: cosigned.accessList?.length ?? 0,
    callCount: cosigned.calls.length,
  }
}

const ProofInput = v.object({ chainId: v.number(), challengeId: v.string(), realm: v.string() })

/** `tempo.proof.typed_data`: the version-2 typed data of a zero-amount proof. */
async function proofTypedData(input: unknown) {
  return typedData(2, v.parse(ProofInput, input))
}

/** The tempo commands of the conformance adapter. */
export const commands: Record<string, (input: unknown) => Promise<unknown>> = {
  'tempo.receipt.verify': receiptVerify,
  'tempo.transaction.verify': transactionVerify,
  'tempo.fee_payer.cosign': feePayerCosign,
  'tempo.proof.typed_data': proofTypedData,
}
