import { HttpRequestError, InternalRpcError, RpcRequestError, TimeoutError, decodeFunctionData, encodeAbiParameters, encodeEventTopics, encodeFunctionData, keccak256, maxUint256, type Hex } from 'viem'
import { generatePrivateKey, privateKeyToAccount } from 'viem/accounts'
import { Abis } from 'viem/tempo'
import * as v from 'valibot'
import { SignatureEnvelope, TxEnvelopeTempo } from 'ox/tempo'
import { Address, P256, Secp256k1 } from 'ox'
import { describe, expect, it } from 'vitest'
import { PaymentInsufficientError, VerificationFailedError } from '../../src/core/Errors.js'
import { ConfigError } from '../../src/core/Server.js'
import { toBaseUnits } from '../../src/methods/tempo/amounts.js'
import { checkSponsorPolicy, cosign, defaultPolicy, inFlight, localSenders, maxFee } from '../../src/methods/tempo/fee-payer.js'
import { tempo } from '../../src/methods/tempo/method.js'
import { attributionMemo, isBoundMemo } from '../../src/methods/tempo/memo.js'
import { typedData, verifyProof } from '../../src/methods/tempo/proof.js'
import * as Receipt from '../../src/methods/tempo/receipt.js'
import { checkReceipt, receiptEffects } from '../../src/methods/tempo/receipt.js'
import { isTransient, rpc } from '../../src/methods/tempo/rpc.js'
import { Payload, Request } from '../../src/methods/tempo/schema.js'
import { callEffects, checkTransaction, decodeEnvelope, decodeTransaction, finalTransaction } from '../../src/methods/tempo/transaction.js'

const pathUsd = '0x20c0000000000000000000000000000000000000' as const
const recipient = '0x742d35Cc6634c0532925a3b844bC9e7595F8fE00' as const
const platform = '0xa1b2c3d4e5f6a1b2c3d4e5f6a1b2c3d4e5f6a1b2' as const
const binding = { realm: 'api.example.com', challengeId: 'challenge-123' }
const bound = attributionMemo(binding)
const now = new Date()
const expires = new Date(now.getTime() + 300_000)

const transfer = (to: string, amount: bigint, memo?: Hex) =>
  memo
    ? encodeFunctionData({ abi: Abis.tip20, functionName: 'transferWithMemo', args: [to as Hex, amount, memo] })
    : encodeFunctionData({ abi: Abis.tip20, functionName: 'transfer', args: [to as Hex, amount] })

/** Signs a Tempo transaction as a payer would; `sponsored` yields the 0x78 hand-off. */
function signed(options: {
  calls: { to: Hex; data: Hex; value?: bigint }[]
  chainId?: number
  validBefore?: number
  validAfter?: number
  sponsored?: boolean
  feeToken?: Hex
  nonceKey?: bigint
  gas?: bigint
}) {
  const key = generatePrivateKey()
  const envelope = TxEnvelopeTempo.from({
    chainId: options.chainId ?? 42431,
    calls: options.calls,
    gas: options.gas ?? 200_000n,
    maxFeePerGas: 20_000_000_000n,
    maxPriorityFeePerGas: 1n,
    nonceKey: options.nonceKey ?? maxUint256,
    nonce: 0n,
    validBefore: options.validBefore ?? Math.floor(now.getTime() / 1000) + 25,
    ...(options.validAfter !== undefined ? { validAfter: options.validAfter } : {}),
    ...(options.feeToken ? { feeToken: options.feeToken } : {}),
    ...(options.sponsored ? { feePayerSignature: null } : {}),
  })
  const signature = SignatureEnvelope.from(Secp256k1.sign({ payload: TxEnvelopeTempo.getSignPayload(envelope), privateKey: key }))
  const sender = privateKeyToAccount(key).address
  const serialized = options.sponsored
    ? TxEnvelopeTempo.serialize(envelope, { signature, format: 'feePayer', sender })
    : TxEnvelopeTempo.serialize(envelope, { signature })
  return { serialized, sender }
}

const request = { amount: '1000000', currency: pathUsd, recipient, methodDetails: { chainId: 42431 } }
const checks = (overrides: Partial<Parameters<typeof checkTransaction>[1]> = {}) => ({
  terms: request,
  binding,
  chainId: 42431,
  expires,
  feePayer: false,
  ...overrides,
})

