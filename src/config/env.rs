//! Environment overrides (`HAMMOND_*`): secrets and container-specific addresses that should not
//! live in the config file. Read through [`Env`] so tests pass a `HashMap` instead of mutating
//! the process environment.

use std::collections::HashMap;

/// Overrides `[sip] listen` (containers listen on `0.0.0.0:5060`).
pub const SIP_LISTEN: &str = "HAMMOND_SIP_LISTEN";
/// Overrides `[sip] public_address` (the IP advertised in Contact and SDP).
pub const SIP_PUBLIC_ADDRESS: &str = "HAMMOND_SIP_PUBLIC_ADDRESS";
/// Overrides `[http] listen`.
pub const HTTP_LISTEN: &str = "HAMMOND_HTTP_LISTEN";
/// Overrides `[media] rtp_ports` (instances sharing one host address need ranges apart).
pub const MEDIA_RTP_PORTS: &str = "HAMMOND_MEDIA_RTP_PORTS";
/// Overrides `[store] url` (a PostgreSQL URL carries the database password).
pub const STORE_URL: &str = "HAMMOND_STORE_URL";
/// Overrides `[sip.trunk] username`.
pub const TRUNK_USERNAME: &str = "HAMMOND_TRUNK_USERNAME";
/// Overrides `[sip.trunk] password`.
pub const TRUNK_PASSWORD: &str = "HAMMOND_TRUNK_PASSWORD";

/// The variable that overrides agent `id`'s API token: `HAMMOND_AGENT_<ID>_TOKEN`, the id
/// uppercased with `-` turned into `_` (`front-desk` → `HAMMOND_AGENT_FRONT_DESK_TOKEN`).
pub fn agent_token_var(id: &str) -> String {
    let id: String = id
        .chars()
        .map(|c| {
            if c == '-' {
                '_'
            } else {
                c.to_ascii_uppercase()
            }
        })
        .collect();
    format!("HAMMOND_AGENT_{id}_TOKEN")
}

/// The variable that overrides webhook `name`'s secret: `HAMMOND_WEBHOOK_<NAME>_SECRET`, the
/// name uppercased, every character other than a letter or digit turned into `_`.
pub fn webhook_secret_var(name: &str) -> String {
    let name: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_uppercase()
            } else {
                '_'
            }
        })
        .collect();
    format!("HAMMOND_WEBHOOK_{name}_SECRET")
}

/// The variable that overrides API client `id`'s token: `HAMMOND_API_CLIENT_<ID>_TOKEN`
/// (spelt as [`agent_token_var`] spells the id).
pub fn api_client_token_var(id: &str) -> String {
    agent_token_var(id).replacen("HAMMOND_AGENT_", "HAMMOND_API_CLIENT_", 1)
}

/// Where config overrides come from. [`ProcessEnv`] in the binary, a `HashMap` in tests.
pub trait Env {
    /// The value of `key`, or `None` when it is unset (or not valid Unicode).
    fn get(&self, key: &str) -> Option<String>;
}

/// The real process environment.
#[derive(Debug, Clone, Copy, Default)]
pub struct ProcessEnv;

impl Env for ProcessEnv {
    fn get(&self, key: &str) -> Option<String> {
        std::env::var(key).ok()
    }
}

impl Env for HashMap<String, String> {
    fn get(&self, key: &str) -> Option<String> {
        // The inherent `HashMap::get` (by `&str`), not this trait method.
        Self::get(self, key).cloned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn agent_vars() {
        assert_eq!(agent_token_var("alice"), "HAMMOND_AGENT_ALICE_TOKEN");
        assert_eq!(
            agent_token_var("front-desk"),
            "HAMMOND_AGENT_FRONT_DESK_TOKEN"
        );
    }

    #[test]
    fn map_env() {
        let env: HashMap<String, String> = [("A".to_owned(), "1".to_owned())].into();
        assert_eq!(Env::get(&env, "A").as_deref(), Some("1"));
        assert_eq!(Env::get(&env, "B"), None);
    }
}
