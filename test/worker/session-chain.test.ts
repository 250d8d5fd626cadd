/**
 * Payment channels on the local session chain (anvil --network tempo --hardfork T4, the channel reserve stand-in
 * at the precompile address, the session shim in front): the payer's open, topUp, requestClose and withdraw, and the
 * payee's settle and close through the session method's chain client, with exact amounts on chain.
 */
import { env } from 'cloudflare:workers'
import { type Address, type Hex, decodeEventLog, encodeFunctionData, numberToHex, parseAbi } from 'viem'
import { generatePrivateKey, privateKeyToAccount } from 'viem/accounts'
import { beforeAll, describe, expect, it, onTestFinished } from 'vitest'
import { ChannelNotFoundError, InvalidSignatureError } from '../../src/core/Errors.js'
import { defaultPolicy } from '../../src/methods/tempo/fee-payer.js'
import { decodeTransaction } from '../../src/methods/tempo/transaction.js'
import { closeGracePeriodSeconds, escrowAbi, tip20ChannelReserve } from '../../src/methods/tempo/session/abi.js'
import { EscrowRevertError, sessionChain } from '../../src/methods/tempo/session/chain.js'
import { type Descriptor, descriptorTuple } from '../../src/methods/tempo/session/descriptor.js'
import { channelClosedIn, channelOpenedIn, closeRequestedIn, topUpIn } from '../../src/methods/tempo/session/events.js'
import { checkOpenTransaction, checkTopUpTransaction, sponsorFunding } from '../../src/methods/tempo/session/funding.js'
import { voucherDigest } from '../../src/methods/tempo/session/voucher.js'
import { increaseTime, privateChain, requestClose, sendSigned, signOpen, signTopUp, voucherFor, withdraw } from '../../src/testing/session-payer.js'
import { balanceOf, chainClient, chainId, fund, fundedAccount, pathUsd } from '../../src/testing/chain.js'

const chain = { url: env.TEST_SESSION_RPC_URL, chainId }
const client = chainClient(env.TEST_SESSION_RPC_URL)
const node = sessionChain({ url: chain.url, chainId, escrow: tip20ChannelReserve, pollIntervalMs: 100 })
const feeManager = '0xfeec000000000000000000000000000000000000'
const transferEvent = parseAbi(['event Transfer(address indexed from, address indexed to, uint256 amount)'])
const n = 0xfffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141n

type Receipt = { transactionHash: string; status: string; logs: readonly { address: string; topics: readonly string[]; data: string }[] }

/** The fee an account paid in a transaction: its pathUSD transfers to the fee manager. */
function feePaid(receipt: Receipt, account: Address): bigint {
  let fee = 0n
  for (const log of receipt.logs) {
    if (log.address.toLowerCase() !== pathUsd) continue
    try {
      const args = decodeEventLog({ abi: transferEvent, topics: log.topics as [Hex], data: log.data as Hex }).args as { from: Address; to: Address; amount: bigint }
      if (args.from.toLowerCase() === account.toLowerCase() && args.to.toLowerCase() === feeManager) fee += args.amount
    } catch {
      // Not a transfer.
    }
  }
  return fee
}

const receiptOf = (hash: Hex) => client.request({ method: 'eth_getTransactionReceipt', params: [hash] }) as Promise<Receipt>

/** Broadcasts a payer-signed open the way a server does: checked, then sent, then read back from its receipt. */
async function open(payer: ReturnType<typeof privateKeyToAccount>, payee: Address, deposit: bigint, on = { chain, node }) {
  const { chain, node } = on
  const signed = await signOpen(chain, payer, { payee, token: pathUsd, deposit })
  const check = { escrow: tip20ChannelReserve, chainId, recipient: payee, currency: pathUsd, expires: new Date(Date.now() + 60_000), feePayer: false }
  const opened = checkOpenTransaction(decodeTransaction(signed.serialized), check)
  expect(opened.descriptor).toEqual(signed.descriptor)
  expect(opened.channelId).toBe(signed.channelId)
  await node.rpc.broadcast(signed.serialized, signed.hash)
  const receipt = await node.rpc.waitForReceipt(signed.hash, Date.now() + 20_000)
  return { ...signed, receipt }
}