describe('amounts', () => {
  it('behavior: decimal token units become base units exactly', () => {
    expect(toBaseUnits('0.01', 6)).toBe(10_000n)
    expect(toBaseUnits('1', 6)).toBe(1_000_000n)
    expect(toBaseUnits('123456789.123456', 6)).toBe(123_456_789_123_456n)
    expect(toBaseUnits('0', 6)).toBe(0n)
  })
  it('error: excess precision, signs, exponents and floats are refused', () => {
    for (const bad of ['0.0000001', '-1', '1e3', '.5', '01', ' 1', '0.1 ', '1,5']) expect(() => toBaseUnits(bad, 6)).toThrow()
  })
})

describe('memo', () => {
  it('behavior: the attribution memo matches the conformance vector layout', () => {
    expect(bound).toBe('0xef1ed712011ece072f76bd8b82350e00000000000000000000eb18f2d4402269')
    expect(isBoundMemo(bound, binding)).toBe(true)
  })
  it('behavior: a client fingerprint in bytes 15..24 is not checked', () => {
    expect(isBoundMemo(attributionMemo({ ...binding, client: 'my-app' }), binding)).toBe(true)
  })
  it('error: another challenge, realm, tag or version does not bind', () => {
    expect(isBoundMemo(bound, { ...binding, challengeId: 'challenge-124' })).toBe(false)
    expect(isBoundMemo(bound, { ...binding, realm: 'api.example.org' })).toBe(false)
    expect(isBoundMemo(`0x00${bound.slice(4)}`, binding)).toBe(false)
    expect(isBoundMemo(`${bound.slice(0, 10)}02${bound.slice(12)}`, binding)).toBe(false)
    expect(isBoundMemo('0x1234', binding)).toBe(false)
  })
})

describe('schema', () => {
  it('error: splits that leave nothing for the primary recipient are refused', () => {
    const splits = [{ amount: '1000000', recipient: platform }]
    expect(v.is(Request, { ...request, methodDetails: { chainId: 42431, splits } })).toBe(false)
    expect(v.is(Request, { ...request, methodDetails: { chainId: 42431, splits: [{ amount: '1', recipient: platform }] } })).toBe(true)
  })
  it('error: payloads of unknown type or with non-hex data are malformed', () => {
    expect(v.is(Payload, { type: 'hash', hash: '0x1234' })).toBe(false)
    expect(v.is(Payload, { type: 'transaction', signature: 'zz' })).toBe(false)
    expect(v.is(Payload, { type: 'other' })).toBe(false)
    expect(v.is(Payload, { type: 'hash', hash: `0x${'ab'.repeat(32)}` })).toBe(true)
  })
})

