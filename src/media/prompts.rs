//! The prompt library: every prompt decoded from its WAV and G.711-encoded **once** at load, then
//! shared by all calls through `Arc` (a playing call holds only a cursor, see [`super::player`]).
//!
//! PURE apart from reading `manifest.toml` and the WAV files in [`PromptLibrary::load`]; call it at
//! startup (and on config reload) from the shell, never per call. Prompts are referred to by id
//! only; `prompts/manifest.toml` maps each id to `{ file, text, lang }`. Audio must be 8000 Hz,
//! mono, 16-bit integer PCM (what RFC 3551 §4.5.14 G.711 carries); anything else is refused with
//! an error naming the manifest entry, the file and what is wrong.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;

use super::error::{Error, WavProblem};
use super::g711::{self, Codec};
use crate::diag::Diagnostic;

/// G.711 sample rate: 8000 samples (bytes) per second.
pub const SAMPLE_RATE: u32 = 8000;

/// One manifest entry.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Entry {
    file: PathBuf,
    text: String,
    lang: String,
}

/// One prompt, encoded in both codecs. Shared read-only between calls.
#[derive(Debug)]
pub struct Prompt {
    /// The id used by queue files and the workflow, e.g. `greeting`, `digit_5`.
    pub id: String,
    /// What the prompt says (logs, tests).
    pub text: String,
    /// Language tag from the manifest, e.g. `en`.
    pub lang: String,
    /// The audio as µ-law bytes, one per sample.
    pub pcmu: Arc<[u8]>,
    /// The audio as A-law bytes, one per sample.
    pub pcma: Arc<[u8]>,
    /// Number of 8 kHz samples (= bytes in either payload).
    pub samples: usize,
}

impl Prompt {
    /// Build a prompt from linear 8 kHz samples, encoding both codecs once.
    pub fn from_pcm(id: impl Into<String>, text: impl Into<String>, pcm: &[i16]) -> Self {
        let mut pcmu = vec![0u8; pcm.len()];
        let mut pcma = vec![0u8; pcm.len()];
        g711::ulaw_encode_slice(pcm, &mut pcmu);
        g711::alaw_encode_slice(pcm, &mut pcma);
        Self {
            id: id.into(),
            text: text.into(),
            lang: "en".to_owned(),
            pcmu: pcmu.into(),
            pcma: pcma.into(),
            samples: pcm.len(),
        }
    }

    /// The encoded audio to send on a leg that negotiated `codec`.
    pub fn payload(&self, codec: Codec) -> &[u8] {
        match codec {
            Codec::Pcmu => &self.pcmu,
            Codec::Pcma => &self.pcma,
        }
    }

    /// How long the prompt plays.
    pub fn duration(&self) -> Duration {
        Duration::from_micros(self.samples as u64 * 1_000_000 / u64::from(SAMPLE_RATE))
    }
}

/// All prompts by id. Load once with [`PromptLibrary::load`] and share as `Arc<PromptLibrary>`.
#[derive(Debug, Default)]
pub struct PromptLibrary {
    prompts: BTreeMap<String, Arc<Prompt>>,
}

impl PromptLibrary {
    /// Read `dir/manifest.toml` and every WAV it names (paths relative to `dir`), validate them
    /// and encode them. Call at startup / reload; errors point at the manifest entry at fault.
    pub fn load(dir: &Path) -> Result<Self, Error> {
        let manifest = dir.join("manifest.toml");
        let src = std::fs::read_to_string(&manifest).map_err(|e| {
            Error::Manifest(Box::new(Diagnostic::whole_file(
                &manifest,
                format!("cannot read prompt manifest: {e}"),
            )))
        })?;
        let entries: BTreeMap<String, toml::Spanned<Entry>> = toml::from_str(&src)
            .map_err(|e| Error::Manifest(Box::new(Diagnostic::from_toml(&manifest, &src, &e))))?;
        let mut prompts = BTreeMap::new();
        for (id, entry) in entries {
            let span = entry.span();
            let entry = entry.into_inner();
            let file = dir.join(&entry.file);
            let pcm = read_wav(&file).map_err(|problem| Error::PromptAudio {
                at: Box::new(Diagnostic::at_span(
                    &manifest,
                    &src,
                    span.clone(),
                    format!("prompt `{id}`"),
                )),
                file: file.clone(),
                problem,
            })?;
            let mut prompt = Prompt::from_pcm(id.clone(), entry.text, &pcm);
            prompt.lang = entry.lang;
            prompts.insert(id, Arc::new(prompt));
        }
        Ok(Self { prompts })
    }

