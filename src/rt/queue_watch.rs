//! Hot reload of the queue directory (tokio shell).
//!
//! The [`QueueRegistry`] holds the current [`QueueSet`]. [`spawn_watcher`] watches the queue
//! directory with `notify`; after a burst of changes settles (~200 ms) it recompiles the whole
//! directory. If every file compiles, the new set replaces the old one; otherwise the old set
//! stays, and the diagnostics are logged (`warn`) and kept for `/healthz`. Calls in progress hold
//! their own `Arc<Flow>`, so they finish on the version they started with.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use notify::{EventKind, RecursiveMode, Watcher};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::diag::Diagnostic;
use crate::workflow::flow::{PromptCatalog, QueueSet, load_dir};

/// How long the directory must be quiet before it is reloaded (editors write in several steps).
const DEBOUNCE: Duration = Duration::from_millis(200);

/// The queues in force, swapped as a whole on a good reload.
#[derive(Debug, Default)]
pub struct QueueRegistry {
    current: RwLock<Arc<QueueSet>>,
    errors: RwLock<Vec<Diagnostic>>,
}

impl QueueRegistry {
    /// A registry starting with `set`; `errors` are those of the initial load.
    pub fn new(set: QueueSet, errors: Vec<Diagnostic>) -> Self {
        Self {
            current: RwLock::new(Arc::new(set)),
            errors: RwLock::new(errors),
        }
    }

    /// Load `dir` at startup. Queues that compile are served even if others did not; the
    /// others' diagnostics are recorded.
    pub fn load(dir: &Path, catalog: &dyn PromptCatalog) -> Self {
        let (set, errors) = load_dir(dir, catalog);
        Self::new(set, errors)
    }

    /// The queues in force. Route a new call with it and keep the `Arc<Flow>` for the call.
    pub fn current(&self) -> Arc<QueueSet> {
        Arc::clone(
            &self
                .current
                .read()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        )
    }