describe('charge', () => {
  const base = { chainId: 42431, recipient, rpcUrl: 'http://127.0.0.1:1' }
  it('behavior: prices in token units become base-unit requests with an explicit chain id', async () => {
    expect(await tempo(base).charge({ amount: '0.01', description: 'report', externalId: 'ord_1' })).toEqual({
      amount: '10000',
      currency: pathUsd,
      recipient,
      description: 'report',
      externalId: 'ord_1',
      methodDetails: { chainId: 42431 },
    })
  })
  it('behavior: splits, memo, modes and sponsorship come from the configuration', async () => {
    const memo = `0x${'11'.repeat(32)}`
    const method = tempo({
      ...base,
      memo,
      splits: [{ recipient: platform, amount: '0.05' }],
      feePayer: { privateKey: generatePrivateKey() },
    })
    expect((await method.charge({ amount: '1' })).methodDetails).toEqual({
      chainId: 42431,
      feePayer: true,
      memo,
      splits: [{ amount: '50000', recipient: platform }],
      supportedModes: ['pull'],
    })
    expect((await tempo({ ...base, modes: ['push'] }).charge({ amount: '1' })).methodDetails.supportedModes).toEqual(['push'])
  })
  it('behavior: a price may name an accepted token by symbol or address', async () => {
    const other = '0x20C000000000000000000000b9537d11c60E8b50'
    const method = tempo({ ...base, tokens: [{ address: pathUsd, decimals: 6, symbol: 'pathUSD' }, { address: other, decimals: 2, symbol: 'CENT' }] })
    expect((await method.charge({ amount: '1.5', currency: 'cent' })).amount).toBe('150')
    expect((await method.charge({ amount: '1.5', currency: other.toLowerCase() })).currency).toBe(other)
  })
  it('error: bad configuration and prices fail loudly', () => {
    expect(() => tempo({ ...base, recipient: 'nope' })).toThrow(ConfigError)
    expect(() => tempo({ chainId: 999999, recipient })).toThrow(/rpcUrl is required/)
    expect(() => tempo({ ...base, rpcUrl: 'http://rpc.example.com' })).toThrow(/https/)
    expect(() => tempo({ ...base, feePayer: { privateKey: generatePrivateKey() }, modes: ['push'] })).toThrow(/push/)
    expect(() => tempo(base).charge({ amount: '0.0000001' })).toThrow(ConfigError)
    expect(() => tempo(base).charge({ amount: '1', currency: 'EUR' })).toThrow(/not an accepted token/)
    expect(() => tempo({ ...base, splits: [{ recipient: platform, amount: '1' }] }).charge({ amount: '1' })).toThrow(/nothing/)
  })
  it('invariant 7: nobody can claim someone else\'s transfer — push with a server memo or optional attribution is a start-up error naming the setting', async () => {
    const memo = `0x${'11'.repeat(32)}`
    expect(() => tempo({ ...base, memo, modes: ['pull', 'push'] })).toThrow(/push cannot be offered with memo: push requires the challenge-bound memo/)
    expect(() => tempo({ ...base, attribution: 'optional', modes: ['push'] })).toThrow(/push cannot be offered with attribution "optional"/)
    // Without `modes`, those two settings offer pull only; the challenge-bound memo keeps both modes.
    expect((await tempo({ ...base, memo }).charge({ amount: '1' })).methodDetails.supportedModes).toEqual(['pull'])
    expect((await tempo({ ...base, attribution: 'optional' }).charge({ amount: '1' })).methodDetails.supportedModes).toEqual(['pull'])
    expect((await tempo({ ...base, modes: ['pull', 'push'] }).charge({ amount: '1' })).methodDetails.supportedModes).toEqual(['pull', 'push'])
  })
  it('behavior: the same price always yields the same request (the server compares them)', () => {
    const method = tempo(base)
    expect(JSON.stringify(method.charge({ amount: '2.5' }))).toBe(JSON.stringify(method.charge({ amount: '2.5' })))
  })
})

