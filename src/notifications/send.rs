//! One delivery to one destination: a webhook POST signed as the Standard
//! Webhooks spec describes, or a command with the event on stdin. Blocking;
//! every try has a time limit, and running past it is a failure.
//!
//! The webhook body is `{"type": <event name>, "timestamp": <event time>,
//! "data": <the event's line in events.jsonl>}`, with the headers
//! `webhook-id` (the delivery's id, the same on every try),
//! `webhook-timestamp` (the try's time, in Unix seconds) and
//! `webhook-signature` (`v1,` and the base64 HMAC-SHA256 of
//! `<id>.<timestamp>.<body>` under the secret) when a secret is set. A
//! secret written `whsec_<base64>` signs with the decoded bytes, as the
//! spec's libraries do; any other secret signs with its bytes as they are.

use std::io::Write;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{KeyInit, Mac};

use super::outbox::Delivery;
use crate::config::NotifyConfig;
use crate::runner::terminate::{self, Method};

/// Where deliveries go, resolved from a `[[notify]]` table.
#[derive(Debug, Clone)]
pub struct Destination {
    pub name: String,
    /// Event names it takes (`*` for all).
    pub events: Vec<String>,
    pub target: Target,
    pub timeout: Duration,
    /// The waits before the second, third ... try.
    pub retry: Vec<Duration>,
}

/// How a destination is reached.
#[derive(Debug, Clone)]
pub enum Target {
    Webhook {
        url: String,
        /// The signing key, when a secret is set.
        key: Option<Vec<u8>>,
    },
    Command {
        argv: Vec<String>,
    },
}

/// A try that failed.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    #[error("timed out after {}", humantime::format_duration(*after))]
    TimedOut { after: Duration },
    #[error("the receiver answered {status}")]
    Status { status: u16 },
    #[error("cannot reach the receiver")]
    Http(#[source] Box<ureq::Error>),
    #[error("cannot run `{program}`")]
    Spawn {
        program: String,
        #[source]
        source: std::io::Error,
    },
    #[error("`{program}` failed ({exit})")]
    Command { program: String, exit: String },
    #[error("no such destination `{name}` in the config")]
    NoDestination { name: String },
}

/// A `[[notify]]` table whose secret cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("notify `{name}`: the secret after `whsec_` is not base64")]
    NotBase64 {
        name: String,
        #[source]
        source: base64::DecodeError,
    },
    #[error("notify `{name}`: the environment variable `{var}` (`secret_env`) is not set")]
    MissingEnv { name: String, var: String },
}

impl Destination {
    /// Resolves the `n`th `[[notify]]` table (reading `secret_env` now).
    pub fn from_config(n: usize, config: &NotifyConfig) -> Result<Destination, SecretError> {
        let name = config.name_at(n);
        let target = match (&config.webhook, &config.command) {
            (Some(url), _) => {
                let secret = match (&config.secret, &config.secret_env) {
                    (Some(secret), _) => Some(secret.clone()),
                    (None, Some(var)) => {
                        Some(std::env::var(var).map_err(|_| SecretError::MissingEnv {
                            name: name.clone(),
                            var: var.clone(),
                        })?)
                    }
                    (None, None) => None,
                };
                let key = secret.map(|s| signing_key(&name, &s)).transpose()?;
                Target::Webhook {
                    url: url.clone(),
                    key,
                }
            }
            (None, command) => Target::Command {
                argv: command.clone().unwrap_or_default(),
            },
        };
        Ok(Destination {
            name,
            events: config.events.clone(),
            target,
            timeout: config.timeout.0,
            retry: config.retry.iter().map(|d| d.0).collect(),
        })
    }

    /// Returns whether an event of this name goes here.
    pub fn wants(&self, event: &str) -> bool {
        self.events.iter().any(|e| e == "*" || e == event)
    }

    /// Makes one try at a delivery.
    pub fn send(&self, delivery: &Delivery, now: SystemTime) -> Result<(), SendError> {
        let body = body(delivery);
        match &self.target {
            Target::Webhook { url, key } => {
                let timestamp = now
                    .duration_since(SystemTime::UNIX_EPOCH)
                    .unwrap_or_default()
                    .as_secs();
                post(
                    url,
                    key.as_deref(),
                    &delivery.id,
                    timestamp,
                    &body,
                    self.timeout,
                )
            }
            Target::Command { argv } => run(argv, delivery, &body, self.timeout),
        }
    }
}

