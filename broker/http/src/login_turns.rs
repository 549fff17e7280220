//! Turns at checking a password over HTTP. The core bounds argon2 checks
//! too, but a login waiting there holds one of tokio's blocking threads:
//! a flood of wrong passwords once filled all 512 and locked every user
//! out (issue 27). Here a login waits its turn as a future — no thread —
//! in arrival order, as many at once as the broker checks
//! (`limits.max_concurrent_password_checks`), and only then takes a
//! blocking thread. One that waits longer than `Limits::login_wait` is
//! answered `503` and costs no argon2 at all.

use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

pub struct LoginTurns {
    turns: Arc<Semaphore>,
    wait: Duration,
}

impl LoginTurns {
    pub fn new(at_once: usize, wait: Duration) -> Self {
        LoginTurns {
            turns: Arc::new(Semaphore::new(at_once.max(1))),
            wait,
        }
    }

    /// Waits for a turn, to be held until the password check has ended —
    /// moved into the blocking task, so a client that goes away while
    /// its password is checked does not give its turn to another.
    pub async fn turn(&self) -> Result<OwnedSemaphorePermit, Response> {
        let turn = self.turns.clone().acquire_owned();
        match tokio::time::timeout(self.wait, turn).await {
            Ok(Ok(turn)) => Ok(turn),
            Ok(Err(closed)) => Err((
                StatusCode::INTERNAL_SERVER_ERROR,
                Json(serde_json::json!({ "error": closed.to_string() })),
            )
                .into_response()),
            Err(_) => Err(self.busy()),
        }
    }

    fn busy(&self) -> Response {
        let message = format!(
            "too many logins are waiting for a password check: none came free within {} ms \
             (http.login_wait_ms); retry later",
            self.wait.as_millis()
        );
        (
            StatusCode::SERVICE_UNAVAILABLE,
            [(header::RETRY_AFTER, "1")],
            Json(serde_json::json!({ "error": message })),
        )
            .into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_login_that_waits_too_long_is_answered_503() {
        let turns = LoginTurns::new(1, Duration::from_millis(20));
        let held = turns.turn().await.unwrap();
        let refused = turns.turn().await.unwrap_err();
        assert_eq!(refused.status(), StatusCode::SERVICE_UNAVAILABLE);
        drop(held);
        assert!(turns.turn().await.is_ok());
    }
}
