//! Hot reload of the queue directory. A valid change applies to new calls (calls in progress
//! keep the `Arc<Flow>` they started with); an invalid one is refused, the old set kept, and
//! the diagnostics logged and shown by `/healthz`.

use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use notify::{RecursiveMode, Watcher};
use tracing::{info, warn};

use crate::config::diag::Diagnostic;
use crate::media::prompts::PromptLibrary;
use crate::workflow::flow::{self, QueueSet};

/// The queues new calls are routed with, and the last reload's problems.
pub struct QueueRegistry {
    current: RwLock<Arc<QueueSet>>,
    errors: RwLock<Vec<Diagnostic>>,
}

impl QueueRegistry {
    pub fn new(set: QueueSet) -> Self {
        Self {
            current: RwLock::new(Arc::new(set)),
            errors: RwLock::new(Vec::new()),
        }
    }

    pub fn current(&self) -> Arc<QueueSet> {
        self.current.read().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }

    /// Problems of the last refused reload (empty once a reload succeeds).
    pub fn last_errors(&self) -> Vec<Diagnostic> {
        self.errors.read().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }

    /// Re-read the directory: swap in the new set if every file compiles.
    pub fn reload(&self, dir: &std::path::Path, prompts: &PromptLibrary) -> bool {
        let (set, diags) = flow::load_dir(dir, prompts);
        if diags.is_empty() {
            *self.current.write().unwrap_or_else(std::sync::PoisonError::into_inner) = Arc::new(set);
            self.errors.write().unwrap_or_else(std::sync::PoisonError::into_inner).clear();
            info!(queues = self.current().len(), "queue files reloaded");
            true
        } else {
            for d in &diags {
                warn!(problem = %d, "queue file change refused; keeping the previous version");
            }
            *self.errors.write().unwrap_or_else(std::sync::PoisonError::into_inner) = diags;
            false
        }
    }
}

/// Watch `dir` and reload on change (debounced). The returned watcher must be kept alive.
pub fn spawn_watcher(
    dir: PathBuf,
    registry: Arc<QueueRegistry>,
    prompts: Arc<PromptLibrary>,
) -> Option<notify::RecommendedWatcher> {
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let mut watcher = notify::recommended_watcher(move |res: notify::Result<notify::Event>| {
        if res.is_ok() {
            let _ = tx.send(());
        }
    })
    .map_err(|e| warn!(error = %e, "queue directory watch unavailable; no hot reload"))
    .ok()?;
    if let Err(e) = watcher.watch(&dir, RecursiveMode::NonRecursive) {
        warn!(error = %e, dir = %dir.display(), "queue directory watch failed; no hot reload");
        return None;
    }
    tokio::spawn(async move {
        while rx.recv().await.is_some() {
            // Editors write in bursts (temp file, rename, chmod): settle first.
            tokio::time::sleep(Duration::from_millis(200)).await;
            while rx.try_recv().is_ok() {}
            registry.reload(&dir, &prompts);
        }
    });
    Some(watcher)
}
