#!/usr/bin/env python3
"""Make the RTP captures that SIPp plays (`play_pcap_audio`) in the integration tests.

Python standard library only, plus `sox` for the audio (in-band DTMF tones, a voice-like
message; run without dither, `-D`, so the output is the same every time) and `espeak-ng` for
the answering-machine captures' speech (the same voice as prompts/generate.sh). Run from anywhere;
it rewrites the *.pcap files beside this script:

    python3 tests/data/rtp/make_pcaps.py

Every capture is one RTP stream (one SSRC) of 20 ms PCMU frames (PT 0, 160 bytes) on the
packet clock, Ethernet/IPv4/UDP framed, 127.0.0.1:6000 -> 127.0.0.1:7000 (SIPp rewrites the
ports and the destination to the SDP of the call). Key presses are either RFC 4733
telephone-events (PT 101: a start packet with the marker, updates every 20 ms with a growing
duration, then three end packets with the E bit, all with the event's timestamp; no audio is sent
meanwhile) or in-band tone pairs in the PCMU audio itself.

Files:
  rfc4733_2_9.pcap        keys 2 and 9 as telephone-events, 1 s apart
  inband_2_9.pcap         keys 2 and 9 as in-band DTMF tones (sox), 1 s apart
  rfc4733_other_number.pcap  1, 2, 15557654321, #, 1 (callback on another number, confirmed)
  rfc4733_entry_abandoned.pcap  1, 2, 1555 (the caller hangs up during number entry)
  voicemail.pcap          key 3, then 5 s of voice-like audio (a sweep) for the recording
  machine_greeting.pcap   a customer's answering machine: a recorded greeting (about 6 s of
                          speech), its beep (1 kHz, 400 ms), then silence while it records
  hello.pcap              a person: "Hello?" (under a second of speech), then silence
"""

import os
import struct
import subprocess
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
FRAME = 160  # samples per 20 ms at 8 kHz
PT_PCMU = 0
PT_EVENT = 101
SSRC = 0x48414D31
SILENCE_PCMU = b"\xff" * FRAME
EVENT_CODES = {**{str(d): d for d in range(10)}, "*": 10, "#": 11}
DTMF_FREQS = {
    "1": (697, 1209), "2": (697, 1336), "3": (697, 1477),
    "4": (770, 1209), "5": (770, 1336), "6": (770, 1477),
    "7": (852, 1209), "8": (852, 1336), "9": (852, 1477),
    "*": (941, 1209), "0": (941, 1336), "#": (941, 1477),
}


def sox_pcmu(effects):
    """Run sox with these synth effects; return raw 8 kHz mono mu-law bytes."""
    with tempfile.TemporaryDirectory() as d:
        out = os.path.join(d, "out.ul")
        subprocess.run(
            ["sox", "-D", "-n", "-r", "8000", "-c", "1", "-t", "ul", out] + effects,
            check=True,
        )
        with open(out, "rb") as f:
            return f.read()


def _two_tone(lo, hi, ms, dbfs):
    """A DTMF tone pair: sox synthesises one channel per tone, `remix -` mixes them into one,
    `gain -n` sets the peak of the sum (each tone is then about 6 dB lower)."""
    with tempfile.TemporaryDirectory() as d:
        out = os.path.join(d, "out.ul")
        subprocess.run(
            ["sox", "-D", "-n", "-r", "8000", "-t", "ul", out,
             "synth", f"{ms / 1000}", "sine", str(lo), "sine", str(hi),
             "remix", "-", "gain", "-n", str(dbfs)],
            check=True,
        )
        with open(out, "rb") as f:
            return f.read()


