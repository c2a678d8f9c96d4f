#!/usr/bin/env bash
# Regenerate prompts/audio/*.wav from prompts/manifest.toml.
# Needs espeak-ng and sox (Debian/Ubuntu: apt-get install -y espeak-ng sox).
#
# Every spoken prompt: espeak-ng (en-us, 150 wpm) → sox: resample to 8 kHz mono 16-bit PCM,
# band-limit to the telephone band, trim leading/trailing silence, normalise to -3 dBFS.
# `beep` is a 400 ms 1 kHz sine; `ringback` one 6 s cadence of North American ringback; `hold_music` a gentle ~8 s plucked melody over a soft pad that
# loops cleanly (it starts and ends quietly). Output is deterministic for a given tool version.
set -euo pipefail
cd "$(dirname "$0")"
command -v espeak-ng >/dev/null || { echo "espeak-ng not found" >&2; exit 1; }
command -v sox >/dev/null || { echo "sox not found" >&2; exit 1; }
mkdir -p audio
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

OUT=(-r 8000 -c 1 -b 16 -e signed-integer)

speak() { # id file text
  espeak-ng -v en-us -s 150 -w "$tmp/raw.wav" "$3"
  sox "$tmp/raw.wav" "${OUT[@]}" "$tmp/trim.wav" \
    highpass 120 lowpass 3400 \
    silence 1 0.02 0.5% reverse silence 1 0.02 0.5% reverse
  # A second pass, now that the length is known: short fades against clicks, then normalise.
  sox "$tmp/trim.wav" "$2" fade t 0.005 0 0.01 norm -3
}

beep() { # file
  sox -n "${OUT[@]}" "$1" synth 0.4 sine 1000 fade t 0.01 0.4 0.01 norm -6
}

ringback() { # file: one cadence of North American ringback (2 s of 440 + 480 Hz, 4 s quiet)
  sox -n -r 8000 -c 1 -b 16 "$tmp/ring.wav" synth 2 sine 440 sine 480 channels 1 fade t 0.02 2 0.02 norm -10
  sox "$tmp/ring.wav" "${OUT[@]}" "$1" pad 0 4
}

hold_music() { # file
  # Two bars of a slow pentatonic tune, 16 notes of 0.5 s, then mixed with a quiet sustained pad.
  local notes=(E4 G4 A4 B4 A4 G4 E4 D4 E4 G4 A4 D5 B4 A4 G4 E4)
  local i=0 parts=()
  for n in "${notes[@]}"; do
    sox -n -r 8000 -c 1 -b 16 "$tmp/n$i.wav" synth 0.5 pluck "$n" fade t 0.005 0.5 0.2
    parts+=("$tmp/n$i.wav"); i=$((i + 1))
  done
  sox "${parts[@]}" "$tmp/melody.wav"
  sox -n -r 8000 -c 1 -b 16 "$tmp/pad.wav" synth 8 sine E3 sine B3 fade t 1 8 1 vol 0.15
  sox -m "$tmp/melody.wav" "$tmp/pad.wav" "${OUT[@]}" "$1" lowpass 3400 norm -8 fade t 0.05 0 0.3
}

# Lines look like: id = { file = "audio/x.wav", text = "...", lang = "en" }
grep -E '^[a-z0-9_]+ = \{' manifest.toml | while IFS= read -r line; do
  id=$(sed -E 's/^([a-z0-9_]+) = .*/\1/' <<<"$line")
  file=$(sed -E 's/.*file = "([^"]*)".*/\1/' <<<"$line")
  text=$(sed -E 's/.*text = "([^"]*)".*/\1/' <<<"$line")
  case "$id" in
    beep) beep "$file" ;;
    hold_music) hold_music "$file" ;;
    ringback) ringback "$file" ;;
    *) speak "$id" "$file" "$text" ;;
  esac
  echo "$file  $(soxi -D "$file")s  $text"
done
