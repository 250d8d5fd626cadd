/**
 * Session protocol v1 on the local session chain: the stream channel stand-in deployed with a plain transaction,
 * the v1 channel id and "Tempo Stream Channel" voucher domain against the contract (and mppx's legacy helpers),
 * and open, settle, topUp and close with exact amounts.
 */
import { env } from 'cloudflare:workers'
import { type Address, type Hex, decodeEventLog, encodeFunctionData, numberToHex, parseAbi, zeroAddress } from 'viem'
import { generatePrivateKey, privateKeyToAccount } from 'viem/accounts'
import { SessionLegacy } from 'mppx/tempo'
import { beforeAll, describe, expect, it } from 'vitest'
import { channelIdV1, streamChannelAbi } from '../../src/methods/tempo/session/v1.js'
import { verifyVoucher, voucherDigest } from '../../src/methods/tempo/session/voucher.js'
import { deployStreamChannel, sendSigned, signCalls, voucherFor } from '../../src/testing/session-payer.js'
import { balanceOf, chainClient, chainId, fund, pathUsd } from '../../src/testing/chain.js'

const url = env.TEST_SESSION_RPC_URL
const client = chainClient(url)
const approveAbi = parseAbi(['function approve(address spender, uint256 amount) returns (bool)'])
const n = 0xfffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141n

type Receipt = Awaited<ReturnType<typeof sendSigned>>

function event(receipt: Receipt, escrow: Address, name: string) {
  for (const log of receipt.logs) {
    if (log.address.toLowerCase() !== escrow) continue
    const decoded = decodeEventLog({ abi: streamChannelAbi, topics: log.topics as [Hex], data: log.data as Hex })
    if (decoded.eventName === name) return decoded.args as Record<string, unknown>
  }
  throw new Error(`no ${name} event`)
}

