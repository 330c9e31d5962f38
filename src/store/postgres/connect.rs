//! Connecting to PostgreSQL: the URL, TLS and every timeout, in one place.
//!
//! Invariant: no connection is made without explicit timeouts, and no
//! message names the password (`config::redact_password`, [`describe`]).
//!
//! The client library's defaults would wait forever to connect and notice a
//! dead server only after two hours of TCP keepalive, so unless the URL sets
//! one of them itself (its parameter wins) a connection gets:
//!
//! | setting | value | what it bounds |
//! |---|---|---|
//! | `connect_timeout` | 10 s | the TCP connect, per host; and the whole handshake (TCP, TLS, authentication, the `SET` below): at most once per host and once more ([`Target::connect`]) |
//! | `tcp_user_timeout` | 30 s | how long sent data may stay unacknowledged (a server gone mid-statement) |
//! | `keepalives_idle` / `_interval` / `_retries` | 30 s / 10 s / 3 | an idle connection to a vanished server: noticed within a minute |
//! | `statement_timeout` (session) | 60 s | one statement, waits for a day's lock included (a batch takes well under a second) |
//! | `idle_in_transaction_session_timeout` (session) | 120 s | a client that died inside a transaction: the server ends it and frees its locks |
//!
//! The two session settings are `SET` after connecting (one round trip), not
//! passed as startup `options`, which connection poolers refuse; an
//! `options=-c statement_timeout=…` in the URL keeps its own value.
//!
//! **Why no call waits forever**, case by case, once connected:
//! - the server host or the network gone (packets dropped): the statement's
//!   bytes stay unacknowledged, `tcp_user_timeout` ends the connection after
//!   30 s; an idle connection's keepalive probes go unanswered, ended
//!   within a minute;
//! - the server process gone, the host up: the kernel resets the connection
//!   at once;
//! - the server slow or waiting for a lock: `statement_timeout` ends the
//!   statement, `idle_in_transaction_session_timeout` a transaction whose
//!   client went silent.
//!
//! Connecting is bounded as a whole ([`Target::connect`]). One case has no
//! client-side bound once connected: a peer whose kernel acknowledges every
//! byte and answers keepalives while nothing reads them (a stopped
//! `postgres` process, or a proxy that stopped forwarding without closing).
//! No TCP timeout can see it, the server's own timeouts do not run, the
//! sync client has no per-call deadline and does not give out its socket
//! to close. The call then waits until the peer answers or closes. The
//! pipe's reader never waits for the store (see `pipe`), so Apache is not
//! blocked: what comes meanwhile is held up to the bound and then written
//! to the outage queue, and counted once the peer answers (the tests
//! `a_black_holed_server_at_start_…` and `a_server_that_stops_answering_mid_call_…`
//! in `tests/it/outage.rs`).
//!
//! TLS (rustls, see Cargo.toml), following libpq's `sslmode` meanings:
//! - `disable`: never; `prefer` (the default): if the server offers it;
//!   `require`: always. Both encrypt without verifying the server unless
//!   `--pg-ca-file` is given, which makes them verify the chain as `verify-ca`
//!   does (libpq does the same when it finds a root certificate file).
//! - `verify-ca`: the certificate must chain to `--pg-ca-file` (default: the
//!   system's roots); `verify-full`: and name the host connected to.
//!
//! `sslrootcert=FILE` in the URL is read as `--pg-ca-file` (which wins).
//!
//! A URL without a password takes it from the password file as libpq does
//! (`$PGPASSFILE`, else `.pgpass` in the home directory of the user we run
//! as, which the logger has become by then): lines
//! `host:port:database:user:password`, `*` matching anything, `\:` and `\\`
//! escaped, the first match wins; a file that group or others may read is
//! ignored, as libpq ignores it.

use crate::config::{redact_password, PgTarget};
use anyhow::{anyhow, bail, Context, Result};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, RootCertStore, SignatureScheme};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
pub const TCP_USER_TIMEOUT: Duration = Duration::from_secs(30);
pub const KEEPALIVES_IDLE: Duration = Duration::from_secs(30);
pub const KEEPALIVES_INTERVAL: Duration = Duration::from_secs(10);
pub const KEEPALIVES_RETRIES: u32 = 3;
pub const STATEMENT_TIMEOUT: &str = "60s";
pub const IDLE_IN_TRANSACTION_TIMEOUT: &str = "120s";
/// Handshakes given up on whose threads still wait for an answer, at most.
pub const MAX_ABANDONED: usize = 2;
/// Handshakes given up on whose threads still wait (see [`Target::connect`]).
static ABANDONED: AtomicUsize = AtomicUsize::new(0);