describe('a channel on the local chain', { timeout: 60_000 }, () => {
  const payer = privateKeyToAccount(generatePrivateKey())
  const payee = privateKeyToAccount(generatePrivateKey())
  const stranger = privateKeyToAccount(generatePrivateKey())
  let descriptor: Descriptor
  let id: Hex
  const payerFees: bigint[] = []
  const payeeFees: bigint[] = []
  let payerStart: bigint
  let payeeStart: bigint

  beforeAll(async () => {
    await fund(client, payer.address, 5_000_000n)
    await fund(client, payee.address, 1_000_000n)
    payerStart = await balanceOf(client, payer.address)
    payeeStart = await balanceOf(client, payee.address)
  })

  it('opens: the ChannelOpened event and the chain state match the descriptor derived from the transaction', async () => {
    const opened = await open(payer, payee.address, 1_000_000n)
    descriptor = opened.descriptor
    id = opened.channelId
    const event = channelOpenedIn(opened.receipt, { escrow: tip20ChannelReserve, channelId: id })
    expect(event.deposit).toBe(1_000_000n)
    expect(event.expiringNonceHash).toBe(descriptor.expiringNonceHash)
    expect(event.payer.toLowerCase()).toBe(payer.address.toLowerCase())
    payerFees.push(feePaid(opened.receipt, payer.address))
    expect(await node.requireChannel(descriptor)).toEqual({ deposit: 1_000_000n, settled: 0n, closeRequestedAt: 0 })
    expect(await balanceOf(client, tip20ChannelReserve)).toBeGreaterThanOrEqual(1_000_000n)
  })

  it("the escrow's voucher digest is ours", async () => {
    const abi = parseAbi(['function getVoucherDigest(bytes32 channelId, uint96 cumulativeAmount) view returns (bytes32)'])
    const data = encodeFunctionData({ abi, functionName: 'getVoucherDigest', args: [id, 123n] })
    const digest = await client.request({ method: 'eth_call', params: [{ to: tip20ChannelReserve, data }, 'latest'] } as never)
    expect(digest).toBe(voucherDigest({ channelId: id, cumulativeAmount: 123n }, { escrow: tip20ChannelReserve, chainId }))
  })

  it('settles a voucher: the payee receives the delta, and the same voucher again is refused without a fee', async () => {
    const voucher = await voucherFor(chain, payer, id, 300_000n)
    const settled = await node.settle(payee, descriptor, voucher)
    expect(settled).toMatchObject({ newSettled: 300_000n, deltaPaid: 300_000n })
    payeeFees.push(feePaid(await receiptOf(settled.txHash), payee.address))
    expect(await node.getChannel(descriptor)).toEqual({ deposit: 1_000_000n, settled: 300_000n, closeRequestedAt: 0 })
    const before = await balanceOf(client, payee.address)
    await expect(node.settle(payee, descriptor, voucher)).rejects.toSatisfy((e) => e instanceof EscrowRevertError && e.reason === 'AmountNotIncreasing')
    expect(await balanceOf(client, payee.address)).toBe(before)
  })

  it('the escrow itself refuses a high-s signature, a stranger, and a caller who is not the payee; it accepts 64-byte signatures', async () => {
    const voucher = await voucherFor(chain, payer, id, 400_000n)
    const s = BigInt(`0x${voucher.signature.slice(66, 130)}`)
    const v = Number.parseInt(voucher.signature.slice(130), 16)
    const high = `${voucher.signature.slice(0, 66)}${numberToHex(n - s, { size: 32 }).slice(2)}${v === 27 ? '1c' : '1b'}` as Hex
    const compact = `${voucher.signature.slice(0, 66)}${numberToHex((BigInt(v - 27) << 255n) | s, { size: 32 }).slice(2)}` as Hex
    const simulate = (from: Address, signature: Hex) =>
      client.request({
        method: 'eth_call',
        params: [{ from, to: tip20ChannelReserve, data: encodeFunctionData({ abi: escrowAbi, functionName: 'settle', args: [descriptorTuple(descriptor), 400_000n, signature] }) }, 'latest'],
      } as never)
    await expect(simulate(payee.address, high)).rejects.toThrow()
    await expect(simulate(stranger.address, voucher.signature)).rejects.toThrow()
    await expect(simulate(payee.address, voucher.signature)).resolves.toBe('0x')
    await expect(simulate(payee.address, compact)).resolves.toBe('0x')
    const forged = await voucherFor(chain, stranger, id, 400_000n)
    await expect(node.settle(payee, descriptor, forged)).rejects.toBeInstanceOf(InvalidSignatureError)
    await expect(node.settle(payee, descriptor, { ...voucher, signature: high })).rejects.toBeInstanceOf(InvalidSignatureError)
  })

  it('tops up: the deposit grows by the amount', async () => {
    const signed = await signTopUp(chain, payer, descriptor, 500_000n)
    const check = { escrow: tip20ChannelReserve, chainId, recipient: payee.address, currency: pathUsd, expires: new Date(Date.now() + 60_000), feePayer: false }
    expect(checkTopUpTransaction(decodeTransaction(signed.serialized), { ...check, descriptor })).toEqual({ additionalDeposit: 500_000n })
    const receipt = await sendSigned(chain, signed.serialized)
    expect(topUpIn(receipt, { escrow: tip20ChannelReserve, channelId: id })).toEqual({ additionalDeposit: 500_000n, newDeposit: 1_500_000n })
    payerFees.push(feePaid(receipt, payer.address))
    expect(await node.getChannel(descriptor)).toMatchObject({ deposit: 1_500_000n, settled: 300_000n })
  })

  it('closes capturing exactly the capture amount and refunding the rest; every balance adds up', async () => {
    const voucher = await voucherFor(chain, payer, id, 900_000n)
    const closed = await node.close(payee, descriptor, voucher, 700_000n)
    expect(closed).toMatchObject({ settledToPayee: 700_000n, refundedToPayer: 800_000n })
    payeeFees.push(feePaid(await receiptOf(closed.txHash), payee.address))
    expect(await node.getChannel(descriptor)).toEqual({ deposit: 0n, settled: 0n, closeRequestedAt: 0 })
    await expect(node.requireChannel(descriptor)).rejects.toBeInstanceOf(ChannelNotFoundError)
    const sum = (fees: bigint[]) => fees.reduce((a, b) => a + b, 0n)
    expect(sum(payerFees)).toBeGreaterThan(0n)
    expect(await balanceOf(client, payer.address)).toBe(payerStart - 700_000n - sum(payerFees))
    expect(await balanceOf(client, payee.address)).toBe(payeeStart + 700_000n - sum(payeeFees))
    await expect(node.close(payee, descriptor, voucher, 700_000n)).rejects.toBeInstanceOf(ChannelNotFoundError)
  })
})

