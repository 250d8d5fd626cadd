/** @module Reading bodies with a bound, so a chunked or mis-declared body is never buffered whole. */

/**
 * Reads a stream until it ends or passes `max` bytes. `complete` is false when it stopped early; the chunk
 * that passed the bound is included, and the reader is left open for the caller to go on or cancel.
 * @example
 * const { chunks, size, complete } = await Body.readUpTo(stream.getReader(), 1024)
 */
export async function readUpTo(
  reader: ReadableStreamDefaultReader<Uint8Array>,
  max: number,
): Promise<{ chunks: Uint8Array[]; size: number; complete: boolean }> {
  const chunks: Uint8Array[] = []
  let size = 0
  for (;;) {
    const { done, value } = await reader.read()
    if (done) return { chunks, size, complete: true }
    chunks.push(value)
    size += value.byteLength
    if (size > max) return { chunks, size, complete: false }
  }
}

/**
 * Joins chunks into one byte array.
 * @example
 * Body.concat([new Uint8Array([1]), new Uint8Array([2])], 2) // Uint8Array [1, 2]
 */
export function concat(chunks: readonly Uint8Array[], size: number): Uint8Array<ArrayBuffer> {
  const bytes = new Uint8Array(size)
  let offset = 0
  for (const chunk of chunks) {
    bytes.set(chunk, offset)
    offset += chunk.byteLength
  }
  return bytes
}
