import { type Address, type Hex, encodeAbiParameters, encodeFunctionData, maxUint256, toFunctionSelector, zeroAddress } from 'viem'
import { generatePrivateKey, privateKeyToAccount } from 'viem/accounts'
import { Channel, SignatureEnvelope, TxEnvelopeTempo } from 'ox/tempo'
import { Secp256k1 } from 'ox'
import { Session } from 'mppx/tempo'
import * as v from 'valibot'
import { describe, expect, it } from 'vitest'
import { VerificationFailedError } from '../../src/core/Errors.js'
import { cosign } from '../../src/methods/tempo/fee-payer.js'
import { decodeTransaction } from '../../src/methods/tempo/transaction.js'
import { escrowAbi, maxUint96, tip20ChannelReserve } from '../../src/methods/tempo/session/abi.js'
import {
  type Descriptor,
  channelId,
  checkDescriptor,
  descriptorSchema,
  descriptorTuple,
  expectedSigner,
  sameDescriptor,
} from '../../src/methods/tempo/session/descriptor.js'
import { checkOpenTransaction, checkTopUpTransaction } from '../../src/methods/tempo/session/funding.js'
import { expiringNonceHash } from '../../src/methods/tempo/session/nonce-hash.js'

const chainId = 42431
const pathUsd = '0x20c0000000000000000000000000000000000000' as Address
const otherToken = '0x20c0000000000000000000000000000000000001' as Address
const payee = '0x742d35cc6634c0532925a3b844bc9e7595f8fe00' as Address
const operator = '0xa1b2c3d4e5f6a1b2c3d4e5f6a1b2c3d4e5f6a1b2' as Address
const salt = `0x${'ab'.repeat(32)}` as Hex
const now = new Date()
const expires = new Date(now.getTime() + 300_000)
const check = { escrow: tip20ChannelReserve, chainId, recipient: payee, currency: pathUsd, expires, feePayer: false }

const descriptor: Descriptor = {
  payer: '0x1111111111111111111111111111111111111111',
  payee,
  operator: zeroAddress,
  token: pathUsd,
  salt,
  authorizedSigner: zeroAddress,
  expiringNonceHash: `0x${'bb'.repeat(32)}`,
}

const openData = (overrides: Partial<{ payee: Address; operator: Address; token: Address; deposit: bigint; signer: Address }> = {}) =>
  encodeFunctionData({
    abi: escrowAbi,
    functionName: 'open',
    args: [overrides.payee ?? payee, overrides.operator ?? zeroAddress, overrides.token ?? pathUsd, overrides.deposit ?? 1_000_000n, salt, overrides.signer ?? zeroAddress],
  })

/** Signs a Tempo transaction offline as a payer would; `sponsored` leaves the fee to a fee payer. */
function signed(options: {
  calls: { to: Address; data: Hex; value?: bigint }[]
  key?: Hex
  chainId?: number
  validBefore?: number | null
  sponsored?: boolean
}) {
  const key = options.key ?? generatePrivateKey()
  const envelope = TxEnvelopeTempo.from({
    chainId: options.chainId ?? chainId,
    calls: options.calls,
    gas: 1_500_000n,
    maxFeePerGas: 20_000_000_000n,
    maxPriorityFeePerGas: 1n,
    nonceKey: maxUint256,
    nonce: 0n,
    ...(options.validBefore === null ? {} : { validBefore: options.validBefore ?? Math.floor(now.getTime() / 1000) + 60 }),
    ...(options.sponsored ? { feePayerSignature: null } : { feeToken: pathUsd }),
  })
  const signature = SignatureEnvelope.from(Secp256k1.sign({ payload: TxEnvelopeTempo.getSignPayload(envelope), privateKey: key }))
  const sender = privateKeyToAccount(key).address
  const serialized = options.sponsored
    ? TxEnvelopeTempo.serialize(envelope, { signature, format: 'feePayer', sender })
    : TxEnvelopeTempo.serialize(envelope, { signature })
  return { serialized, sender, envelope: TxEnvelopeTempo.from(envelope, { signature }) }
}