describe('transaction checks', () => {
  const pay = (amount = 1_000_000n, memo: Hex | null = bound, to: string = recipient) => ({ to: pathUsd as Hex, data: transfer(to, amount, memo ?? undefined) })

  it('behavior: a bound transferWithMemo of the exact amount passes, and the sender is recovered', () => {
    const tx = signed({ calls: [pay()] })
    const decoded = decodeTransaction(tx.serialized)
    expect(decoded.sender.toLowerCase()).toBe(tx.sender.toLowerCase())
    expect(() => checkTransaction(decoded, checks())).not.toThrow()
  })
  it('error: plain transfer, foreign memo, wrong recipient, wrong token are refused', () => {
    for (const call of [pay(1_000_000n, null), pay(1_000_000n, `0x${'ab'.repeat(32)}`), pay(1_000_000n, bound, platform), { ...pay(), to: platform as Hex }]) {
      expect(() => checkTransaction(decodeTransaction(signed({ calls: [call] }).serialized), checks())).toThrow(/no matching payment call found/)
    }
  })
  it('error: underpayment is payment-insufficient', () => {
    expect(() => checkTransaction(decodeTransaction(signed({ calls: [pay(999_999n)] }).serialized), checks())).toThrow(PaymentInsufficientError)
  })
  it('error: wrong chain, no expiry, validBefore after the challenge, extra calls and value are refused', () => {
    const cases: [Parameters<typeof signed>[0], RegExp][] = [
      [{ calls: [pay()], chainId: 4217 }, /chain 4217/],
      [{ calls: [pay()], validBefore: Math.floor(expires.getTime() / 1000) + 1 }, /after the challenge expires/],
      [{ calls: [pay(), pay()] }, /unauthorized extra calls/],
      [{ calls: [{ ...pay(), value: 1n }] }, /value/],
      [{ calls: [pay()], sponsored: true }, /fee payer/],
    ]
    for (const [options, message] of cases) {
      expect(() => checkTransaction(decodeTransaction(signed(options).serialized), checks())).toThrow(message)
    }
  })
  it('behavior: splits are matched in any order, each with its own memo rule', () => {
    const splitMemo = `0x${'de'.repeat(32)}` as Hex
    const terms = { ...request, methodDetails: { chainId: 42431, splits: [{ amount: '50000', recipient: platform, memo: splitMemo }] } }
    const calls = [{ to: pathUsd as Hex, data: transfer(platform, 50_000n, splitMemo) }, pay(950_000n)]
    expect(() => checkTransaction(decodeTransaction(signed({ calls }).serialized), checks({ terms }))).not.toThrow()
    const noSplitMemo = [{ to: pathUsd as Hex, data: transfer(platform, 50_000n) }, pay(950_000n)]
    expect(() => checkTransaction(decodeTransaction(signed({ calls: noSplitMemo }).serialized), checks({ terms }))).toThrow(/split 0/)
  })
  it('behavior: a server memo replaces the attribution memo; "optional" attribution accepts plain transfers', () => {
    const memo = `0x${'11'.repeat(32)}` as Hex
    const terms = { ...request, methodDetails: { chainId: 42431, memo } }
    expect(() => checkTransaction(decodeTransaction(signed({ calls: [pay(1_000_000n, memo)] }).serialized), checks({ terms }))).not.toThrow()
    expect(() => checkTransaction(decodeTransaction(signed({ calls: [pay()] }).serialized), checks({ terms }))).toThrow(/no matching/)
    const plain = decodeTransaction(signed({ calls: [pay(1_000_000n, null)] }).serialized)
    expect(() => checkTransaction(plain, checks({ attribution: 'optional' }))).not.toThrow()
  })
  it('error: something that is not a signed Tempo transaction is refused', () => {
    expect(() => decodeTransaction('0x02f8')).toThrow(/type 0x76/)
    expect(() => decodeTransaction('0x76c0')).toThrow(/decoded/)
    expect(() => decodeEnvelope('0x76c0')).toThrow(/decoded/)
  })
  it('behavior: the envelope decoded without its sender is the one the payer signed, and broadcasts as the same transaction', () => {
    const tx = signed({ calls: [pay()], feeToken: pathUsd })
    const withSender = decodeTransaction(tx.serialized)
    const { envelope } = decodeEnvelope(tx.serialized)
    expect(envelope.from).toBeUndefined()
    expect(envelope.signature).toEqual(withSender.envelope.signature)
    expect({ ...envelope, from: withSender.sender }).toEqual(withSender.envelope)
    expect(withSender.envelope).toEqual(TxEnvelopeTempo.deserialize(tx.serialized))
    expect(finalTransaction(envelope)).toEqual({ serialized: tx.serialized, hash: keccak256(tx.serialized) })
    expect(() => checkTransaction({ envelope, format: '0x76' }, checks())).not.toThrow()
  })
  it('behavior: transfer calls are decoded as viem decodes them; inexact encodings pay nobody', () => {
    const calls = [pay(7n), pay(9n, null, platform)]
    expect(callEffects(calls)).toEqual(
      calls.map(({ to, data }) => {
        const { args } = decodeFunctionData({ abi: Abis.tip20, data })
        return { token: to, to: (args[0] as string).toLowerCase(), amount: args[1], ...(args[2] ? { memo: args[2] } : {}) }
      }),
    )
    const memoCall = pay(7n)
    for (const data of [`${memoCall.data}00`, memoCall.data.slice(0, -64), `${memoCall.data.slice(0, 10)}01${memoCall.data.slice(12)}`, `0x95777d58${memoCall.data.slice(10)}`]) {
      expect(callEffects([{ ...memoCall, data: data as Hex }])).toEqual([])
    }
    expect(callEffects([{ ...memoCall, data: memoCall.data.toUpperCase().replace('0X', '0x') as Hex }])).toHaveLength(1)
  })
  it('behavior: a P256 sender signature (130 bytes) decodes as ox decodes it, its sender taken from its key', () => {
    const key = P256.randomPrivateKey()
    const envelope = TxEnvelopeTempo.from({ chainId: 42431, calls: [pay()], gas: 200_000n, maxFeePerGas: 1n, nonceKey: maxUint256, nonce: 0n, validBefore: Math.floor(now.getTime() / 1000) + 25, feeToken: pathUsd })
    const signature = SignatureEnvelope.from({ signature: P256.sign({ payload: TxEnvelopeTempo.getSignPayload(envelope), privateKey: key }), publicKey: P256.getPublicKey({ privateKey: key }), prehash: false })
    const serialized = TxEnvelopeTempo.serialize(envelope, { signature })
    const decoded = decodeTransaction(serialized)
    expect(decoded.envelope).toEqual(TxEnvelopeTempo.deserialize(serialized))
    expect(decoded.sender.toLowerCase()).toBe(Address.fromPublicKey(P256.getPublicKey({ privateKey: key })).toLowerCase())
    expect(finalTransaction(decodeEnvelope(serialized).envelope).serialized).toBe(serialized)
  })
  it('error: a sender named in the envelope must be its signer, in a 0x78 hand-off and in a 0x76 alike', () => {
    const tx = signed({ calls: [pay()], sponsored: true })
    const unsigned = TxEnvelopeTempo.deserialize(tx.serialized)
    const other = privateKeyToAccount(generatePrivateKey()).address
    const body = { ...unsigned, from: undefined }
    const handoff = TxEnvelopeTempo.serialize(body, { signature: unsigned.signature!, sender: other, format: 'feePayer' })
    // ox's types name a sender only for the hand-off format; a crafted 0x76 can carry one all the same.
    const plain = TxEnvelopeTempo.serialize(body, { signature: unsigned.signature!, sender: other } as never)
    expect([handoff.slice(0, 4), plain.slice(0, 4)]).toEqual(['0x78', '0x76'])
    for (const serialized of [handoff, plain]) expect(() => decodeTransaction(serialized)).toThrow(/names a sender other than its signer/)
    expect(decodeTransaction(tx.serialized).sender.toLowerCase()).toBe(tx.sender.toLowerCase())
  })
  it('error: a signature that recovers no key is refused where the sender is needed', () => {
    const tx = signed({ calls: [pay()] })
    const { envelope } = decodeEnvelope(tx.serialized)
    const broken = TxEnvelopeTempo.serialize(envelope, { signature: SignatureEnvelope.from({ r: 0n, s: 0n, yParity: 0 }) })
    expect(() => decodeTransaction(broken)).toThrow(/sender signature of the Tempo transaction is invalid/)
    expect(decodeEnvelope(broken).envelope.signature).toBeDefined()
  })
})

