# Writes Kafka RecordBatch v2 fixtures with kafka-python's DefaultRecordBatchBuilder, one file per codec.
# Needs kafka-python 2.0.2 with python-snappy, lz4 and zstandard. Usage: python3 make-kafka-python-fixtures.py OUTDIR
# Records: the same rule as the kafkajs script, with a null header value "n" added (kafka-python encodes it as -1).
import sys, os
from kafka.record.default_records import DefaultRecordBatchBuilder

out = sys.argv[1]
first_timestamp = 1700000000000
count = 40
for name, codec in [("none", 0), ("gzip", 1), ("snappy", 2), ("lz4", 3), ("zstd", 4)]:
    builder = DefaultRecordBatchBuilder(magic=2, compression_type=codec, is_transactional=False,
                                        producer_id=-1, producer_epoch=-1, base_sequence=-1, batch_size=1 << 20)
    for i in range(count):
        key = None if i % 5 == 4 else ("key-%d" % i).encode()
        value = None if i % 7 == 6 else (("value-%d " % i) + "kafka " * i).encode()
        headers = [("h", str(i).encode()), ("e", b""), ("n", None)]
        builder.append(i, first_timestamp + 7 * i, key, value, headers)
    with open(os.path.join(out, "kafka-python-%s.bin" % name), "wb") as f:
        f.write(bytes(builder.build()))