    /// Diagnostics of the last load that was refused (empty after a good one). For `/healthz`.
    pub fn last_errors(&self) -> Vec<Diagnostic> {
        self.errors
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Recompile `dir`: swap in the new set if every file compiled, else keep the old one and
    /// record the diagnostics (returned as the error).
    pub fn reload(
        &self,
        dir: &Path,
        catalog: &dyn PromptCatalog,
    ) -> Result<usize, Vec<Diagnostic>> {
        let (set, errors) = load_dir(dir, catalog);
        if errors.is_empty() {
            let n = set.len();
            *self
                .current
                .write()
                .unwrap_or_else(std::sync::PoisonError::into_inner) = Arc::new(set);
            self.errors
                .write()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .clear();
            Ok(n)
        } else {
            *self
                .errors
                .write()
                .unwrap_or_else(std::sync::PoisonError::into_inner) = errors.clone();
            Err(errors)
        }
    }
}

/// A running watcher. Dropping it stops watching.
pub struct WatchHandle {
    _watcher: notify::RecommendedWatcher,
    task: JoinHandle<()>,
}

impl Drop for WatchHandle {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Watch `dir` and reload `registry` when its files change. Call once at startup, inside the
/// runtime; keep the handle for as long as reloads should happen.
pub fn spawn_watcher(
    dir: PathBuf,
    registry: Arc<QueueRegistry>,
    catalog: Arc<dyn PromptCatalog + Send + Sync>,
) -> Result<WatchHandle, notify::Error> {
    // One pending "something changed" is all a reload needs: further events while one is
    // queued are dropped (the debounce below reloads once for all of them).
    let (tx, mut rx) = mpsc::channel::<()>(1);
    let mut watcher =
        notify::recommended_watcher(move |res: notify::Result<notify::Event>| match res {
            Ok(ev) if matches!(ev.kind, EventKind::Access(_)) => {}
            Ok(_) => {
                let _ = tx.try_send(());
            }
            Err(e) => tracing::warn!(error = %e, "queue directory watch error"),
        })?;
    watcher.watch(&dir, RecursiveMode::NonRecursive)?;
    let task = tokio::spawn(async move {
        while rx.recv().await.is_some() {
            // Debounce: wait until no event came for DEBOUNCE.
            loop {
                match tokio::time::timeout(DEBOUNCE, rx.recv()).await {
                    Ok(Some(())) => continue,
                    Ok(None) => return,
                    Err(_) => break,
                }
            }
            let (reg, cat, d) = (Arc::clone(&registry), Arc::clone(&catalog), dir.clone());
            let result = tokio::task::spawn_blocking(move || reg.reload(&d, &*cat)).await;
            match result {
                Ok(Ok(n)) => {
                    tracing::info!(queues = n, dir = %dir.display(), "queue files reloaded")
                }
                Ok(Err(diags)) => {
                    for d in &diags {
                        tracing::warn!(diagnostic = %d, "queue files not reloaded; keeping the previous version");
                    }
                }
                Err(e) => tracing::warn!(error = %e, "queue reload task failed"),
            }
        }
    });
    Ok(WatchHandle {
        _watcher: watcher,
        task,
    })
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;
    use crate::workflow::test_support::{CATALOG, SUPPORT_TOML};

    async fn eventually(what: &str, mut f: impl FnMut() -> bool) {
        for _ in 0..100 {
            if f() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("timed out waiting for {what}");
    }

    #[tokio::test]
    async fn good_changes_apply_and_broken_ones_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("support.toml");
        std::fs::write(&file, SUPPORT_TOML).unwrap();
        let catalog: Arc<HashSet<String>> = Arc::new(CATALOG.clone());
        let registry = Arc::new(QueueRegistry::load(dir.path(), &*catalog));
        assert!(registry.last_errors().is_empty());
        let in_call = registry.current().route("support").unwrap();
        assert_eq!(in_call.offer_every, Duration::from_secs(60));
        let _watch = spawn_watcher(dir.path().to_owned(), Arc::clone(&registry), catalog).unwrap();

        // A valid change is applied.
        let changed = SUPPORT_TOML.replace("offer_every = \"60s\"", "offer_every = \"30s\"");
        assert_ne!(changed, SUPPORT_TOML);
        std::fs::write(&file, &changed).unwrap();
        let r = Arc::clone(&registry);
        eventually("the change", move || {
            r.current()
                .route("support")
                .is_some_and(|f| f.offer_every == Duration::from_secs(30))
        })
        .await;
        assert_eq!(
            in_call.offer_every,
            Duration::from_secs(60),
            "a call keeps its version"
        );

        // A broken change is refused: old set kept, error recorded with line:column.
        let broken = changed.replace("offer_every = \"30s\"", "offer_every = \"45\"");
        std::fs::write(&file, &broken).unwrap();
        let r = Arc::clone(&registry);
        eventually("the refusal", move || !r.last_errors().is_empty()).await;
        let errors = registry.last_errors();
        let line = broken
            .lines()
            .position(|l| l.starts_with("offer_every"))
            .unwrap()
            + 1;
        assert_eq!((errors[0].line, errors[0].column), (line, 15), "{errors:?}");
        assert!(
            errors[0]
                .to_string()
                .contains(&format!("support.toml:{line}:15: offer_every")),
            "{}",
            errors[0]
        );
        assert_eq!(
            registry.current().route("support").unwrap().offer_every,
            Duration::from_secs(30),
            "the previous good version stays"
        );

        // Fixing it clears the errors.
        std::fs::write(&file, changed.replace("\"30s\"", "\"20s\"")).unwrap();
        let r = Arc::clone(&registry);
        eventually("the fix", move || r.last_errors().is_empty()).await;
        assert_eq!(
            registry.current().route("support").unwrap().offer_every,
            Duration::from_secs(20)
        );
    }
}