describe('fee sponsorship', () => {
  const sponsorKey = generatePrivateKey()
  const sponsorAccount = privateKeyToAccount(sponsorKey)
  const handoff = (overrides: Partial<Parameters<typeof signed>[0]> = {}) =>
    decodeTransaction(signed({ calls: [{ to: pathUsd, data: transfer(recipient, 1_000_000n, bound) }], sponsored: true, ...overrides }).serialized)

  it('behavior: the co-signed transaction carries the server fee token and the fee payer signature, and keeps the sender', async () => {
    const decoded = handoff()
    checkTransaction(decoded, checks({ feePayer: true }))
    const final = await cosign(decoded, { account: sponsorAccount, feeToken: pathUsd })
    expect(final.serialized.slice(0, 4)).toBe('0x76')
    const again = decodeTransaction(final.serialized)
    expect(again.sender).toBe(decoded.sender)
    expect(again.envelope.feeToken).toBe(pathUsd)
    const feePayer = Secp256k1.recoverAddress({
      payload: TxEnvelopeTempo.getFeePayerSignPayload({ ...again.envelope, feePayerSignature: undefined }, { sender: again.sender }),
      signature: again.envelope.feePayerSignature!,
    })
    expect(feePayer.toLowerCase()).toBe(sponsorAccount.address.toLowerCase())
    // Deterministic, so a retried credential maps to the same transaction hash.
    expect((await cosign(decoded, { account: sponsorAccount, feeToken: pathUsd })).hash).toBe(final.hash)
  })
  it('error: the sponsor policy refuses costly or long-lived envelopes', () => {
    expect(() => checkSponsorPolicy(handoff({ gas: 4_000_001n }), defaultPolicy, now)).toThrow(/gas limit exceeds/)
    expect(() => checkSponsorPolicy(handoff({ nonceKey: 7n }), defaultPolicy, now)).toThrow(/expiring nonce key/)
    expect(() => checkSponsorPolicy(handoff({ validBefore: Math.floor(now.getTime() / 1000) + 31 }), defaultPolicy, now)).toThrow(/validity window/)
    expect(() => checkSponsorPolicy(handoff({ feeToken: platform }), defaultPolicy, now)).toThrow(/fee_token/)
    expect(() => checkSponsorPolicy(handoff(), { ...defaultPolicy, maxFeePerTransaction: 3_999n }, now)).toThrow(/fee budget/)
    expect(maxFee({ gas: 200_000n, maxFeePerGas: 20_000_000_000n })).toBe(4_000n)
    expect(() => checkSponsorPolicy(handoff(), { ...defaultPolicy, maxFeePerTransaction: 4_000n }, now)).not.toThrow()
  })
  it('invariant 6: fee sponsorship cannot be drained — validAfter more than 30 s from now is refused (configurable)', () => {
    const at = (seconds: number) => Math.floor(now.getTime() / 1000) + seconds
    // With a validity window longer than the chain's 30 s (another chain, another policy), validAfter is bounded on its own.
    const policy = { ...defaultPolicy, maxValidityWindowSeconds: 600 }
    expect(() => checkSponsorPolicy(handoff({ validAfter: at(31), validBefore: at(120) }), policy, now)).toThrow(/validAfter is more than 30 s from now/)
    expect(() => checkSponsorPolicy(handoff({ validAfter: at(30), validBefore: at(120) }), policy, now)).not.toThrow()
    expect(() => checkSponsorPolicy(handoff({ validAfter: at(30), validBefore: at(120) }), { ...policy, maxValidAfterSeconds: 10 }, now)).toThrow(/more than 10 s/)
  })
  it('invariant 6: fee sponsorship cannot be drained — per-isolate sender limits: one in flight, refused after 3 reverts', async () => {
    const senders = localSenders(defaultPolicy)
    const until = Date.now() + 60_000
    await senders.begin(platform, '0x01', until)
    await senders.begin(platform, '0x01', until) // the same transaction again (a retry)
    await expect(senders.begin(platform, '0x02', until)).rejects.toMatchObject({ status: 503, retryAfter: 2 })
    await senders.begin(recipient, '0x02', until) // another sender
    for (const hash of ['0x01', '0x03', '0x03', '0x04']) {
      await senders.begin(platform, hash, until)
      await senders.end(platform, hash, hash === '0x04' ? 'not-sent' : 'reverted')
    }
    // 0x03 reverted once (counted once): two reverts so far.
    await senders.begin(platform, '0x05', until)
    await senders.end(platform, '0x05', 'reverted')
    await expect(senders.begin(platform, '0x06', until)).rejects.toMatchObject({ status: 402, detail: expect.stringMatching(/refused: 3 sponsored transactions from this sender reverted within 24 hours/) })
  })
  it('behavior: the in-flight cap refuses with a retryable error and frees slots once', () => {
    const limiter = inFlight(1)
    const release = limiter.acquire()
    expect(() => limiter.acquire()).toThrow(/capacity/)
    release()
    release()
    expect(limiter.count).toBe(0)
    limiter.acquire()
    expect(limiter.count).toBe(1)
  })
})