    /// Add or replace a prompt (tests, synthesised prompts).
    pub fn insert(&mut self, prompt: Prompt) {
        self.prompts.insert(prompt.id.clone(), Arc::new(prompt));
    }

    /// The prompt with this id, shared.
    pub fn get(&self, id: &str) -> Option<Arc<Prompt>> {
        self.prompts.get(id).cloned()
    }

    /// Whether the library has this id (config validation: every id a queue file uses).
    pub fn contains(&self, id: &str) -> bool {
        self.prompts.contains_key(id)
    }

    /// All prompt ids, sorted.
    pub fn ids(&self) -> impl Iterator<Item = &str> {
        self.prompts.keys().map(String::as_str)
    }

    /// Number of prompts.
    pub fn len(&self) -> usize {
        self.prompts.len()
    }

    /// Whether the library is empty.
    pub fn is_empty(&self) -> bool {
        self.prompts.is_empty()
    }
}

/// Read a WAV file that must be 8 kHz mono 16-bit integer PCM.
fn read_wav(path: &Path) -> Result<Vec<i16>, WavProblem> {
    let reader = hound::WavReader::open(path).map_err(WavProblem::Unreadable)?;
    let spec = reader.spec();
    if spec.sample_format != hound::SampleFormat::Int || spec.bits_per_sample != 16 {
        return Err(WavProblem::SampleFormat {
            bits: spec.bits_per_sample,
            format: match spec.sample_format {
                hound::SampleFormat::Int => "integer PCM",
                hound::SampleFormat::Float => "float",
            },
        });
    }
    if spec.channels != 1 {
        return Err(WavProblem::Channels(spec.channels));
    }
    if spec.sample_rate != SAMPLE_RATE {
        return Err(WavProblem::SampleRate(spec.sample_rate));
    }
    reader
        .into_samples::<i16>()
        .collect::<Result<Vec<_>, _>>()
        .map_err(WavProblem::Unreadable)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// The shipped `prompts/` directory.
    pub(crate) fn shipped_dir() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("prompts")
    }

    /// The shipped library, loaded once per test binary.
    pub(crate) fn shipped() -> Arc<PromptLibrary> {
        static LIB: std::sync::OnceLock<Arc<PromptLibrary>> = std::sync::OnceLock::new();
        LIB.get_or_init(|| {
            Arc::new(PromptLibrary::load(&shipped_dir()).expect("shipped prompts load"))
        })
        .clone()
    }

    #[test]
    fn shipped_prompts_are_real_and_not_silent() {
        let lib = shipped();
        // Which ids must exist is the workflow's business (workflow::tests checks them).
        assert!(lib.len() >= 30, "only {} prompts", lib.len());
        let ids: Vec<String> = lib.ids().map(str::to_owned).collect();
        for id in &ids {
            let id = id.as_str();
            let p = lib.get(id).unwrap_or_else(|| panic!("missing prompt {id}"));
            assert!(lib.contains(id));
            assert_eq!(p.pcmu.len(), p.samples);
            assert_eq!(p.pcma.len(), p.samples);
            assert!(p.duration() >= Duration::from_millis(200), "{id} too short");
            let mut pcm = vec![0i16; p.samples];
            Codec::Pcmu.decode(&p.pcmu, &mut pcm);
            let peak = pcm.iter().map(|s| s.unsigned_abs()).max().unwrap_or(0);
            assert!(peak > 3000, "{id} is (nearly) silent: peak {peak}");
            assert!(!p.text.is_empty());
        }
        assert_eq!(lib.ids().count(), lib.len());
        assert_eq!(
            lib.get("hold_music").expect("hold").duration(),
            Duration::from_secs(8)
        );
        let beep = lib.get("beep").expect("beep");
        assert_eq!(beep.duration(), Duration::from_millis(400));
        assert!(lib.get("nope").is_none());
    }

    fn write_wav(path: &Path, spec: hound::WavSpec) {
        let mut w = hound::WavWriter::create(path, spec).expect("create");
        for i in 0..800 {
            match spec.sample_format {
                hound::SampleFormat::Int => w.write_sample((i % 100) as i16 * 100).expect("w"),
                hound::SampleFormat::Float => w.write_sample(0.1f32).expect("w"),
            }
        }
        w.finalize().expect("finalize");
    }

    fn spec(rate: u32, channels: u16) -> hound::WavSpec {
        hound::WavSpec {
            channels,
            sample_rate: rate,
            bits_per_sample: 16,
            sample_format: hound::SampleFormat::Int,
        }
    }

    #[test]
    fn loads_a_small_library_and_encodes_both_codecs() {
        let dir = tempfile::tempdir().expect("tmp");
        write_wav(&dir.path().join("a.wav"), spec(8000, 1));
        std::fs::write(
            dir.path().join("manifest.toml"),
            "a = { file = \"a.wav\", text = \"A\", lang = \"en\" }\n",
        )
        .expect("write");
        let lib = PromptLibrary::load(dir.path()).expect("load");
        let a = lib.get("a").expect("a");
        assert_eq!(a.samples, 800);
        assert_eq!(a.duration(), Duration::from_millis(100));
        assert_eq!(a.payload(Codec::Pcmu)[0], 0xFF);
        assert_eq!(a.payload(Codec::Pcma)[0], 0xD5);
        assert_eq!(a.payload(Codec::Pcmu)[1], g711::ulaw_encode(100));
        assert_eq!(lib.ids().collect::<Vec<_>>(), ["a"]);
    }

    fn load_err(manifest: &str, wavs: &[(&str, hound::WavSpec)]) -> String {
        let dir = tempfile::tempdir().expect("tmp");
        for (name, spec) in wavs {
            write_wav(&dir.path().join(name), *spec);
        }
        std::fs::write(dir.path().join("manifest.toml"), manifest).expect("write");
        PromptLibrary::load(dir.path())
            .expect_err("must fail")
            .to_string()
    }

    #[test]
    fn wrong_wav_formats_are_named() {
        let m = "ok = { file = \"ok.wav\", text = \"\", lang = \"en\" }\nb = { file = \"b.wav\", text = \"\", lang = \"en\" }\n";
        let e = load_err(m, &[("ok.wav", spec(8000, 1)), ("b.wav", spec(16000, 1))]);
        assert!(e.contains("manifest.toml:2:5: prompt `b`"), "{e}");
        assert!(
            e.contains("b.wav: sample rate is 16000 Hz, expected 8000 Hz"),
            "{e}"
        );
        let e = load_err(m, &[("ok.wav", spec(8000, 1)), ("b.wav", spec(8000, 2))]);
        assert!(e.contains("2 channels, expected 1"), "{e}");
        let float = hound::WavSpec {
            bits_per_sample: 32,
            sample_format: hound::SampleFormat::Float,
            ..spec(8000, 1)
        };
        let e = load_err(m, &[("ok.wav", spec(8000, 1)), ("b.wav", float)]);
        assert!(
            e.contains("32-bit float, expected 16-bit integer PCM"),
            "{e}"
        );
        let e = load_err(m, &[("ok.wav", spec(8000, 1))]);
        assert!(e.contains("b.wav: cannot read WAV"), "{e}");
    }

    #[test]
    fn manifest_errors_are_located() {
        let e = load_err(
            "a = { file = \"a.wav\", text = \"\", lang = \"en\", loud = true }\n",
            &[],
        );
        assert!(e.contains("manifest.toml:1:"), "{e}");
        assert!(e.contains("unknown field `loud`"), "{e}");
        let e = load_err("a = { file = \"a.wav\" }\n", &[]);
        assert!(e.contains("missing field `text`"), "{e}");
        let e = load_err("a = [\n", &[]);
        assert!(e.contains("manifest.toml:"), "{e}");
        let dir = tempfile::tempdir().expect("tmp");
        let e = PromptLibrary::load(dir.path()).expect_err("no manifest");
        assert!(e.to_string().contains("cannot read prompt manifest"), "{e}");
    }
}
