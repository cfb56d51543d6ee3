//! Small pieces both mappings share: the shutdown signal, a capped backoff, the handler
//! call guard (a panic is a function error, as a crashed Lambda is) and base64.

use std::any::Any;
use std::cmp::Ordering;
use std::fmt::Display;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::time::Duration;

use aws_sdk_dynamodbstreams::error::{ProvideErrorMetadata, SdkError};
use common::backoff::{Backoff, Retries};
use futures::FutureExt;

/// The longest any backoff sleeps.
pub(crate) const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// The caller's shutdown future, pinned once, remembered once it has fired.
pub(crate) struct Stop<F: Future> {
    fut: Option<Pin<Box<F>>>,
}

impl<F: Future> Stop<F> {
    pub(crate) fn new(fut: F) -> Self {
        Self {
            fut: Some(Box::pin(fut)),
        }
    }

    /// Whether shutdown has been requested (polls the future once, without waiting).
    pub(crate) fn requested(&mut self) -> bool {
        match &mut self.fut {
            None => true,
            Some(fut) => {
                if fut.as_mut().now_or_never().is_some() {
                    self.fut = None;
                    true
                } else {
                    false
                }
            }
        }
    }

    /// Sleeps for `duration` unless shutdown comes first. Returns `true` if it did.
    pub(crate) async fn sleep(&mut self, duration: Duration) -> bool {
        let Some(fut) = &mut self.fut else {
            return true;
        };
        tokio::select! {
            biased;
            _ = fut.as_mut() => {
                self.fut = None;
                true
            }
            () = tokio::time::sleep(duration) => false,
        }
    }
}

/// Pauses after failed AWS calls: from `initial`, doubling on each failure, capped at
/// [`MAX_BACKOFF`].
pub(crate) fn retries(initial: Duration) -> Retries {
    Retries::new(Backoff::new(initial, MAX_BACKOFF))
}

/// `base * 2^(n-1)`, capped at [`MAX_BACKOFF`]; zero for `n == 0`.
pub(crate) fn retry_delay(base: Duration, n: u32) -> Duration {
    Backoff::new(base, MAX_BACKOFF).ceiling(n)
}

/// Calls the handler; a panic (while building or while polling the future) and an `Err`
/// both come back as the error text, as Lambda reports a function error.
pub(crate) async fn invoke<H, Ev, Fut, T, E>(handler: &H, event: Ev) -> Result<T, String>
where
    H: Fn(Ev) -> Fut,
    Fut: Future<Output = Result<T, E>>,
    E: Display,
{
    let call = AssertUnwindSafe(async move { handler(event).await }).catch_unwind();
    match call.await {
        Ok(Ok(response)) => Ok(response),
        Ok(Err(error)) => Err(error.to_string()),
        Err(panic) => Err(format!("handler panicked: {}", panic_text(&*panic))),
    }
}

fn panic_text(panic: &(dyn Any + Send)) -> String {
    if let Some(text) = panic.downcast_ref::<&str>() {
        (*text).to_owned()
    } else if let Some(text) = panic.downcast_ref::<String>() {
        text.clone()
    } else {
        "non-string panic payload".to_owned()
    }
}

/// A one-line description of an AWS SDK error: `Code: message` for a service error, the
/// whole cause chain otherwise (timeouts, connection refused, ...).
pub(crate) fn aws_error_text<E, R>(error: &SdkError<E, R>) -> String
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    match (error.code(), error.message()) {
        (Some(code), Some(message)) => format!("{code}: {message}"),
        (Some(code), None) => code.to_owned(),
        // No code: an error of the client (a timeout, an unparsable answer), in one line
        // without the SDK's debug dump of the raw response.
        _ => common::error::one_line(error),
    }
}

/// Orders two decimal sequence numbers (DynamoDB Streams' are decimal strings of varying
/// length, so plain string order is wrong).
pub(crate) fn cmp_sequence_numbers(a: &str, b: &str) -> Ordering {
    let a = a.trim_start_matches('0');
    let b = b.trim_start_matches('0');
    a.len().cmp(&b.len()).then_with(|| a.cmp(b))
}

/// Standard base64 with padding (what Lambda uses for binary values in events).
pub(crate) fn base64(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_rfc4648_vectors() {
        let cases = [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ];
        for (plain, encoded) in cases {
            assert_eq!(base64(plain.as_bytes()), encoded, "{plain:?}");
        }
        assert_eq!(base64(&[0xff, 0xfe, 0xfd]), "//79");
    }

    #[test]
    fn sequence_numbers_compare_numerically() {
        assert_eq!(cmp_sequence_numbers("9", "10"), Ordering::Less);
        assert_eq!(cmp_sequence_numbers("000100", "100"), Ordering::Equal);
        assert_eq!(
            cmp_sequence_numbers("400000000000000001", "300000000000000009"),
            Ordering::Greater
        );
    }

    #[test]
    fn backoff_doubles_and_caps() {
        let mut backoff = retries(Duration::from_millis(100));
        assert_eq!(backoff.fail(), Duration::from_millis(100));
        assert_eq!(backoff.fail(), Duration::from_millis(200));
        for _ in 0..20 {
            backoff.fail();
        }
        assert_eq!(backoff.fail(), MAX_BACKOFF);
        backoff.reset();
        assert_eq!(backoff.fail(), Duration::from_millis(100));
        assert_eq!(retry_delay(Duration::from_millis(10), 0), Duration::ZERO);
        assert_eq!(
            retry_delay(Duration::from_millis(10), 3),
            Duration::from_millis(40)
        );
        assert_eq!(retry_delay(Duration::from_millis(10), 40), MAX_BACKOFF);
    }

    #[tokio::test]
    async fn a_panicking_handler_is_a_function_error() {
        let handler = |n: u32| async move {
            if n == 0 {
                panic!("boom");
            }
            Ok::<u32, String>(n)
        };
        assert_eq!(invoke(&handler, 3).await, Ok(3));
        let err = invoke(&handler, 0).await.expect_err("panics");
        assert!(err.contains("boom"), "{err}");
    }
}