describe('channel descriptor', () => {
  it('the channel id matches ox/tempo and mppx for the precompile', () => {
    expect(channelId(descriptor, { escrow: tip20ChannelReserve, chainId })).toBe(Channel.computeId(descriptor, { chainId }))
    expect(channelId(descriptor, { escrow: tip20ChannelReserve, chainId })).toBe(
      Session.Precompile.Channel.computeId({ ...descriptor, chainId, escrow: tip20ChannelReserve }),
    )
  })

  it('the schema normalises case and refuses malformed fields', () => {
    const mixed = { ...descriptor, payee: '0x742d35Cc6634C0532925a3b844Bc9e7595f8fE00', salt: salt.toUpperCase().replace('0X', '0x') }
    const parsed = v.parse(descriptorSchema, mixed)
    expect(parsed).toEqual(descriptor)
    expect(v.safeParse(descriptorSchema, { ...descriptor, salt: '0x1234' }).success).toBe(false)
    expect(v.safeParse(descriptorSchema, { ...descriptor, payer: 'tempox0x1111111111111111111111111111111111111111' }).success).toBe(false)
    const { operator: _missing, ...partial } = descriptor
    expect(v.safeParse(descriptorSchema, partial).success).toBe(false)
  })

  it('checkDescriptor accepts the matching descriptor and refuses each mismatch', () => {
    const id = channelId(descriptor, check)
    checkDescriptor(descriptor, { ...check, channelId: id })
    checkDescriptor(descriptor, { ...check, channelId: id.toUpperCase().replace('0X', '0x') as Hex })
    const refusals: [string, () => void][] = [
      ['wrong channel', () => checkDescriptor(descriptor, { ...check, channelId: `0x${'11'.repeat(32)}` })],
      ['another escrow', () => checkDescriptor(descriptor, { ...check, escrow: '0x9d136eEa063eDE5418A6BC7bEafF009bBb6CFa70', channelId: id })],
      ['another chain', () => checkDescriptor(descriptor, { ...check, chainId: 4217, channelId: id })],
      ['another payee', () => checkDescriptor({ ...descriptor, payee: operator }, { ...check, channelId: channelId({ ...descriptor, payee: operator }, check) })],
      ['another token', () => checkDescriptor({ ...descriptor, token: otherToken }, { ...check, channelId: channelId({ ...descriptor, token: otherToken }, check) })],
      ['an operator nobody advertised', () => checkDescriptor({ ...descriptor, operator }, { ...check, channelId: channelId({ ...descriptor, operator }, check) })],
      ['no operator when one is advertised', () => checkDescriptor(descriptor, { ...check, operator, channelId: id })],
    ]
    for (const [name, run] of refusals) expect(run, name).toThrow(VerificationFailedError)
    const withOperator = { ...descriptor, operator }
    checkDescriptor(withOperator, { ...check, operator, channelId: channelId(withOperator, check) })
  })

  it('the expected signer is the authorized signer, or the payer when it is zero', () => {
    expect(expectedSigner(descriptor)).toBe(descriptor.payer)
    expect(expectedSigner({ ...descriptor, authorizedSigner: operator })).toBe(operator)
    expect(sameDescriptor(descriptor, { ...descriptor, payee: payee.toUpperCase().replace('0X', '0x') as Address })).toBe(true)
    expect(sameDescriptor(descriptor, { ...descriptor, salt: `0x${'cd'.repeat(32)}` })).toBe(false)
  })
})

describe('expiring nonce hash', () => {
  it('is keccak256(encodeForSigning(tx) ‖ sender), as mppx computes it', () => {
    const { serialized, sender, envelope } = signed({ calls: [{ to: tip20ChannelReserve, data: openData() }] })
    const decoded = decodeTransaction(serialized)
    expect(expiringNonceHash(decoded)).toBe(Session.Precompile.Channel.computeExpiringNonceHash(envelope as never, { sender }))
  })

  it('a fee payer co-signature does not change it', async () => {
    const { serialized } = signed({ calls: [{ to: tip20ChannelReserve, data: openData() }], sponsored: true })
    const decoded = decodeTransaction(serialized)
    const sponsor = privateKeyToAccount(generatePrivateKey())
    const final = await cosign(decoded, { account: sponsor, feeToken: pathUsd })
    expect(expiringNonceHash(decodeTransaction(final.serialized))).toBe(expiringNonceHash(decoded))
  })
})