/// Where the system keeps its CA bundle (Debian's first); `SSL_CERT_FILE` wins.
const SYSTEM_ROOTS: &[&str] = &[
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/tls/certs/ca-bundle.crt",
    "/etc/ssl/cert.pem",
];

/// How the server's certificate is checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verify {
    /// No TLS at all (`sslmode=disable`).
    NoTls,
    /// Encrypted, the certificate not checked (`prefer`/`require` without a CA file).
    Nothing,
    /// The chain, not the name (`verify-ca`, or `prefer`/`require` with a CA file).
    Chain,
    /// The chain and the host name (`verify-full`).
    Full,
}

/// A parsed `--db` URL and how to secure it.
pub struct Target {
    pub config: postgres::Config,
    verify: Verify,
    ca_file: Option<PathBuf>,
    /// The URL without its password, for messages.
    pub shown: String,
}

impl std::fmt::Debug for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the password: the URL as shown, not the config.
        write!(f, "Target({}, {:?})", self.shown, self.verify)
    }
}

impl Target {
    /// Reads the URL: libpq's `sslmode` values and `sslrootcert` are taken
    /// out (the client library knows neither `verify-*` nor the file), the
    /// rest is the client's URL syntax; then the defaults of the module header.
    pub fn new(pg: &PgTarget) -> Result<Target> {
        let shown = redact_password(&pg.url);
        let (base, query) = match pg.url.split_once('?') {
            Some((b, q)) => (b, q),
            None => (pg.url.as_str(), ""),
        };
        let mut kept: Vec<&str> = Vec::new();
        let mut keys: Vec<&str> = Vec::new();
        let mut mode = "prefer";
        let mut root_cert: Option<PathBuf> = None;
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            keys.push(k);
            match k {
                "sslmode" => mode = v,
                "sslrootcert" => {
                    let v = percent_encoding::percent_decode_str(v).decode_utf8_lossy();
                    root_cert = Some(PathBuf::from(v.as_ref()));
                }
                _ => kept.push(pair),
            }
        }
        let ca_file = pg.ca_file.clone().or(root_cert);
        let (client_mode, verify) = match (mode, ca_file.is_some()) {
            ("disable", false) => ("sslmode=disable", Verify::NoTls),
            ("disable", true) => bail!(
                "--db {shown}: sslmode=disable with a CA file (--pg-ca-file or sslrootcert): \
                 choose sslmode=require, verify-ca or verify-full to use it"
            ),
            ("prefer" | "allow", false) => ("sslmode=prefer", Verify::Nothing),
            ("prefer" | "allow", true) => ("sslmode=prefer", Verify::Chain),
            ("require", false) => ("sslmode=require", Verify::Nothing),
            ("require" | "verify-ca", _) => ("sslmode=require", Verify::Chain),
            ("verify-full", _) => ("sslmode=require", Verify::Full),
            (other, _) => bail!(
                "--db {shown}: sslmode={other} is not one of disable, prefer, require, verify-ca, verify-full"
            ),
        };
        kept.push(client_mode);
        let url = format!("{base}?{}", kept.join("&"));
        let mut config: postgres::Config = url
            .parse()
            .map_err(|e| anyhow!("--db {shown}: not a PostgreSQL URL this dlcount can use: {e}"))?;
        let given = |k: &str| keys.contains(&k);
        if !given("connect_timeout") {
            config.connect_timeout(CONNECT_TIMEOUT);
        }
        if !given("tcp_user_timeout") {
            config.tcp_user_timeout(TCP_USER_TIMEOUT);
        }
        if !given("keepalives") {
            config.keepalives(true);
        }
        if !given("keepalives_idle") {
            config.keepalives_idle(KEEPALIVES_IDLE);
        }
        if !given("keepalives_interval") {
            config.keepalives_interval(KEEPALIVES_INTERVAL);
        }
        if !given("keepalives_retries") {
            config.keepalives_retries(KEEPALIVES_RETRIES);
        }
        if !given("application_name") {
            config.application_name("dlcount-pipe");
        }
        if config.get_password().is_none() {
            if let Some(pw) = pgpass_password(&config) {
                config.password(pw);
            }
        }
        Ok(Target {
            config,
            verify,
            ca_file,
            shown,
        })
    }

    /// Where this connects, for messages: `host:port/database as user`.
    pub fn place(&self) -> String {
        let hosts: Vec<String> = self
            .config
            .get_hosts()
            .iter()
            .map(|h| match h {
                postgres::config::Host::Tcp(name) => name.clone(),
                postgres::config::Host::Unix(path) => path.display().to_string(),
            })
            .collect();
        let host = if hosts.is_empty() {
            "localhost".to_string()
        } else {
            hosts.join(",")
        };
        let port = match self.config.get_ports() {
            [] => "5432".to_string(),
            ports => ports
                .iter()
                .map(u16::to_string)
                .collect::<Vec<_>>()
                .join(","),
        };
        let user = self.config.get_user().unwrap_or("(no user)");
        let db = self.config.get_dbname().unwrap_or(user);
        format!("{host}:{port}, database {db}, as {user}")
    }

    /// Connects, sets the session's timeouts (module header), all of it
    /// within [`Target::handshake_deadline`].
    ///
    /// The client library bounds only the TCP connect by `connect_timeout`:
    /// TLS, the startup message, authentication and the `SET` that follows
    /// would each wait forever on a server (or anything in between) that
    /// accepted the connection and then never answers. So the whole
    /// handshake runs on a thread of its own and this call waits for it at
    /// most the deadline; one that is given up on keeps its thread until the
    /// peer answers or closes (its socket cannot be reached to close it: the
    /// library does not give it out), and while [`MAX_ABANDONED`] of them
    /// wait, another attempt fails at once instead of adding a thread.
    pub fn connect(&self) -> Result<postgres::Client> {
        let place = self.place();
        let abandoned = ABANDONED.load(Ordering::Acquire);
        if abandoned >= MAX_ABANDONED {
            bail!(
                "cannot connect to PostgreSQL at {place}: {abandoned} earlier connection attempts \
                 still wait for an answer"
            );
        }
        let tls = match self.verify {
            Verify::NoTls => None,
            v => Some(tokio_postgres_rustls::MakeRustlsConnect::new(
                self.tls_config(v)?,
            )),
        };
        let config = self.config.clone();
        let set = self.session_settings();
        let deadline = self.handshake_deadline();
        // 0: waiting; 1: the handshake ended in time; 2: given up on.
        let state = Arc::new(AtomicU8::new(0));
        let (tx, rx) = std::sync::mpsc::channel();
        let thread_state = Arc::clone(&state);
        std::thread::Builder::new()
            .name("pg-connect".into())
            .spawn(move || {
                let result = handshake(&config, tls, &set);
                let _ = tx.send(result);
                if thread_state
                    .compare_exchange(0, 1, Ordering::AcqRel, Ordering::Acquire)
                    .is_err()
                {
                    ABANDONED.fetch_sub(1, Ordering::AcqRel);
                }
            })
            .context("cannot start a thread to connect to PostgreSQL")?;
        let result = match rx.recv_timeout(deadline) {
            Ok(r) => r,
            Err(_) => {
                ABANDONED.fetch_add(1, Ordering::AcqRel);
                if state
                    .compare_exchange(0, 2, Ordering::AcqRel, Ordering::Acquire)
                    .is_ok()
                {
                    bail!(
                        "cannot connect to PostgreSQL at {place}: no answer within {} s \
                         (the connection was accepted, the handshake never finished)",
                        deadline.as_secs()
                    );
                }
                // It ended just now: its result is sent already.
                ABANDONED.fetch_sub(1, Ordering::AcqRel);
                rx.recv().map_err(|_| {
                    anyhow!("the thread connecting to PostgreSQL ended without a word")
                })?
            }
        };
        result.map_err(|(connected, e)| {
            let e = anyhow!("{}", describe(&e));
            if connected {
                e.context(format!("PostgreSQL at {place}"))
            } else {
                e.context(format!("cannot connect to PostgreSQL at {place}"))
            }
        })
    }

    /// The `SET`s of the session's timeouts the URL does not set itself.
    fn session_settings(&self) -> String {
        let options = self.config.get_options().unwrap_or("");
        let mut set = String::new();
        if !options.contains("statement_timeout") {
            set.push_str(&format!("SET statement_timeout = '{STATEMENT_TIMEOUT}';"));
        }
        if !options.contains("idle_in_transaction_session_timeout") {
            set.push_str(&format!(
                "SET idle_in_transaction_session_timeout = '{IDLE_IN_TRANSACTION_TIMEOUT}';"
            ));
        }
        set
    }

    /// How long [`Target::connect`] waits: the connect timeout once per
    /// host the library may try, and once more for the `SET`.
    pub fn handshake_deadline(&self) -> Duration {
        let per_host = self
            .config
            .get_connect_timeout()
            .copied()
            .unwrap_or(CONNECT_TIMEOUT);
        let hosts = self.config.get_hosts().len().max(1) as u32;
        per_host * (hosts + 1)
    }

    fn tls_config(&self, verify: Verify) -> Result<rustls::ClientConfig> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ClientConfig::builder_with_provider(Arc::clone(&provider))
            .with_safe_default_protocol_versions()
            .context("TLS set-up")?;
        let verifier: Arc<dyn ServerCertVerifier> = match verify {
            Verify::NoTls | Verify::Nothing => Arc::new(AnyCertificate(provider)),
            Verify::Chain | Verify::Full => {
                let roots = self.roots()?;
                let webpki = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider)
                    .build()
                    .context("TLS set-up")?;
                if verify == Verify::Full {
                    webpki
                } else {
                    Arc::new(ChainOnly(webpki))
                }
            }
        };
        Ok(builder
            .dangerous()
            .with_custom_certificate_verifier(verifier)
            .with_no_client_auth())
    }

    /// The CA file's certificates, or the system's.
    fn roots(&self) -> Result<RootCertStore> {
        let path: PathBuf = match &self.ca_file {
            Some(p) => p.clone(),
            None => {
                let env = std::env::var_os("SSL_CERT_FILE").map(PathBuf::from);
                env.into_iter()
                    .chain(SYSTEM_ROOTS.iter().map(PathBuf::from))
                    .find(|p| p.is_file())
                    .ok_or_else(|| {
                        anyhow!(
                            "--db {}: no CA certificates to verify the server with: give --pg-ca-file \
                             (or install ca-certificates)",
                            self.shown
                        )
                    })?
            }
        };
        let mut roots = RootCertStore::empty();
        for cert in read_pem(&path)? {
            roots
                .add(cert)
                .map_err(|e| anyhow!("{}: not a usable CA certificate: {e}", path.display()))?;
        }
        Ok(roots)
    }
}

