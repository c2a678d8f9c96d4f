#!/bin/sh
# Refresh the fuzzers' seed corpora from the test data (run from the repository root).
set -eu
mkdir -p fuzz/corpus/sip_msg fuzz/corpus/sdp fuzz/corpus/rtp fuzz/corpus/queue_file fuzz/corpus/sdes fuzz/corpus/http_range
for f in $(find tests/data/sip -name '*.sip'); do
    name=$(echo "${f#tests/data/sip/}" | tr / _)
    cp "$f" "fuzz/corpus/sip_msg/$name"
    # The SDP body, when there is one.
    python3 -c 'import sys; b=open(sys.argv[1],"rb").read().split(b"\r\n\r\n",1); sys.stdout.buffer.write(b[1] if len(b)>1 else b"")' "$f" > "fuzz/corpus/sdp/$name"
    grep -q '^v=' "fuzz/corpus/sdp/$name" || rm "fuzz/corpus/sdp/$name"
done
cp tests/data/sdp/*.sdp fuzz/corpus/sdp/ 2>/dev/null || true
for f in config/queues/*.toml tests/data/queues/*.toml; do
    cp "$f" "fuzz/corpus/queue_file/$(echo "$f" | tr / _)"
done
# RTP: a PCMU frame, a telephone-event start/end, CSRCs + extension + padding.
python3 - <<'PY'
import struct
def pkt(b0, pt, seq, ts, body): return struct.pack("!BBHII", b0, pt, seq, ts, 0x1234) + body
out = {
    "pcmu": pkt(0x80, 0x80, 1, 160, b"\xff" * 160),
    "dtmf_start": pkt(0x80, 0x80 | 101, 2, 320, bytes([5, 10, 0, 160])),
    "dtmf_end": pkt(0x80, 101, 3, 320, bytes([5, 0x80 | 10, 3, 32])),
    "csrc_ext_pad": pkt(0xB2, 0, 4, 480, b"\0\0\0\1" * 2 + b"\xbe\xde\0\1" + b"abcd" + b"pay" + b"\0\0\3"),
}
for k, v in out.items():
    open(f"fuzz/corpus/rtp/{k}", "wb").write(v)
PY
# a=crypto values (RFC 4568 §9.2 examples, baresip/Asterisk style, session parameters).
k=WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz
printf '1 AES_CM_128_HMAC_SHA1_80 inline:%s|2^20|1:4' "$k" > fuzz/corpus/sdes/rfc_80
printf '2 AES_CM_128_HMAC_SHA1_32 inline:%s|2^20|1:32' "$k" > fuzz/corpus/sdes/rfc_32
printf '1 AES_CM_128_HMAC_SHA1_80 inline:%s' "$k" > fuzz/corpus/sdes/plain
printf '3 AES_CM_128_HMAC_SHA1_32 inline:%s|2^31 KDR=0 WSH=64 UNENCRYPTED_SRTCP' "$k" > fuzz/corpus/sdes/params
printf '1 AES_CM_128_HMAC_SHA1_80 inline:%s;inline:%s|2^20|2:4' "$k" "$k" > fuzz/corpus/sdes/two_keys
# Range headers: what audio players send to seek, and the edges RFC 9110 §14 names.
printf 'bytes=0-' > fuzz/corpus/http_range/open
printf 'bytes=0-1023' > fuzz/corpus/http_range/first_kib
printf 'bytes=-512' > fuzz/corpus/http_range/suffix
printf 'bytes=-0' > fuzz/corpus/http_range/empty_suffix
printf 'bytes=0-0,-1' > fuzz/corpus/http_range/two_ranges
printf 'bytes=5-2' > fuzz/corpus/http_range/backwards
printf 'bytes= 10 - 20 ' > fuzz/corpus/http_range/spaces
printf 'items=0-5' > fuzz/corpus/http_range/other_unit
printf 'bytes=18446744073709551615-' > fuzz/corpus/http_range/u64_max
