#!/bin/sh
# Copy the SIP test messages into the fuzzer's seed corpus (run from the repository root).
set -eu
mkdir -p fuzz/corpus/sip_msg
for f in $(find tests/data/sip -name '*.sip'); do
    cp "$f" "fuzz/corpus/sip_msg/$(echo "${f#tests/data/sip/}" | tr / _)"
done