/// Connects and sets `set` (on the thread [`Target::connect`] starts); an
/// error says whether the connection was made (`true`: the `SET` failed).
fn handshake(
    config: &postgres::Config,
    tls: Option<tokio_postgres_rustls::MakeRustlsConnect>,
    set: &str,
) -> Result<postgres::Client, (bool, postgres::Error)> {
    let mut client = match tls {
        None => config.connect(postgres::NoTls),
        Some(tls) => config.connect(tls),
    }
    .map_err(|e| (false, e))?;
    if !set.is_empty() {
        client.batch_execute(set).map_err(|e| (true, e))?;
    }
    Ok(client)
}

/// The password for `config`'s first host, port, database and user from the
/// password file (module header), if it has one.
fn pgpass_password(config: &postgres::Config) -> Option<String> {
    use std::os::unix::fs::PermissionsExt;
    let path = match std::env::var_os("PGPASSFILE") {
        Some(p) => PathBuf::from(p),
        None => nix::unistd::User::from_uid(nix::unistd::geteuid())
            .ok()
            .flatten()?
            .dir
            .join(".pgpass"),
    };
    let meta = std::fs::metadata(&path).ok()?;
    if !meta.is_file() || meta.permissions().mode() & 0o077 != 0 {
        return None;
    }
    let host = match config.get_hosts().first() {
        Some(postgres::config::Host::Tcp(h)) => h.clone(),
        // libpq matches a socket connection's default directory as "localhost".
        Some(postgres::config::Host::Unix(_)) | None => "localhost".to_string(),
    };
    let port = config
        .get_ports()
        .first()
        .copied()
        .unwrap_or(5432)
        .to_string();
    let user = config.get_user()?;
    let db = config.get_dbname().unwrap_or(user);
    let text = std::fs::read_to_string(&path).ok()?;
    pgpass_lookup(&text, [&host, &port, db, user])
}