describe('open transaction', () => {
  it('derives the descriptor and channel id from the sender and the calldata', () => {
    const key = generatePrivateKey()
    const { serialized, sender } = signed({ key, calls: [{ to: tip20ChannelReserve, data: openData({ deposit: 2_500_000n }) }] })
    const decoded = decodeTransaction(serialized)
    const opened = checkOpenTransaction(decoded, check)
    expect(opened.deposit).toBe(2_500_000n)
    expect(opened.descriptor).toEqual({ ...descriptor, payer: sender.toLowerCase(), expiringNonceHash: expiringNonceHash(decoded) })
    expect(opened.channelId).toBe(Channel.computeId(opened.descriptor, { chainId }))
  })

  it('carries an authorized signer and an advertised operator into the descriptor', () => {
    const delegate = privateKeyToAccount(generatePrivateKey()).address
    const { serialized } = signed({ calls: [{ to: tip20ChannelReserve, data: openData({ operator, signer: delegate }) }] })
    const opened = checkOpenTransaction(decodeTransaction(serialized), { ...check, operator })
    expect(opened.descriptor.operator).toBe(operator)
    expect(opened.descriptor.authorizedSigner).toBe(delegate.toLowerCase())
  })

  it('accepts a sponsored open only when the challenge offers a fee payer', () => {
    const { serialized } = signed({ calls: [{ to: tip20ChannelReserve, data: openData() }], sponsored: true })
    checkOpenTransaction(decodeTransaction(serialized), { ...check, feePayer: true })
    expect(() => checkOpenTransaction(decodeTransaction(serialized), check)).toThrow(/fee payer/)
    const plain = signed({ calls: [{ to: tip20ChannelReserve, data: openData() }] })
    expect(() => checkOpenTransaction(decodeTransaction(plain.serialized), { ...check, feePayer: true })).toThrow(/sponsorship/)
  })

  it('refuses an open that does not match the challenge', () => {
    // uint256 in place of uint96: the same selector with a deposit of 2^96.
    const selector = toFunctionSelector('open(address,address,address,uint96,bytes32,address)')
    const tooLarge = (selector +
      encodeAbiParameters(
        [{ type: 'address' }, { type: 'address' }, { type: 'address' }, { type: 'uint256' }, { type: 'bytes32' }, { type: 'address' }],
        [payee, zeroAddress, pathUsd, maxUint96 + 1n, salt, zeroAddress],
      ).slice(2)) as Hex
    const topUp = encodeFunctionData({ abi: escrowAbi, functionName: 'topUp', args: [descriptorTuple(descriptor), 5n] })
    const call = { to: tip20ChannelReserve, data: openData() }
    const cases: [string, ReturnType<typeof signed>, Partial<typeof check & { operator: Address }>?][] = [
      ['two calls', signed({ calls: [call, call] })],
      ['no call to the escrow', signed({ calls: [{ to: pathUsd, data: openData() }] })],
      ['another escrow', signed({ calls: [call] }), { escrow: '0x9d136eEa063eDE5418A6BC7bEafF009bBb6CFa70' }],
      ['a topUp instead', signed({ calls: [{ to: tip20ChannelReserve, data: topUp }] })],
      ['garbage calldata', signed({ calls: [{ to: tip20ChannelReserve, data: '0xdeadbeef' }] })],
      ['value', signed({ calls: [{ ...call, value: 1n }] })],
      ['another payee', signed({ calls: [{ to: tip20ChannelReserve, data: openData({ payee: operator }) }] })],
      ['another token', signed({ calls: [{ to: tip20ChannelReserve, data: openData({ token: otherToken }) }] })],
      ['an operator nobody advertised', signed({ calls: [{ to: tip20ChannelReserve, data: openData({ operator }) }] })],
      ['no operator when one is advertised', signed({ calls: [call] }), { operator }],
      ['zero deposit', signed({ calls: [{ to: tip20ChannelReserve, data: openData({ deposit: 0n }) }] })],
      ['deposit over 2^96 - 1', signed({ calls: [{ to: tip20ChannelReserve, data: tooLarge }] })],
      ['another chain', signed({ calls: [call], chainId: 4217 })],
      ['no validBefore', signed({ calls: [call], validBefore: null })],
      ['valid past the challenge', signed({ calls: [call], validBefore: Math.floor(expires.getTime() / 1000) + 1 })],
    ]
    for (const [name, tx, overrides] of cases) {
      expect(() => checkOpenTransaction(decodeTransaction(tx.serialized), { ...check, ...overrides }), name).toThrow(VerificationFailedError)
    }
  })
})

describe('topUp transaction', () => {
  const key = generatePrivateKey()
  const payer = privateKeyToAccount(key).address.toLowerCase() as Address
  const channel = { ...descriptor, payer }
  const topUpCall = (d: Descriptor, amount: bigint) => ({
    to: tip20ChannelReserve,
    data: encodeFunctionData({ abi: escrowAbi, functionName: 'topUp', args: [descriptorTuple(d), amount] }),
  })

  it('accepts a topUp of the stored channel by its payer', () => {
    const { serialized } = signed({ key, calls: [topUpCall(channel, 500_000n)] })
    expect(checkTopUpTransaction(decodeTransaction(serialized), { ...check, descriptor: channel })).toEqual({ additionalDeposit: 500_000n })
  })

  it('refuses a topUp of another channel, from another sender, of nothing, or beyond 2^96 - 1', () => {
    const selector = toFunctionSelector('topUp((address,address,address,address,bytes32,address,bytes32),uint96)')
    const tooLarge = (selector +
      encodeAbiParameters(
        [{ type: 'tuple', components: escrowAbi[2].inputs[0].components }, { type: 'uint256' }],
        [descriptorTuple(channel), maxUint96 + 1n],
      ).slice(2)) as Hex
    const cases: [string, ReturnType<typeof signed>][] = [
      ['another channel', signed({ key, calls: [topUpCall({ ...channel, salt: `0x${'cd'.repeat(32)}` }, 5n)] })],
      ['another sender', signed({ calls: [topUpCall(channel, 5n)] })],
      ['zero', signed({ key, calls: [topUpCall(channel, 0n)] })],
      ['over 2^96 - 1', signed({ key, calls: [{ to: tip20ChannelReserve, data: tooLarge }] })],
      ['an open instead', signed({ key, calls: [{ to: tip20ChannelReserve, data: openData() }] })],
      ['two calls', signed({ key, calls: [topUpCall(channel, 5n), topUpCall(channel, 5n)] })],
    ]
    for (const [name, tx] of cases) {
      expect(() => checkTopUpTransaction(decodeTransaction(tx.serialized), { ...check, descriptor: channel }), name).toThrow(VerificationFailedError)
    }
  })
})