describe('a forced close on a private chain (its clock moves)', { timeout: 90_000 }, () => {
  it('requestClose starts the grace period; the payee still settles in it; withdraw waits for its end and refunds the rest', async () => {
    const own = await privateChain(env.TEST_CHAIN_FACTORY_URL)
    onTestFinished(() => own.stop())
    const chain = { url: own.url, chainId }
    const client = chainClient(own.url)
    const node = sessionChain({ url: own.url, chainId, escrow: tip20ChannelReserve, pollIntervalMs: 100 })
    const payer = await fundedAccount(client, 3_000_000n)
    const payee = await fundedAccount(client, 1_000_000n)
    const opened = await open(payer, payee.address, 1_000_000n, { chain, node })
    const { descriptor, channelId } = opened
    const requested = await requestClose(chain, payer, descriptor)
    const { closeGraceEnd } = closeRequestedIn(requested, { escrow: tip20ChannelReserve, channelId })
    const state = await node.requireChannel(descriptor)
    expect(state.closeRequestedAt).toBeGreaterThan(0)
    expect(closeGraceEnd).toBe(BigInt(state.closeRequestedAt) + closeGracePeriodSeconds)

    const early = await withdraw(chain, payer, descriptor)
    expect(early.status).toBe('0x0')
    const settled = await node.settle(payee, descriptor, await voucherFor(chain, payer, channelId, 250_000n))
    expect(settled.newSettled).toBe(250_000n)

    const before = await balanceOf(client, payer.address)
    await increaseTime(chain, Number(closeGracePeriodSeconds) + 1)
    const done = await withdraw(chain, payer, descriptor)
    expect(channelClosedIn(done, { escrow: tip20ChannelReserve, channelId })).toEqual({ settledToPayee: 250_000n, refundedToPayer: 750_000n })
    expect(await balanceOf(client, payer.address)).toBe(before + 750_000n - feePaid(done, payer.address))
    await expect(node.requireChannel(descriptor)).rejects.toBeInstanceOf(ChannelNotFoundError)
  })
})

describe('a sponsored open', { timeout: 60_000 }, () => {
  it('the server co-signs under the sponsor policy; the expiring-nonce hash (and so the channel id) is the payer-signed one', async () => {
    const payer = await fundedAccount(client, 2_000_000n)
    const payee = privateKeyToAccount(generatePrivateKey())
    const sponsor = await fundedAccount(client, 2_000_000n)
    const signed = await signOpen(chain, payer, { payee: payee.address, token: pathUsd, deposit: 1_000_000n, sponsored: true })
    const decoded = decodeTransaction(signed.serialized)
    const check = { escrow: tip20ChannelReserve, chainId, recipient: payee.address, currency: pathUsd, expires: new Date(Date.now() + 60_000), feePayer: true }
    const opened = checkOpenTransaction(decoded, check)
    expect(opened.channelId).toBe(signed.channelId)
    const final = await sponsorFunding(decoded, { policy: defaultPolicy, now: new Date(), account: sponsor, feeToken: pathUsd })
    const payerBefore = await balanceOf(client, payer.address)
    await node.rpc.broadcast(final.serialized, final.hash)
    const receipt = await node.rpc.waitForReceipt(final.hash, Date.now() + 20_000)
    expect(channelOpenedIn(receipt, { escrow: tip20ChannelReserve, channelId: opened.channelId }).expiringNonceHash).toBe(opened.descriptor.expiringNonceHash)
    expect(feePaid(receipt, payer.address)).toBe(0n)
    expect(feePaid(receipt, sponsor.address)).toBeGreaterThan(0n)
    expect(await balanceOf(client, payer.address)).toBe(payerBefore - 1_000_000n)
  })
})