describe('receipt checks', () => {
  const [transferTopic] = encodeEventTopics({ abi: Abis.tip20, eventName: 'Transfer' })
  const log = (event: 'Transfer' | 'TransferWithMemo', to: string, amount: bigint, memo?: Hex, token: string = pathUsd) => ({
    address: token,
    topics: encodeEventTopics({
      abi: Abis.tip20,
      eventName: event,
      args: event === 'Transfer' ? { from: platform, to: to as Hex } : { from: platform, to: to as Hex, memo: memo! },
    } as never) as string[],
    data: encodeAbiParameters([{ type: 'uint256' }], [amount]),
  })
  const receiptOf = (logs: ReturnType<typeof log>[], status = '0x1') => ({ transactionHash: `0x${'11'.repeat(32)}`, status, logs })

  it('behavior: the Transfer + TransferWithMemo pair of one transferWithMemo counts once, with its memo', () => {
    const effects = receiptEffects([log('Transfer', recipient, 5n), log('TransferWithMemo', recipient, 5n, bound)])
    expect(effects).toHaveLength(1)
    expect(effects[0]!.memo).toBe(bound)
    expect(transferTopic).toBe('0xddf252ad1be2c89b69c2b068fc378daa952ba7f163c4a11628f55a4df523b3ef')
  })
  it('behavior: logs are read with the TIP-20 event topics; a log with other topics, another amount size or a dirty address word pays nothing', () => {
    expect([Receipt.transferTopic, Receipt.transferWithMemoTopic]).toEqual([transferTopic, encodeEventTopics({ abi: Abis.tip20, eventName: 'TransferWithMemo' })[0]])
    const good = log('TransferWithMemo', recipient, 5n, bound)
    expect(receiptEffects([good])).toEqual([{ token: pathUsd, to: recipient.toLowerCase(), amount: 5n, memo: bound }])
    expect(receiptEffects([{ ...good, topics: good.topics.map((t) => t.toUpperCase().replace('0X', '0x')) }])).toHaveLength(1)
    const dirty = `0x01${good.topics[2]!.slice(4)}`
    for (const bad of [
      { ...good, topics: good.topics.slice(0, 3) },
      { ...good, topics: [...good.topics, bound] },
      { ...good, topics: [good.topics[0]!, good.topics[1]!, dirty, good.topics[3]!] },
      { ...good, data: `${good.data}00` },
      { ...good, data: good.data.slice(0, -2) },
      { ...good, topics: [`0x${'00'.repeat(32)}`, ...good.topics.slice(1)] },
    ]) {
      expect(receiptEffects([bad])).toEqual([])
    }
  })
  it('behavior: a paired bound transfer settles; the reference is the transaction hash', () => {
    const receipt = receiptOf([log('Transfer', recipient, 1_000_000n), log('TransferWithMemo', recipient, 1_000_000n, bound)])
    expect(checkReceipt(receipt, { terms: request, binding })).toEqual({ reference: receipt.transactionHash })
  })
  it('error: reverted, underpaid, wrong token and a plain transfer next to an unrelated memo log are refused', () => {
    const good = [log('Transfer', recipient, 1_000_000n), log('TransferWithMemo', recipient, 1_000_000n, bound)]
    expect(() => checkReceipt(receiptOf(good, '0x0'), { terms: request, binding })).toThrow(/reverted/)
    expect(() => checkReceipt(receiptOf([log('TransferWithMemo', recipient, 10n, bound)]), { terms: request, binding })).toThrow(PaymentInsufficientError)
    expect(() => checkReceipt(receiptOf([log('TransferWithMemo', recipient, 1_000_000n, bound, platform)]), { terms: request, binding })).toThrow(VerificationFailedError)
    // A bound memo on a 1-unit transfer does not lend its binding to a plain full-amount transfer.
    const mixed = [log('Transfer', recipient, 1_000_000n), log('Transfer', recipient, 1n), log('TransferWithMemo', recipient, 1n, bound)]
    expect(() => checkReceipt(receiptOf(mixed), { terms: request, binding })).toThrow()
  })
})

