//! Voicemail recording: received G.711 payloads, decoded and written as an 8 kHz mono 16-bit
//! PCM WAV, up to a maximum duration.
//!
//! PURE apart from writing the file (through `hound`). The call task creates a [`Recorder`] when
//! the workflow starts a voicemail, calls [`Recorder::push_payload`] for each received RTP
//! payload (in sequence order), and [`Recorder::finish`] when the caller hangs up, presses the
//! end key, or [`Recorder::is_full`] turns true. The file is only valid after `finish`.

use std::fs::File;
use std::io::BufWriter;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::error::Error;
use super::g711::Codec;
use super::prompts::SAMPLE_RATE;

/// What was recorded, for the interaction's feed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordingInfo {
    /// The WAV file written.
    pub path: PathBuf,
    /// Length of the audio in it.
    pub duration: Duration,
}

/// Writes one voicemail.
pub struct Recorder {
    path: PathBuf,
    writer: hound::WavWriter<BufWriter<File>>,
    samples: u64,
    max_samples: u64,
}

impl std::fmt::Debug for Recorder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Recorder")
            .field("path", &self.path)
            .field("samples", &self.samples)
            .field("max_samples", &self.max_samples)
            .finish_non_exhaustive()
    }
}

impl Recorder {
    /// Create (or truncate) the WAV at `path`; recording stops by itself after `max`.
    pub fn new(path: impl Into<PathBuf>, max: Duration) -> Result<Self, Error> {
        let path = path.into();
        let spec = hound::WavSpec {
            channels: 1,
            sample_rate: SAMPLE_RATE,
            bits_per_sample: 16,
            sample_format: hound::SampleFormat::Int,
        };
        let writer = hound::WavWriter::create(&path, spec).map_err(|source| Error::Recording {
            path: path.clone(),
            source,
        })?;
        let max_samples = (max.as_micros() * u128::from(SAMPLE_RATE) / 1_000_000) as u64;
        Ok(Self {
            path,
            writer,
            samples: 0,
            max_samples,
        })
    }

    /// Decode and append one received payload in `codec`. Audio past the maximum duration is
    /// dropped (check [`Recorder::is_full`] to end the voicemail).
    pub fn push_payload(&mut self, codec: Codec, payload: &[u8]) -> Result<(), Error> {
        let room = self.max_samples.saturating_sub(self.samples);
        let take = payload
            .len()
            .min(usize::try_from(room).unwrap_or(usize::MAX));
        for &b in &payload[..take] {
            self.writer
                .write_sample(codec.decode_sample(b))
                .map_err(|source| Error::Recording {
                    path: self.path.clone(),
                    source,
                })?;
        }
        self.samples += take as u64;
        Ok(())
    }

    /// Whether the maximum duration has been reached.
    pub fn is_full(&self) -> bool {
        self.samples >= self.max_samples
    }

    /// Recorded length so far.
    pub fn duration(&self) -> Duration {
        Duration::from_micros(self.samples * 1_000_000 / u64::from(SAMPLE_RATE))
    }

    /// The file being written.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Finalise the WAV header and close the file.
    pub fn finish(self) -> Result<RecordingInfo, Error> {
        let duration = self.duration();
        let path = self.path;
        self.writer.finalize().map_err(|source| Error::Recording {
            path: path.clone(),
            source,
        })?;
        Ok(RecordingInfo { path, duration })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::g711;

    #[test]
    fn writes_and_rereads_a_recording() {
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("vm.wav");
        let mut rec = Recorder::new(&path, Duration::from_secs(10)).expect("new");
        let pcm: Vec<i16> = (0..1600).map(|i| ((i * 37) % 2000 - 1000) as i16).collect();
        let mut ulaw = vec![0u8; 800];
        let mut alaw = vec![0u8; 800];
        g711::ulaw_encode_slice(&pcm[..800], &mut ulaw);
        g711::alaw_encode_slice(&pcm[800..], &mut alaw);
        for chunk in ulaw.chunks(160) {
            rec.push_payload(Codec::Pcmu, chunk).expect("push");
        }
        for chunk in alaw.chunks(160) {
            rec.push_payload(Codec::Pcma, chunk).expect("push");
        }
        assert!(!rec.is_full());
        assert_eq!(rec.duration(), Duration::from_millis(200));
        let info = rec.finish().expect("finish");
        assert_eq!(info.path, path);
        assert_eq!(info.duration, Duration::from_millis(200));

        let reader = hound::WavReader::open(&path).expect("open");
        let spec = reader.spec();
        assert_eq!(
            (spec.channels, spec.sample_rate, spec.bits_per_sample),
            (1, 8000, 16)
        );
        let got: Vec<i16> = reader
            .into_samples::<i16>()
            .map(|s| s.expect("sample"))
            .collect();
        assert_eq!(got.len(), 1600);
        for (i, (&g, &b)) in got.iter().zip(ulaw.iter().chain(&alaw)).enumerate() {
            let want = if i < 800 {
                g711::ulaw_decode(b)
            } else {
                g711::alaw_decode(b)
            };
            assert_eq!(g, want, "sample {i}");
        }
    }

    #[test]
    fn stops_at_the_maximum_duration() {
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("vm.wav");
        let mut rec = Recorder::new(&path, Duration::from_millis(50)).expect("new");
        for _ in 0..10 {
            rec.push_payload(Codec::Pcmu, &[0x80; 160]).expect("push");
        }
        assert!(rec.is_full());
        let info = rec.finish().expect("finish");
        assert_eq!(info.duration, Duration::from_millis(50));
        let reader = hound::WavReader::open(&path).expect("open");
        assert_eq!(reader.len(), 400);
    }

    #[test]
    fn unwritable_path_is_a_typed_error() {
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("no/such/dir/vm.wav");
        let err = Recorder::new(&path, Duration::from_secs(1)).expect_err("must fail");
        assert!(matches!(err, Error::Recording { .. }));
        assert_eq!(err.fault(), crate::media::error::Fault::Dependency);
        assert!(err.to_string().contains("vm.wav"), "{err}");
    }
}
