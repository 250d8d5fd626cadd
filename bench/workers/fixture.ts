/** The challenge both bench workers bind, format and check: the same fields and secret on both sides. */
export const fields = {
  realm: 'bench.example.com',
  method: 'tempo',
  intent: 'charge',
  request: {
    amount: '10000',
    currency: '0x20c0000000000000000000000000000000000000',
    recipient: '0x742d35Cc6634c0532925a3b844bC9e7595F8fE00',
    methodDetails: { chainId: 42431 },
  },
  expires: '2030-01-01T00:00:00Z',
}

export const secret = 'bench-secret-0123456789abcdefghijklmnop'