class Stream:
    """One RTP stream on the 20 ms packet clock."""

    def __init__(self):
        self.records = []  # (time in s, rtp bytes)
        self.seq = 1000
        self.slot = 0  # 20 ms slots since the start: time = slot * 20 ms, ts = slot * 160

    def _rtp(self, pt, marker, ts, payload):
        b0 = 0x80
        b1 = (0x80 if marker else 0) | pt
        hdr = struct.pack("!BBHII", b0, b1, self.seq & 0xFFFF, ts & 0xFFFFFFFF, SSRC)
        self.seq += 1
        return hdr + payload

    def audio(self, pcmu):
        """Send these mu-law bytes as 20 ms frames (the last one padded with silence)."""
        for i in range(0, len(pcmu), FRAME):
            frame = pcmu[i:i + FRAME].ljust(FRAME, b"\xff")
            marker = self.slot == 0
            self.records.append((self.slot * 0.02, self._rtp(PT_PCMU, marker, self.slot * FRAME, frame)))
            self.slot += 1

    def silence(self, ms):
        self.audio(SILENCE_PCMU * (ms // 20))

    def event(self, key, ms=100, volume=10):
        """An RFC 4733 event lasting `ms`: start, updates, three end packets (section 2.5)."""
        code = EVENT_CODES[key]
        ts = self.slot * FRAME
        n = ms // 20
        for i in range(n):
            dur = (i + 1) * FRAME
            end = i == n - 1
            payload = struct.pack("!BBH", code, (0x80 if end else 0) | volume, dur)
            copies = 3 if end else 1
            for _ in range(copies):
                self.records.append((self.slot * 0.02, self._rtp(PT_EVENT, i == 0, ts, payload)))
            self.slot += 1

    def inband(self, key, ms=100):
        self.audio(_two_tone(*DTMF_FREQS[key], ms, -12))


def speech_pcmu(text):
    """`text` spoken by espeak-ng (en-us, 150 wpm), band-limited and normalised as the prompts
    are, as raw 8 kHz mu-law."""
    with tempfile.TemporaryDirectory() as d:
        raw = os.path.join(d, "raw.wav")
        out = os.path.join(d, "out.ul")
        subprocess.run(["espeak-ng", "-v", "en-us", "-s", "150", "-w", raw, text], check=True)
        subprocess.run(
            ["sox", "-D", raw, "-r", "8000", "-c", "1", "-t", "ul", out,
             "highpass", "120", "lowpass", "3400",
             "silence", "1", "0.02", "0.5%", "reverse", "silence", "1", "0.02", "0.5%", "reverse",
             "norm", "-3"],
            check=True,
        )
        with open(out, "rb") as f:
            return f.read()


def checksum(data):
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def frame(rtp):
    src, dst = bytes([127, 0, 0, 1]), bytes([127, 0, 0, 1])
    udp_len = 8 + len(rtp)
    pseudo = src + dst + struct.pack("!BBH", 0, 17, udp_len)
    udp = struct.pack("!HHHH", 6000, 7000, udp_len, 0) + rtp
    csum = checksum(pseudo + udp) or 0xFFFF
    udp = udp[:6] + struct.pack("!H", csum) + udp[8:]
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + udp_len, 0, 0x4000, 64, 17, 0, src, dst)
    ip = ip[:10] + struct.pack("!H", checksum(ip)) + ip[12:]
    eth = b"\x00\x00\x00\x00\x00\x02" + b"\x00\x00\x00\x00\x00\x01" + b"\x08\x00"
    return eth + ip + udp


def write_pcap(name, stream):
    path = os.path.join(HERE, name)
    with open(path, "wb") as f:
        f.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
        base = 1_700_000_000
        for t, rtp in stream.records:
            pkt = frame(rtp)
            usec = round(t * 1_000_000)
            f.write(struct.pack("<IIII", base + usec // 1_000_000, usec % 1_000_000, len(pkt), len(pkt)))
            f.write(pkt)
    print(f"{name}: {len(stream.records)} packets, {stream.slot * 20} ms")


def keys_4733(keys, lead_ms=1000, gap_ms=900, tail_ms=500):
    s = Stream()
    s.silence(lead_ms)
    for i, k in enumerate(keys):
        if i:
            s.silence(gap_ms)
        s.event(k)
    s.silence(tail_ms)
    return s


def main():
    write_pcap("rfc4733_2_9.pcap", keys_4733("29"))

    s = Stream()
    s.silence(1000)
    s.inband("2")
    s.silence(900)
    s.inband("9")
    s.silence(500)
    write_pcap("inband_2_9.pcap", s)

    write_pcap("rfc4733_other_number.pcap", keys_4733("12" + "15557654321" + "#" + "1", gap_ms=300))
    write_pcap("rfc4733_entry_abandoned.pcap", keys_4733("12" + "1555", gap_ms=300))

    s = Stream()
    s.silence(500)
    s.event("3")
    s.silence(300)
    s.audio(sox_pcmu(["synth", "5", "sine", "300-900", "gain", "-n", "-10"]))
    s.silence(500)
    write_pcap("voicemail.pcap", s)

    s = Stream()
    s.silence(200)
    s.audio(speech_pcmu(
        "Hi, you have reached Sam and Alex. We cannot take your call right now. "
        "Please leave a message after the tone."))
    s.silence(400)
    s.audio(sox_pcmu(["synth", "0.4", "sine", "1000", "gain", "-n", "-6"]))
    s.silence(10000)
    write_pcap("machine_greeting.pcap", s)

    s = Stream()
    s.silence(300)
    s.audio(speech_pcmu("Hello?"))
    s.silence(10000)
    write_pcap("hello.pcap", s)


if __name__ == "__main__":
    main()