/// The password of the first line of a password file matching `want`
/// (host, port, database, user).
fn pgpass_lookup(text: &str, want: [&str; 4]) -> Option<String> {
    for line in text.lines() {
        if line.starts_with('#') {
            continue;
        }
        let mut fields = vec![String::new()];
        let mut chars = line.chars();
        while let Some(c) = chars.next() {
            match c {
                '\\' => {
                    if let Some(n) = chars.next() {
                        fields.last_mut().expect("one field at least").push(n);
                    }
                }
                ':' if fields.len() < 5 => fields.push(String::new()),
                c => fields.last_mut().expect("one field at least").push(c),
            }
        }
        if fields.len() == 5 && fields.iter().zip(want).all(|(f, w)| f == "*" || f == w) {
            return fields.pop();
        }
    }
    None
}

fn read_pem(path: &Path) -> Result<Vec<CertificateDer<'static>>> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
        .map_err(|e| anyhow!("cannot read the CA file {}: {e}", path.display()))?
        .collect::<Result<_, _>>()
        .map_err(|e| anyhow!("cannot read the CA file {}: {e}", path.display()))?;
    if certs.is_empty() {
        bail!(
            "the CA file {} holds no PEM certificate (-----BEGIN CERTIFICATE-----)",
            path.display()
        );
    }
    Ok(certs)
}

