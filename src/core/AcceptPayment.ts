/** @module `Accept-Payment` negotiation (core spec, "Accept-Payment"). */

/** One `method/intent;q=` range; `*` matches anything. */
export type Range = { method: string; intent: string; q: number }

const rangePattern = /^([a-z]+|\*)\/([A-Za-z0-9-]+|\*)$/
const qPattern = /^q=(0(\.\d{0,3})?|1(\.0{0,3})?)$/i

/**
 * Longest `Accept-Payment` value read; a longer one is ignored as malformed.
 * @example
 * if (header.length > maxHeaderLength) return undefined
 */
export const maxHeaderLength = 4096

/**
 * Parses an `Accept-Payment` value; undefined when it is absent or malformed (then it is ignored).
 * @example
 * AcceptPayment.parse('tempo/charge, stripe/charge;q=0.5')
 */
export function parse(header: string | null | undefined): Range[] | undefined {
  if (!header || header.length > maxHeaderLength) return undefined
  const ranges: Range[] = []
  for (const item of header.split(',')) {
    const [token, ...params] = item.split(';').map((part) => part.trim())
    const match = rangePattern.exec(token ?? '')
    if (!match) return undefined
    let q = 1
    for (const param of params) {
      if (!qPattern.test(param)) return undefined
      q = Number(param.slice(2))
    }
    ranges.push({ method: match[1]!, intent: match[2]!, q })
  }
  return ranges
}

/**
 * Filters and orders offers by the client's preferences: highest `q` first, server order breaking
 * ties, the most specific matching range deciding each offer's `q`, `q=0` excluding it. A header
 * that is malformed or matches nothing leaves the offers as they are.
 * @example
 * AcceptPayment.select(offers, request.headers.get('accept-payment'))
 */
export function select<T extends { method: string; intent: string }>(offers: readonly T[], header: string | null | undefined): T[] {
  const ranges = parse(header)
  if (!ranges) return [...offers]
  const weighted = offers
    .map((offer, index) => ({ offer, index, q: weightOf(offer, ranges) }))
    .filter((entry): entry is { offer: T; index: number; q: number } => entry.q !== undefined && entry.q > 0)
  if (weighted.length === 0) return [...offers]
  return weighted.sort((a, b) => b.q - a.q || a.index - b.index).map((entry) => entry.offer)
}

function weightOf(offer: { method: string; intent: string }, ranges: Range[]): number | undefined {
  let best: { specificity: number; q: number } | undefined
  for (const range of ranges) {
    const methodMatch = range.method === '*' || range.method === offer.method
    const intentMatch = range.intent === '*' || range.intent === offer.intent
    if (!methodMatch || !intentMatch) continue
    const specificity = (range.method === '*' ? 0 : 2) + (range.intent === '*' ? 0 : 1)
    if (!best || specificity > best.specificity) best = { specificity, q: range.q }
  }
  return best?.q
}