describe('proof', () => {
  const account = privateKeyToAccount(generatePrivateKey())
  const parameters = { chainId: 42431, challengeId: 'proof-challenge-id', realm: 'api.example.com', account: account.address }
  const source = `did:pkh:eip155:42431:${account.address}`
  const sign = (version: 1 | 2 | 3) => account.signTypedData(typedData(version, parameters) as never)

  it('behavior: versions 3 (mppx 0.11) and 2 (conformance vector) verify; the reference is the challenge id', async () => {
    for (const version of [2, 3] as const) {
      expect(await verifyProof({ signature: await sign(version), source, chainId: 42431, challengeId: parameters.challengeId, realm: parameters.realm })).toEqual({
        reference: parameters.challengeId,
        payer: account.address,
      })
    }
  })
  it('error: version 1 does not bind the realm and is refused by name', async () => {
    await expect(verifyProof({ signature: await sign(1), source, chainId: 42431, challengeId: parameters.challengeId, realm: parameters.realm })).rejects.toThrow(/version 1/)
  })
  it('error: another realm, challenge, chain or signer is refused', async () => {
    const signature = await sign(3)
    const base = { signature, source, chainId: 42431, challengeId: parameters.challengeId, realm: parameters.realm }
    await expect(verifyProof({ ...base, realm: 'evil.example.com' })).rejects.toThrow(/does not match/)
    await expect(verifyProof({ ...base, challengeId: 'other' })).rejects.toThrow(/does not match/)
    await expect(verifyProof({ ...base, source: `did:pkh:eip155:4217:${account.address}` })).rejects.toThrow(/chain 4217/)
    await expect(verifyProof({ ...base, source: `did:pkh:eip155:42431:${platform}` })).rejects.toThrow(/does not match/)
    await expect(verifyProof({ ...base, source: undefined })).rejects.toThrow(/did:pkh/)
  })
})

