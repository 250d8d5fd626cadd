/** @module `Payment-Receipt` (core spec, "Receipts"). */
import * as v from 'valibot'
import { EncodingError, decodeJson, encodeJson } from './Encoding.js'

/** A receipt: `status` is always "success"; methods may add string fields. */
export type Receipt = {
  status: 'success'
  method: string
  timestamp: string
  reference: string
  [field: string]: unknown
}

/**
 * Schema of a decoded receipt.
 * @example
 * v.parse(Schema, input)
 */
export const Schema = v.looseObject({
  status: v.literal('success'),
  method: v.pipe(v.string(), v.regex(/^[a-z]+$/)),
  timestamp: v.pipe(v.string(), v.isoTimestamp()),
  reference: v.pipe(v.string(), v.minLength(1)),
})

/**
 * Raised on a receipt that cannot be decoded or validated.
 * @example
 * throw new ReceiptError('…')
 */
export class ReceiptError extends Error {
  override readonly name = 'ReceiptError'
}

/**
 * Builds a receipt for a settlement at `now`.
 * @example
 * Receipt.from({ method: 'tempo', reference: '0xabc…' })
 */
export function from(parameters: { method: string; reference: string; now?: Date | undefined } & Record<string, unknown>): Receipt {
  const { now, ...rest } = parameters
  return { ...rest, status: 'success', timestamp: ((now as Date | undefined) ?? new Date()).toISOString() } as Receipt
}

/**
 * Encodes a receipt for the `Payment-Receipt` header.
 * @example
 * headers.set('payment-receipt', Receipt.serialize(receipt))
 */
export function serialize(receipt: Receipt): string {
  const result = v.safeParse(Schema, receipt)
  if (!result.success) throw new ReceiptError(`invalid receipt: ${result.issues[0].message}`)
  try {
    return encodeJson(receipt)
  } catch (error) {
    if (error instanceof EncodingError) throw new ReceiptError(error.message, { cause: error })
    throw error
  }
}

/**
 * Decodes a `Payment-Receipt` value.
 * @example
 * const receipt = Receipt.deserialize(response.headers.get('payment-receipt')!)
 */
export function deserialize(header: string): Receipt {
  if (header.length > 16 * 1024) throw new ReceiptError('receipt too large')
  let json: unknown
  try {
    json = decodeJson(header.trim())
  } catch (error) {
    if (error instanceof EncodingError) throw new ReceiptError(error.message, { cause: error })
    throw error
  }
  const result = v.safeParse(Schema, json)
  if (!result.success) throw new ReceiptError(`invalid receipt: ${result.issues[0].message}`)
  return result.output as Receipt
}
