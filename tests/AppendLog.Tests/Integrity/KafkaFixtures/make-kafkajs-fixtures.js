// Writes Kafka RecordBatch v2 fixtures with kafkajs's own encoder (kafkajs/src/protocol/recordBatch/v0), one file per
// codec, plus expected.json describing the records. Run with node in a folder where these npm packages are installed:
// kafkajs@2.2.4 kafkajs-snappy@1.1.0 kafkajs-lz4@1.2.1 zstd-codec@0.1.5. Usage: node make-kafkajs-fixtures.js OUTDIR
const fs = require('fs')
const path = require('path')
const { CompressionTypes, CompressionCodecs } = require('kafkajs')
const { RecordBatch } = require('kafkajs/src/protocol/recordBatch/v0')
const Record = require('kafkajs/src/protocol/recordBatch/record/v0')
const Long = require('kafkajs/src/utils/long')
const SnappyCodec = require('kafkajs-snappy')
const LZ4Codec = require('kafkajs-lz4')
const { ZstdCodec } = require('zstd-codec')

const out = process.argv[2]
const firstTimestamp = 1700000000000
const count = 40

// Record i: key "key-i" (null every 5th), a compressible value (null every 7th), headers h=i and e=empty (kafkajs
// 2.2.4 cannot encode a null header value: its size computation calls Buffer.byteLength(null)),
// timestampDelta 7*i. Offset deltas 0..count-1.
const spec = Array.from({ length: count }, (_, i) => ({
  offsetDelta: i,
  timestampDelta: 7 * i,
  key: i % 5 === 4 ? null : Buffer.from(`key-${i}`),
  value: i % 7 === 6 ? null : Buffer.from(`value-${i} ` + 'kafka '.repeat(i)),
  headers: { h: Buffer.from(String(i)), e: Buffer.alloc(0) },
}))

async function main() {
  const zstd = await new Promise(resolve => ZstdCodec.run(z => resolve(new z.Simple())))
  CompressionCodecs[CompressionTypes.Snappy] = SnappyCodec
  CompressionCodecs[CompressionTypes.LZ4] = new LZ4Codec().codec
  // kafkajs's published ZSTD codec (@kafkajs/zstd) needs a native build; this is the same codec shape over zstd-codec.
  CompressionCodecs[CompressionTypes.ZSTD] = () => ({
    async compress(encoder) { return Buffer.from(zstd.compress(new Uint8Array(encoder.buffer), 3)) },
    async decompress(buffer) { return Buffer.from(zstd.decompress(new Uint8Array(buffer))) },
  })

  const codecs = { none: CompressionTypes.None, gzip: CompressionTypes.GZIP, snappy: CompressionTypes.Snappy,
    lz4: CompressionTypes.LZ4, zstd: CompressionTypes.ZSTD }
  for (const [name, compression] of Object.entries(codecs)) {
    const batch = await RecordBatch({
      compression,
      firstTimestamp,
      maxTimestamp: firstTimestamp + 7 * (count - 1),
      lastOffsetDelta: count - 1,
      records: spec.map(r => Record(r)),
    })
    fs.writeFileSync(path.join(out, `kafkajs-${name}.bin`), batch.buffer)
  }

  // An idempotent, transactional batch: producer id 4242, epoch 3, base sequence 17.
  const txn = await RecordBatch({
    firstTimestamp, maxTimestamp: firstTimestamp + 7, lastOffsetDelta: 1, transactional: true,
    producerId: Long.fromValue(4242), producerEpoch: 3, firstSequence: 17,
    records: spec.slice(0, 2).map(r => Record(r)),
  })
  fs.writeFileSync(path.join(out, 'kafkajs-transactional.bin'), txn.buffer)

  const b64 = b => (b === null ? null : b.toString('base64'))
  fs.writeFileSync(path.join(out, 'expected.json'), JSON.stringify({
    baseTimestamp: firstTimestamp,
    records: spec.map(r => ({ offsetDelta: r.offsetDelta, timestampDelta: r.timestampDelta, key: b64(r.key), value: b64(r.value),
      headers: Object.entries(r.headers).map(([k, v]) => [k, b64(v)]) })),
  }, null, 1))
}

main().catch(e => { console.error(e); process.exit(1) })