describe('rpc error classification', () => {
  const url = 'http://rpc.example'
  it('behavior: no answer, timeouts, 408/429/5xx and node overload are transient (503, credential kept)', () => {
    expect(isTransient(new HttpRequestError({ url }))).toBe(true)
    expect(isTransient(new HttpRequestError({ url, status: 502 }))).toBe(true)
    expect(isTransient(new HttpRequestError({ url, status: 429 }))).toBe(true)
    expect(isTransient(new TimeoutError({ body: {}, url }))).toBe(true)
    expect(isTransient(new RpcRequestError({ body: {}, error: { code: -32000, message: 'upstream down' }, url, status: 503 }))).toBe(true)
    expect(isTransient(new InternalRpcError(new Error('boom')))).toBe(true)
    expect(isTransient(new TypeError('fetch failed'))).toBe(true)
  })
  it('behavior: a node refusing the transaction or a bad request is not transient', () => {
    expect(isTransient(new RpcRequestError({ body: {}, error: { code: -32000, message: 'nonce too low' }, url }))).toBe(false)
    expect(isTransient(new HttpRequestError({ url, status: 400 }))).toBe(false)
    expect(isTransient(new Error('other'))).toBe(false)
  })
})

describe('rpc transport', () => {
  // A node answering over `fetch` as configured: what the method makes of each kind of answer.
  const nodeAnswering = (answer: (call: { method: string; id: number }, init: RequestInit) => Response | Promise<Response>, url = 'http://127.0.0.1:8545') => {
    const seen: RequestInit[] = []
    const node = rpc({
      url,
      chainId: 42431,
      timeoutMs: 200,
      fetch: (async (_input: RequestInfo | URL, init?: RequestInit) => {
        seen.push(init!)
        return answer(JSON.parse(String(init!.body)), init!)
      }) as typeof fetch,
    })
    return { node, seen }
  }
  const json = (value: unknown, init: ResponseInit = {}) => new Response(JSON.stringify(value), { ...init, headers: { 'content-type': 'application/json' } })
  const result = (call: { id: number }, value: unknown) => json({ jsonrpc: '2.0', id: call.id, result: value })

  it('behavior: a result is read, with or without a declared length; the call is one JSON-RPC POST', async () => {
    const { node, seen } = nodeAnswering((call) => result(call, { timestamp: '0x10' }))
    expect(await node.blockTime('0x1')).toBe(16_000)
    expect(seen[0]!.method).toBe('POST')
    expect(JSON.parse(String(seen[0]!.body))).toMatchObject({ jsonrpc: '2.0', method: 'eth_getBlockByNumber', params: ['0x1', false] })
    const text = JSON.stringify({ jsonrpc: '2.0', id: 0, result: { timestamp: '0x20' } })
    const declared = nodeAnswering(() => new Response(text, { headers: { 'content-type': 'application/json', 'content-length': String(text.length) } }))
    expect(await declared.node.blockTime('0x1')).toBe(32_000)
  })
  it('behavior: 5xx, overload codes, no answer and timeouts are a 503 with Retry-After; a refusal names the node message', async () => {
    const transient = [
      () => json({ error: 'down' }, { status: 503 }),
      (call: { id: number }) => json({ jsonrpc: '2.0', id: call.id, error: { code: -32005, message: 'limit exceeded' } }),
      () => Promise.reject(new TypeError('fetch failed')),
      (_call: unknown, init: RequestInit) => new Promise<Response>((_resolve, reject) => init.signal!.addEventListener('abort', () => reject(init.signal!.reason))),
    ]
    for (const answer of transient) {
      await expect(nodeAnswering(answer).node.blockTime('0x1')).rejects.toMatchObject({ status: 503, retryAfter: 2 })
    }
    const refusing = nodeAnswering((call) =>
      call.method === 'eth_chainId'
        ? result(call, '0xa5bf')
        : call.method === 'eth_sendRawTransaction'
          ? json({ jsonrpc: '2.0', id: call.id, error: { code: -32000, message: 'nonce too low' } })
          : result(call, null),
    )
    await expect(refusing.node.broadcast('0x76', '0x01')).rejects.toThrow(/the network refused the transaction: nonce too low/)
  })
  it('error: refused RPC credentials are a configuration error; an oversized answer is refused; URL credentials become Basic auth', async () => {
    await expect(nodeAnswering(() => new Response('no', { status: 401 })).node.blockTime('0x1')).rejects.toMatchObject({ status: 500, problem: 'configuration-error' })
    const huge = nodeAnswering(() => new Response('{}', { headers: { 'content-length': String(11 * 1024 * 1024) } }))
    await expect(huge.node.blockTime('0x1')).rejects.toThrow(/exceeded the size/)
    const { node, seen } = nodeAnswering((call) => result(call, { timestamp: '0x1' }), 'http://user:p%40ss@127.0.0.1:8545')
    await node.blockTime('0x1')
    expect((seen[0]!.headers as Record<string, string>).authorization).toBe(`Basic ${btoa('user:p@ss')}`)
  })
})
