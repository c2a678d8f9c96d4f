//! `media::Error`: the one error enum of the media layer (STYLE §5).
//!
//! Each variant names what failed and whose fault it was: a bad prompt manifest or WAV file is
//! the operator's (fix the files, Hammond refuses to start), a recording that cannot be written
//! is a dependency (disk) failure, an unknown digit in a read-out is a caller (programming) error.

use std::path::PathBuf;

use crate::diag::Diagnostic;

/// Who is to blame for an [`Error`]; decides the log level and, for SIP, the status code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Operator-supplied files (prompt manifest, WAVs) are wrong.
    Config,
    /// The disk or another dependency failed.
    Dependency,
    /// Hammond's own code asked for something impossible.
    Internal,
}

/// Errors of the media layer.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// `prompts/manifest.toml` could not be read or parsed (syntax, unknown field, missing key).
    #[error("{0}")]
    Manifest(Box<Diagnostic>),
    /// A prompt's WAV file is missing, unreadable or not 8 kHz mono 16-bit PCM. `at` points at
    /// the prompt's entry in the manifest.
    #[error("{at}: {}: {problem}", file.display())]
    PromptAudio {
        at: Box<Diagnostic>,
        file: PathBuf,
        problem: WavProblem,
    },
    /// A read-out (`Item::Digits`) contained a character that has no prompt.
    #[error("cannot read out {0:?}: no prompt for that character")]
    NotADigit(char),
    /// A prompt id the player needed is not in the library.
    #[error("prompt `{0}` is not in the prompt library")]
    UnknownPrompt(String),
    /// A voicemail recording could not be created, written or finalised.
    #[error("recording {}: {source}", path.display())]
    Recording {
        path: PathBuf,
        #[source]
        source: hound::Error,
    },
}

impl Error {
    /// Whose fault this error is.
    pub fn fault(&self) -> Fault {
        match self {
            Self::Manifest(_) | Self::PromptAudio { .. } => Fault::Config,
            Self::Recording { .. } => Fault::Dependency,
            Self::NotADigit(_) | Self::UnknownPrompt(_) => Fault::Internal,
        }
    }
}

/// What is wrong with a prompt's WAV file.
#[derive(Debug, thiserror::Error)]
pub enum WavProblem {
    /// The file could not be opened or decoded as WAV.
    #[error("cannot read WAV: {0}")]
    Unreadable(#[source] hound::Error),
    /// Sample rate other than 8000 Hz.
    #[error("sample rate is {0} Hz, expected 8000 Hz")]
    SampleRate(u32),
    /// Not mono.
    #[error("{0} channels, expected 1 (mono)")]
    Channels(u16),
    /// Not 16-bit integer PCM.
    #[error("{bits}-bit {format}, expected 16-bit integer PCM")]
    SampleFormat { bits: u16, format: &'static str },
}