describe('a v1 stream channel', { timeout: 90_000 }, () => {
  const payer = privateKeyToAccount(generatePrivateKey())
  const payee = privateKeyToAccount(generatePrivateKey())
  const salt = `0x${'5a'.repeat(32)}` as Hex
  let escrow: Address
  let chain: { url: string; chainId: number; escrow: Address }
  let id: Hex
  const call = (data: Hex) => ({ to: escrow, data })
  const send = async (account: typeof payer, data: Hex) => {
    const receipt = await sendSigned(chain, (await signCalls(chain, account, [call(data)])).serialized)
    expect(receipt.status).toBe('0x1')
    return receipt
  }
  const read = async () => {
    const data = encodeFunctionData({ abi: streamChannelAbi, functionName: 'getChannel', args: [id] })
    const raw = (await client.request({ method: 'eth_call', params: [{ to: escrow, data }, 'latest'] } as never)) as Hex
    const { decodeFunctionResult } = await import('viem')
    return decodeFunctionResult({ abi: streamChannelAbi, functionName: 'getChannel', data: raw })
  }

  beforeAll(async () => {
    escrow = await deployStreamChannel(url)
    chain = { url, chainId, escrow }
    await fund(client, payer.address, 3_000_000n)
    await fund(client, payee.address, 1_000_000n)
  })

  it('opens (approve + open in one transaction): the id is the v1 channel id, as mppx computes it', async () => {
    const open = encodeFunctionData({ abi: streamChannelAbi, functionName: 'open', args: [payee.address, pathUsd, 1_000_000n, salt, zeroAddress] })
    const approve = encodeFunctionData({ abi: approveAbi, functionName: 'approve', args: [escrow, 1_500_000n] })
    // A v1 channel is five new storage slots (about 250k gas each on T4), which anvil's estimate leaves out.
    const receipt = await sendSigned(chain, (await signCalls(chain, payer, [{ to: pathUsd, data: approve }, call(open)], { gas: 3_000_000n })).serialized)
    expect(receipt.status).toBe('0x1')
    id = event(receipt, escrow, 'ChannelOpened').channelId as Hex
    const fields = { payer: payer.address, payee: payee.address, token: pathUsd, salt, authorizedSigner: zeroAddress }
    expect(id).toBe(channelIdV1(fields, { escrow, chainId }))
    expect(id).toBe(SessionLegacy.Session.Channel.computeId({ ...fields, escrowContract: escrow, chainId }))
    expect(await read()).toMatchObject({ finalized: false, deposit: 1_000_000n, settled: 0n, closeRequestedAt: 0n })
  })

  it('the v1 voucher digest is the contract\'s, and v1 vouchers verify only under the v1 domain', async () => {
    const abi = parseAbi(['function getVoucherDigest(bytes32 channelId, uint128 cumulativeAmount) view returns (bytes32)'])
    const digest = await client.request({ method: 'eth_call', params: [{ to: escrow, data: encodeFunctionData({ abi, functionName: 'getVoucherDigest', args: [id, 77n] }) }, 'latest'] } as never)
    expect(digest).toBe(voucherDigest({ channelId: id, cumulativeAmount: 77n }, { escrow, chainId, protocol: 'v1' }))
    const voucher = await import('../../src/methods/tempo/session/voucher.js').then((m) => m.signVoucher(payer, { channelId: id, cumulativeAmount: 77n }, { escrow, chainId, protocol: 'v1' }))
    await verifyVoucher({ channelId: id, cumulativeAmount: 77n, signature: voucher }, { escrow, chainId, protocol: 'v1', signer: payer.address })
    await expect(verifyVoucher({ channelId: id, cumulativeAmount: 77n, signature: voucher }, { escrow, chainId, signer: payer.address })).rejects.toThrow()
  })

  it('settles, refuses a high-s voucher on chain, tops up, and closes with exact amounts', async () => {
    const sign = (amount: bigint) => import('../../src/methods/tempo/session/voucher.js').then((m) => m.signVoucher(payer, { channelId: id, cumulativeAmount: amount }, { escrow, chainId, protocol: 'v1' }))
    const first = await sign(250_000n)
    const settled = await send(payee, encodeFunctionData({ abi: streamChannelAbi, functionName: 'settle', args: [id, 250_000n, first] }))
    expect(event(settled, escrow, 'Settled')).toMatchObject({ deltaPaid: 250_000n, newSettled: 250_000n })

    const next = await sign(300_000n)
    const s = BigInt(`0x${next.slice(66, 130)}`)
    const high = `${next.slice(0, 66)}${numberToHex(n - s, { size: 32 }).slice(2)}${next.endsWith('1b') ? '1c' : '1b'}` as Hex
    const simulate = (signature: Hex) =>
      client.request({ method: 'eth_call', params: [{ from: payee.address, to: escrow, data: encodeFunctionData({ abi: streamChannelAbi, functionName: 'settle', args: [id, 300_000n, signature] }) }, 'latest'] } as never)
    await expect(simulate(high)).rejects.toThrow()
    await expect(simulate(next)).resolves.toBe('0x')

    const topUp = await send(payer, encodeFunctionData({ abi: streamChannelAbi, functionName: 'topUp', args: [id, 500_000n] }))
    expect(event(topUp, escrow, 'TopUp')).toMatchObject({ additionalDeposit: 500_000n, newDeposit: 1_500_000n })

    const escrowBefore = await balanceOf(client, escrow)
    const closed = await send(payee, encodeFunctionData({ abi: streamChannelAbi, functionName: 'close', args: [id, 600_000n, await sign(600_000n)] }))
    expect(event(closed, escrow, 'ChannelClosed')).toMatchObject({ settledToPayee: 600_000n, refundedToPayer: 900_000n })
    expect(await balanceOf(client, escrow)).toBe(escrowBefore - 1_250_000n)
    expect(await read()).toMatchObject({ finalized: true, deposit: 0n, settled: 0n, payer: zeroAddress })
    const voucher = await voucherFor({ ...chain }, payer, id, 1n)
    expect(voucher.channelId).toBe(id)
  })
})
