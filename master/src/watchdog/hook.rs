//! The watchdog's hook: an operator's command run for every warning raised or cleared (to send
//! mail, page, open a ticket). It gets the warning as environment variables and as one JSON
//! object on stdin, has a bounded time, and its failure is logged, never retried: the warning
//! is in the log and in `status` whatever the hook does.
//!
//! Hooks run one at a time, in order, on a task of their own, so a slow hook never delays the
//! watchdog; at most [`QUEUE`] wait, more are dropped (and logged).

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::sync::mpsc;

/// Hook runs waiting at most.
const QUEUE: usize = 256;

/// One delivery.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Delivery {
    /// `raised` or `cleared`.
    pub state: &'static str,
    pub rule: String,
    pub subject: String,
    pub detail: String,
    /// Which master's watchdog saw it.
    pub master: String,
}

/// Why a hook run failed.
#[derive(Debug, thiserror::Error)]
pub enum HookError {
    #[error("cannot start {path}: {source}")]
    Start {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} exited with {status}")]
    Failed {
        path: PathBuf,
        status: std::process::ExitStatus,
    },
    #[error("{path} did not finish within {timeout:?} (killed)")]
    Timeout { path: PathBuf, timeout: Duration },
    #[error("waiting for {path}: {source}")]
    Wait {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// Runs the hook once for `d`.
pub async fn run(path: &PathBuf, timeout: Duration, d: &Delivery) -> Result<(), HookError> {
    let json = serde_json::json!({
        "state": d.state, "rule": d.rule, "subject": d.subject, "detail": d.detail,
        "master": d.master,
    })
    .to_string();
    let mut child = tokio::process::Command::new(path)
        .env("ORRERY_WARNING_STATE", d.state)
        .env("ORRERY_WARNING_RULE", &d.rule)
        .env("ORRERY_WARNING_SUBJECT", &d.subject)
        .env("ORRERY_WARNING_DETAIL", &d.detail)
        .env("ORRERY_WARNING_MASTER", &d.master)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .map_err(|source| HookError::Start {
            path: path.clone(),
            source,
        })?;
    let mut stdin = child.stdin.take();
    let work = async {
        if let Some(stdin) = stdin.as_mut() {
            // A hook that does not read its stdin is fine.
            let _ = stdin.write_all(json.as_bytes()).await;
            let _ = stdin.write_all(b"\n").await;
        }
        drop(stdin);
        child.wait().await
    };
    match tokio::time::timeout(timeout, work).await {
        Err(_) => Err(HookError::Timeout {
            path: path.clone(),
            timeout,
        }),
        Ok(Err(source)) => Err(HookError::Wait {
            path: path.clone(),
            source,
        }),
        Ok(Ok(status)) if status.success() => Ok(()),
        Ok(Ok(status)) => Err(HookError::Failed {
            path: path.clone(),
            status,
        }),
    }
}

/// A queue in front of the hook.
#[derive(Clone, Debug)]
pub struct Hook {
    tx: mpsc::Sender<Delivery>,
}

impl Hook {
    /// Starts the task running `path` for each delivery.
    pub fn start(path: PathBuf, timeout: Duration) -> Self {
        let (tx, mut rx) = mpsc::channel::<Delivery>(QUEUE);
        tokio::spawn(async move {
            while let Some(d) = rx.recv().await {
                match run(&path, timeout, &d).await {
                    Ok(()) => {
                        tracing::debug!(rule = %d.rule, subject = %d.subject, "watchdog hook ran")
                    }
                    Err(e) => {
                        tracing::warn!(rule = %d.rule, subject = %d.subject, state = d.state, error = %e, "watchdog hook failed")
                    }
                }
            }
        });
        Self { tx }
    }

    /// Queues a delivery; drops it (logged) when the queue is full.
    pub fn deliver(&self, d: Delivery) {
        if let Err(e) = self.tx.try_send(d) {
            tracing::warn!(error = %e, "watchdog hook queue full: delivery dropped");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn delivery() -> Delivery {
        Delivery {
            state: "raised",
            rule: "missed_checkins".into(),
            subject: "satellite:sat1".into(),
            detail: "no check-in for 3 s".into(),
            master: "m1".into(),
        }
    }

    fn script(dir: &std::path::Path, body: &str) -> PathBuf {
        use std::os::unix::fs::PermissionsExt;
        let path = dir.join("hook.sh");
        std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        path
    }

    #[tokio::test]
    async fn gets_the_warning_as_env_and_json() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out");
        let hook = script(
            dir.path(),
            &format!(
                "echo \"$ORRERY_WARNING_STATE $ORRERY_WARNING_RULE $ORRERY_WARNING_SUBJECT\" > {0}; cat >> {0}",
                out.display()
            ),
        );
        run(&hook, Duration::from_secs(10), &delivery())
            .await
            .unwrap();
        let text = std::fs::read_to_string(&out).unwrap();
        let (env, json) = text.split_once('\n').unwrap();
        assert_eq!(env, "raised missed_checkins satellite:sat1");
        let v: serde_json::Value = serde_json::from_str(json.trim()).unwrap();
        assert_eq!(v["detail"], "no check-in for 3 s");
        assert_eq!(v["master"], "m1");
    }

    #[tokio::test]
    async fn failures_and_timeouts_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        let e = run(
            &script(dir.path(), "exit 3"),
            Duration::from_secs(10),
            &delivery(),
        )
        .await
        .unwrap_err();
        assert!(matches!(e, HookError::Failed { .. }), "{e}");
        let started = std::time::Instant::now();
        let e = run(
            &script(dir.path(), "sleep 30"),
            Duration::from_millis(200),
            &delivery(),
        )
        .await
        .unwrap_err();
        assert!(matches!(e, HookError::Timeout { .. }), "{e}");
        assert!(started.elapsed() < Duration::from_secs(5));
        let e = run(
            &dir.path().join("missing"),
            Duration::from_secs(1),
            &delivery(),
        )
        .await
        .unwrap_err();
        assert!(matches!(e, HookError::Start { .. }), "{e}");
    }
}
