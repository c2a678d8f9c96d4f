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

/// A TCP front for the test database's server (which listens on a unix socket) that the
/// test can cut and restore: a PostgreSQL outage for one Hammond without stopping the server
/// every other test shares. Cut, it drops every connection it carries and closes each new one
/// at once (as a server that is down, or a network that is cut).
pub(crate) struct PgProxy {
    port: u16,
    up: std::sync::Arc<std::sync::atomic::AtomicBool>,
    live: std::sync::Arc<std::sync::Mutex<Vec<std::net::TcpStream>>>,
    url: String,
}

impl PgProxy {
    /// Starts the front for `db`'s server (a unix-socket server, as `scripts/with-postgres`
    /// starts).
    pub(crate) fn start(db: &PgDb) -> Self {
        use std::sync::atomic::AtomicBool;
        use std::sync::{Arc, Mutex};
        let dir = db.admin.get_socket().expect("a unix-socket server").clone();
        let socket = dir.join(format!(".s.PGSQL.{}", db.admin.get_port()));
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let up = Arc::new(AtomicBool::new(true));
        let live: Arc<Mutex<Vec<std::net::TcpStream>>> = Arc::default();
        let (up2, live2) = (up.clone(), live.clone());
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                if !up2.load(Ordering::SeqCst) {
                    continue; // dropped: closed at once
                }
                let Ok(server) = std::os::unix::net::UnixStream::connect(&socket) else {
                    continue;
                };
                live2.lock().unwrap().push(client.try_clone().unwrap());
                let (mut c_in, mut s_out) =
                    (client.try_clone().unwrap(), server.try_clone().unwrap());
                let (mut s_in, mut c_out) = (server, client);
                std::thread::spawn(move || {
                    let _ = std::io::copy(&mut c_in, &mut s_out);
                    let _ = s_out.shutdown(std::net::Shutdown::Both);
                });
                std::thread::spawn(move || {
                    let _ = std::io::copy(&mut s_in, &mut c_out);
                    let _ = c_out.shutdown(std::net::Shutdown::Both);
                });
            }
        });
        let url = format!(
            "postgres://{}@127.0.0.1:{port}/{}?sslmode=disable",
            db.admin.get_username(),
            db.name
        );
        Self {
            port,
            up,
            live,
            url,
        }
    }

    /// The `[store] url` through the front.
    pub(crate) fn url(&self) -> String {
        self.url.clone()
    }

    /// The outage begins: every carried connection is dropped, new ones are closed.
    pub(crate) fn cut(&self) {
        self.up.store(false, Ordering::SeqCst);
        for c in self.live.lock().unwrap().drain(..) {
            let _ = c.shutdown(std::net::Shutdown::Both);
        }
    }

    /// The outage ends.
    pub(crate) fn restore(&self) {
        self.up.store(true, Ordering::SeqCst);
    }

    /// The front's port.
    #[allow(dead_code)]
    pub(crate) fn port(&self) -> u16 {
        self.port
    }
}

/// A PostgreSQL server of a test's own that takes TLS on a loopback TCP port, presenting a
/// certificate from a test CA: what a database on another host looks like. Debian's server
/// binaries (as `scripts/with-postgres` finds them); run as the `postgres` user when the test
/// runs as root (the server refuses root). `None`, said, when the binaries are missing and CI
/// is unset.
pub(crate) struct PgTlsServer {
    dir: tempfile::TempDir,
    bin: std::path::PathBuf,
    /// Its TCP port on 127.0.0.1.
    pub port: u16,
}

impl PgTlsServer {
    pub(crate) fn start(case: &str, pki: &super::pki::Pki) -> Option<Self> {
        use std::process::Command;
        let bin = std::fs::read_dir("/usr/lib/postgresql")
            .ok()
            .and_then(|d| {
                let mut v: Vec<_> = d.filter_map(|e| Some(e.ok()?.path().join("bin"))).collect();
                v.sort();
                v.pop()
            })
            .filter(|b| b.join("initdb").exists());
        let Some(bin) = bin else {
            assert!(std::env::var_os("CI").is_none(), "CI must have PostgreSQL");
            let _ = writeln!(
                std::io::stderr(),
                "{case}: SKIPPED (no PostgreSQL server binaries)"
            );
            return None;
        };
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        // The server wants its key private to the user it runs as.
        let (cert, key) = (dir.path().join("server.crt"), dir.path().join("server.key"));
        std::fs::copy(&pki.cert, &cert).unwrap();
        std::fs::copy(&pki.key, &key).unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
        let run = as_server_user;
        if unsafe { libc::geteuid() } == 0 {
            let ok = Command::new("chown")
                .args(["-R", "postgres:"])
                .arg(dir.path())
                .status()
                .unwrap();
            assert!(ok.success());
        }
        let out = run(&bin.join("initdb"))
            .arg("-D")
            .arg(&data)
            .args([
                "-U",
                "postgres",
                "-A",
                "trust",
                "-E",
                "UTF8",
                "--locale=C.UTF-8",
            ])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "initdb: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let port = super::ports::block(1);
        let options = format!(
            "-c listen_addresses=127.0.0.1 -c port={port} -k {sock} -c ssl=on \
             -c ssl_cert_file={cert} -c ssl_key_file={key}",
            sock = dir.path().display(),
            cert = cert.display(),
            key = key.display(),
        );
        let out = run(&bin.join("pg_ctl"))
            .arg("-D")
            .arg(&data)
            .arg("-l")
            .arg(dir.path().join("server.log"))
            .args(["-w", "-t", "60", "-o", &options, "start"])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "pg_ctl start: {}\n{}",
            String::from_utf8_lossy(&out.stderr),
            std::fs::read_to_string(dir.path().join("server.log")).unwrap_or_default()
        );
        Some(Self { dir, bin, port })
    }

    /// Admin SQL over the server's unix socket (no TLS there): the rows' first column.
    pub(crate) fn query(&self, q: &str) -> Vec<String> {
        let url = format!(
            "postgres://postgres@/postgres?host={}&port={}",
            self.dir.path().display(),
            self.port
        );
        let admin = hammond::store::pg::connect_options(&url).unwrap();
        block_on(async {
            use sqlx::Row as _;
            let mut c = PgConnection::connect_with(&admin)
                .await
                .expect("PostgreSQL");
            let rows = sqlx::raw_sql(AssertSqlSafe(q.to_owned()))
                .fetch_all(&mut c)
                .await
                .unwrap();
            rows.iter().map(|r| r.get::<String, _>(0)).collect()
        })
    }
}

/// `program` as the `postgres` user when the test runs as root (the server refuses root).
fn as_server_user(program: &std::path::Path) -> std::process::Command {
    if unsafe { libc::geteuid() } == 0 {
        let mut c = std::process::Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(program);
        c
    } else {
        std::process::Command::new(program)
    }
}

impl Drop for PgTlsServer {
    fn drop(&mut self) {
        let _ = as_server_user(&self.bin.join("pg_ctl"))
            .arg("-D")
            .arg(self.dir.path().join("data"))
            .args(["-m", "immediate", "stop"])
            .output();
    }
}