/// Returns the key a secret signs with.
fn signing_key(name: &str, secret: &str) -> Result<Vec<u8>, SecretError> {
    match secret.strip_prefix("whsec_") {
        Some(encoded) => STANDARD
            .decode(encoded)
            .map_err(|source| SecretError::NotBase64 {
                name: name.to_owned(),
                source,
            }),
        None => Ok(secret.as_bytes().to_vec()),
    }
}

/// Returns the `webhook-signature` value: `v1,<base64 HMAC-SHA256>`.
pub fn signature(key: &[u8], id: &str, timestamp: u64, body: &[u8]) -> String {
    // An HMAC takes a key of any length.
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(key).expect("HMAC takes any key");
    mac.update(format!("{id}.{timestamp}.").as_bytes());
    mac.update(body);
    format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()))
}

/// Returns the JSON body of a delivery.
pub fn body(delivery: &Delivery) -> Vec<u8> {
    let doc = serde_json::json!({
        "type": delivery.event,
        "timestamp": delivery.at,
        "data": delivery.data,
    });
    serde_json::to_vec(&doc).unwrap_or_default()
}

fn post(
    url: &str,
    key: Option<&[u8]>,
    id: &str,
    timestamp: u64,
    body: &[u8],
    timeout: Duration,
) -> Result<(), SendError> {
    let config = ureq::Agent::config_builder()
        .timeout_global(Some(timeout))
        .http_status_as_error(false)
        .build();
    let agent = ureq::Agent::new_with_config(config);
    let mut request = agent
        .post(url)
        .header("content-type", "application/json")
        .header("user-agent", concat!("orch/", env!("CARGO_PKG_VERSION")))
        .header("webhook-id", id)
        .header("webhook-timestamp", timestamp.to_string());
    if let Some(key) = key {
        request = request.header("webhook-signature", signature(key, id, timestamp, body));
    }
    match request.send(body) {
        Ok(response) if response.status().is_success() => Ok(()),
        Ok(response) => Err(SendError::Status {
            status: response.status().as_u16(),
        }),
        Err(ureq::Error::Timeout(_)) => Err(SendError::TimedOut { after: timeout }),
        Err(e) => Err(SendError::Http(Box::new(e))),
    }
}

/// Runs a command with the event on stdin, in a process group of its own;
/// past the timeout the group is stopped and the try failed.
fn run(
    argv: &[String],
    delivery: &Delivery,
    body: &[u8],
    timeout: Duration,
) -> Result<(), SendError> {
    let program = argv.first().cloned().unwrap_or_default();
    let spawn_err = |source| SendError::Spawn {
        program: program.clone(),
        source,
    };
    let mut cmd = Command::new(&program);
    cmd.args(&argv[1..])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .env("ORCH_EVENT", &delivery.event)
        .env("ORCH_DELIVERY_ID", &delivery.id)
        .process_group(0);
    for var in crate::git::cmd::DISCOVERY_VARS {
        cmd.env_remove(var);
    }
    let mut child = cmd.spawn().map_err(spawn_err)?;
    if let Some(mut stdin) = child.stdin.take() {
        // A command that does not read its input is its own business.
        let _ = stdin.write_all(body).and_then(|()| stdin.write_all(b"\n"));
    }
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(status) = child.try_wait().map_err(spawn_err)? {
            if status.success() {
                return Ok(());
            }
            return Err(SendError::Command {
                program,
                exit: status.to_string(),
            });
        }
        if Instant::now() >= deadline {
            let _ = terminate::stop_group_blocking(
                child.id(),
                Method::TermThenKill {
                    grace: Duration::from_secs(2),
                },
            );
            let _ = child.wait();
            return Err(SendError::TimedOut { after: timeout });
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The example of the Standard Webhooks spec's reference libraries.
    #[test]
    fn signatures_match_the_standard_webhooks_example() {
        let key = signing_key("t", "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        let body = br#"{"test": 2432232314}"#;
        assert_eq!(
            signature(&key, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body),
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
        assert!(matches!(
            signing_key("t", "whsec_!!"),
            Err(SecretError::NotBase64 { .. })
        ));
        assert_eq!(signing_key("t", "plain").unwrap(), b"plain");
    }
}