/// A client error as one line: the server's own message when it sent one
/// (the library's own text is only "db error"), else the library's chain.
pub fn describe(e: &postgres::Error) -> String {
    if let Some(db) = e.as_db_error() {
        let mut s = format!("{}: {}", db.severity(), db.message());
        if let Some(d) = db.detail() {
            s.push_str(&format!(" ({d})"));
        }
        return s;
    }
    let mut parts = vec![e.to_string()];
    let mut cause = std::error::Error::source(e);
    while let Some(c) = cause {
        let text = c.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        cause = c.source();
    }
    parts.join(": ")
}

/// `verify-ca`: the chain must verify; the name in it need not be the host's.
#[derive(Debug)]
struct ChainOnly(Arc<WebPkiServerVerifier>);

impl ServerCertVerifier for ChainOnly {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self
            .0
            .verify_server_cert(end_entity, intermediates, server_name, ocsp, now)
        {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

/// `require` without a CA file (libpq's meaning): encrypted, and the
/// handshake's signatures checked, but any certificate accepted.
#[derive(Debug)]
struct AnyCertificate(Arc<CryptoProvider>);

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(url: &str, ca: Option<&str>) -> Result<Target> {
        Target::new(&PgTarget {
            url: url.to_string(),
            ca_file: ca.map(PathBuf::from),
            state_dir: PathBuf::from("/tmp"),
        })
    }

    #[test]
    fn timeouts_are_set_unless_the_url_sets_them() {
        let t = target("postgres://dl:secret@db.example:5433/counts", None).unwrap();
        assert_eq!(t.config.get_connect_timeout(), Some(&CONNECT_TIMEOUT));
        assert_eq!(t.config.get_tcp_user_timeout(), Some(&TCP_USER_TIMEOUT));
        assert_eq!(t.config.get_keepalives_idle(), KEEPALIVES_IDLE);
        assert_eq!(
            t.config.get_keepalives_interval(),
            Some(KEEPALIVES_INTERVAL)
        );
        assert_eq!(t.config.get_keepalives_retries(), Some(KEEPALIVES_RETRIES));
        assert!(t.config.get_keepalives());
        assert_eq!(t.verify, Verify::Nothing);
        assert_eq!(t.place(), "db.example:5433, database counts, as dl");
        assert_eq!(t.shown, "postgres://dl:***@db.example:5433/counts");
        let t = target(
            "postgresql://dl@h/db?connect_timeout=3&keepalives_idle=7",
            None,
        )
        .unwrap();
        assert_eq!(
            t.config.get_connect_timeout(),
            Some(&Duration::from_secs(3))
        );
        assert_eq!(t.config.get_keepalives_idle(), Duration::from_secs(7));
    }

    #[test]
    fn the_handshake_waits_the_connect_timeout_per_host_and_once_more() {
        let deadline = |url: &str| target(url, None).unwrap().handshake_deadline();
        assert_eq!(deadline("postgres://h/d"), Duration::from_secs(20));
        assert_eq!(
            deadline("postgres://h1,h2/d?connect_timeout=3"),
            Duration::from_secs(9)
        );
    }

    #[test]
    fn sslmodes_map_to_libpqs_meanings() {
        let v = |url: &str, ca: Option<&str>| target(url, ca).map(|t| t.verify);
        assert_eq!(
            v("postgres://h/d?sslmode=disable", None).unwrap(),
            Verify::NoTls
        );
        assert_eq!(v("postgres://h/d", None).unwrap(), Verify::Nothing);
        assert_eq!(v("postgres://h/d", Some("/ca")).unwrap(), Verify::Chain);
        assert_eq!(
            v("postgres://h/d?sslmode=require", None).unwrap(),
            Verify::Nothing
        );
        assert_eq!(
            v("postgres://h/d?sslmode=require", Some("/ca")).unwrap(),
            Verify::Chain
        );
        assert_eq!(
            v("postgres://h/d?sslmode=verify-ca", None).unwrap(),
            Verify::Chain
        );
        let t = target(
            "postgres://h/d?sslmode=verify-full&sslrootcert=/etc/x%20y.pem&application_name=a",
            None,
        )
        .unwrap();
        assert_eq!(t.verify, Verify::Full);
        assert_eq!(t.ca_file, Some(PathBuf::from("/etc/x y.pem")));
        assert_eq!(t.config.get_ssl_mode(), postgres::config::SslMode::Require);
        assert_eq!(t.config.get_application_name(), Some("a"));
        let e = v("postgres://u:pw@h/d?sslmode=verify-all", None).unwrap_err();
        assert_eq!(
            e.to_string(),
            "--db postgres://u:***@h/d?sslmode=verify-all: sslmode=verify-all is not one of \
             disable, prefer, require, verify-ca, verify-full"
        );
        let e = v("postgres://h/d?sslmode=disable", Some("/ca")).unwrap_err();
        assert!(
            e.to_string().contains("sslmode=disable with a CA file"),
            "{e}"
        );
    }

    #[test]
    fn a_bad_url_is_named_without_its_password() {
        let e = target("postgres://u:pw@h/d?nonsense=1", None).unwrap_err();
        let text = format!("{e:#}");
        assert!(
            text.starts_with("--db postgres://u:***@h/d?nonsense=1: "),
            "{text}"
        );
        assert!(!text.contains("pw@"), "{text}");
    }

    #[test]
    fn the_password_file_is_read_as_libpq_reads_it() {
        let text = "# comment\n\
                    db.example:5432:other:dl:wrong\n\
                    db.example:*:counts:dl:pa\\:ss\\\\word\n\
                    *:*:*:*:fallback\n";
        let want = |db| pgpass_lookup(text, ["db.example", "5432", db, "dl"]);
        assert_eq!(want("counts").as_deref(), Some("pa:ss\\word"));
        assert_eq!(want("other").as_deref(), Some("wrong"));
        assert_eq!(want("third").as_deref(), Some("fallback"));
        assert_eq!(pgpass_lookup("h:1:d:u\n", ["h", "1", "d", "u"]), None);
    }

    #[test]
    fn a_ca_file_without_certificates_is_refused_by_name() {
        let dir = tempfile::tempdir().unwrap();
        let ca = dir.path().join("ca.pem");
        std::fs::write(&ca, "not a certificate\n").unwrap();
        let t = target("postgres://h/d?sslmode=verify-full", ca.to_str()).unwrap();
        let e = t.roots().unwrap_err();
        assert!(e.to_string().contains("holds no PEM certificate"), "{e}");
    }
}
