/**
 * The EIP-3009 token stand-in: the committed build is a fresh build of its source, and on a plain anvil it behaves as
 * USDC's FiatToken v2 does for an EOA (a signed authorization moves funds once, in its window, in both signature forms).
 */
import { type Address, type Hex, encodeFunctionData, keccak256, parseSignature, stringToHex } from 'viem'
import { generatePrivateKey, privateKeyToAccount } from 'viem/accounts'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { compileToken } from '../../scripts/build-token.js'
import { authorizationTypes } from '../../src/methods/evm/abi.js'
import { authorizationUsed, evmChainId, evmRpc, evmToken, evmTokenDomain, fundedEvmPayer, otherEvmToken, tokenBalance } from '../../src/testing/evm-chain.js'
import { startEvmChain } from '../../src/testing/node/evm-chain.js'
import { freePort } from '../../src/testing/node/ports.js'
import { authorizationTokenRuntime } from '../../src/testing/token-bytecode.js'

let chain: Awaited<ReturnType<typeof startEvmChain>>
beforeAll(async () => {
  chain = await startEvmChain({ port: await freePort() })
})
afterAll(() => chain?.stop())

const twa7 = [
  {
    name: 'transferWithAuthorization',
    type: 'function',
    stateMutability: 'nonpayable',
    inputs: ['from', 'to', 'value', 'validAfter', 'validBefore', 'nonce', 'signature'].map((name, i) => ({
      name,
      type: ['address', 'address', 'uint256', 'uint256', 'uint256', 'bytes32', 'bytes'][i]!,
    })),
    outputs: [],
  },
  {
    name: 'transferWithAuthorization',
    type: 'function',
    stateMutability: 'nonpayable',
    inputs: ['from', 'to', 'value', 'validAfter', 'validBefore', 'nonce', 'v', 'r', 's'].map((name, i) => ({
      name,
      type: ['address', 'address', 'uint256', 'uint256', 'uint256', 'bytes32', 'uint8', 'bytes32', 'bytes32'][i]!,
    })),
    outputs: [],
  },
] as const

async function authorize(options: { token?: Address; value?: bigint; validBefore?: bigint; name?: string } = {}) {
  const payer = await fundedEvmPayer(chain.url, 1_000_000n, options.token ?? evmToken)
  const to = privateKeyToAccount(generatePrivateKey()).address
  const message = {
    from: payer.address,
    to,
    value: options.value ?? 250_000n,
    validAfter: 0n,
    validBefore: options.validBefore ?? BigInt(Math.floor(Date.now() / 1000) + 300),
    nonce: keccak256(stringToHex(crypto.randomUUID())),
  }
  const signature = await payer.signTypedData({
    domain: { name: options.name ?? evmTokenDomain.name, version: evmTokenDomain.version, chainId: evmChainId, verifyingContract: options.token ?? evmToken },
    types: authorizationTypes,
    primaryType: 'TransferWithAuthorization',
    message,
  })
  return { payer, to, message, signature }
}

// Sent by anvil's dev account 1 (any account may submit an authorization); resolves to the receipt status.
async function submit(data: Hex, token: Address = evmToken): Promise<string> {
  const from = '0x70997970C51812dc3A010C7d01b50e0d17dc79C8'
  try {
    const hash = await evmRpc<Hex>(chain.url, 'eth_sendTransaction', [{ from, to: token, data, gas: '0x30000' }])
    for (;;) {
      const receipt = await evmRpc<{ status: Hex } | null>(chain.url, 'eth_getTransactionReceipt', [hash])
      if (receipt) return receipt.status
      await new Promise((resolve) => setTimeout(resolve, 20))
    }
  } catch (error) {
    return String(error)
  }
}

const vrs = ({ message: m, signature }: Awaited<ReturnType<typeof authorize>>) => {
  const { v, r, s } = parseSignature(signature)
  return encodeFunctionData({ abi: twa7, functionName: 'transferWithAuthorization', args: [m.from, m.to, m.value, m.validAfter, m.validBefore, m.nonce, Number(v), r, s] })
}
const packed = ({ message: m, signature }: Awaited<ReturnType<typeof authorize>>) =>
  encodeFunctionData({ abi: twa7, functionName: 'transferWithAuthorization', args: [m.from, m.to, m.value, m.validAfter, m.validBefore, m.nonce, signature] })

describe('EIP-3009 token stand-in', () => {
  it('the committed bytecode is a fresh build of contracts/AuthorizationToken.sol (run scripts/build-token.ts after editing it)', () => {
    expect(authorizationTokenRuntime).toBe(compileToken())
  }, 60_000)

  it('moves the authorized value once, in either signature form, and marks the nonce used', async () => {
    for (const encode of [vrs, packed]) {
      const authorization = await authorize()
      expect(await submit(encode(authorization))).toBe('0x1')
      expect(await tokenBalance(chain.url, authorization.to)).toBe(250_000n)
      expect(await tokenBalance(chain.url, authorization.payer.address)).toBe(750_000n)
      expect(await authorizationUsed(chain.url, authorization.payer.address, authorization.message.nonce)).toBe(true)
      // The same authorization again: the nonce is used.
      expect(await submit(encode(authorization))).toMatch(/authorization is used or canceled|0x0/)
      expect(await tokenBalance(chain.url, authorization.to)).toBe(250_000n)
    }
  })

  it('refuses an expired authorization, one signed for another domain or token, and one above the balance', async () => {
    const expired = await authorize({ validBefore: BigInt(Math.floor(Date.now() / 1000) - 1) })
    expect(await submit(vrs(expired))).toMatch(/authorization is expired|0x0/)
    const wrongName = await authorize({ name: 'USDC' })
    expect(await submit(vrs(wrongName))).toMatch(/invalid signature|0x0/)
    // Signed for the other copy of the token, submitted to the first.
    const otherToken = await authorize({ token: otherEvmToken })
    expect(await submit(vrs(otherToken), evmToken)).toMatch(/invalid signature|0x0/)
    const tooMuch = await authorize({ value: 2_000_000n })
    expect(await submit(vrs(tooMuch))).toMatch(/exceeds balance|0x0/)
    for (const a of [expired, wrongName, otherToken, tooMuch]) expect(await tokenBalance(chain.url, a.to)).toBe(0n)
  })
})
