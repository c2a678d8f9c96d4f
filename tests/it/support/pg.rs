//! A PostgreSQL database of its own for a test, on the server `HAMMOND_TEST_PG_URL` names
//! (`scripts/with-postgres` starts a throwaway one; `.ci/run` always does), dropped at the end.
//! Without a server a test says on the terminal that it was skipped (under CI it fails).

use std::io::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};

use sqlx::postgres::PgConnectOptions;
use sqlx::{AssertSqlSafe, Connection, PgConnection};

pub(crate) struct PgDb {
    admin: PgConnectOptions,
    name: String,
}

/// Runs `f` on a small runtime of its own (the tests are synchronous).
fn block_on<T>(f: impl std::future::Future<Output = T>) -> T {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(f)
}

async fn admin_sql(admin: &PgConnectOptions, q: String) {
    let mut c = PgConnection::connect_with(admin).await.expect("PostgreSQL");
    sqlx::raw_sql(AssertSqlSafe(q))
        .execute(&mut c)
        .await
        .unwrap();
    let _ = c.close().await;
}

impl PgDb {
    /// A fresh empty database, or `None` (said) without a server.
    pub(crate) fn new(case: &str) -> Option<Self> {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let url = match std::env::var("HAMMOND_TEST_PG_URL") {
            Ok(u) if !u.is_empty() => u,
            _ => {
                assert!(
                    std::env::var_os("CI").is_none(),
                    "CI must run the PostgreSQL tests: set HAMMOND_TEST_PG_URL (scripts/with-postgres)"
                );
                // Past the test harness's capture: a skipped test must not look like a pass.
                let _ = writeln!(
                    std::io::stderr(),
                    "{case}: SKIPPED (no PostgreSQL: set HAMMOND_TEST_PG_URL, or run under scripts/with-postgres)"
                );
                return None;
            }
        };
        let admin = hammond::store::pg::connect_options(&url).expect("HAMMOND_TEST_PG_URL");
        let name = format!(
            "hammond_it_{}_{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        block_on(admin_sql(&admin, format!("CREATE DATABASE {name}")));
        Some(Self { admin, name })
    }

    /// The database's URL as `[store] url` takes it (`postgres://user@/db?host=/socket/dir`
    /// on a unix socket).
    pub(crate) fn url(&self) -> String {
        match self.admin.get_socket() {
            Some(dir) => format!(
                "postgres://{}@/{}?host={}",
                self.admin.get_username(),
                self.name,
                dir.display()
            ),
            None => format!(
                "postgres://{}@{}:{}/{}",
                self.admin.get_username(),
                self.admin.get_host(),
                self.admin.get_port(),
                self.name
            ),
        }
    }
}

impl Drop for PgDb {
    fn drop(&mut self) {
        let q = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name);
        block_on(admin_sql(&self.admin, q));
    }
}
