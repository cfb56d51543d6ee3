//! Tracing set-up: JSON lines on Lambda, readable lines locally, `RUST_LOG` to filter.

use tracing_subscriber::EnvFilter;

/// Installs the global subscriber once; later calls do nothing.
pub fn init() {
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("info,aws_config=warn,aws_smithy_runtime=warn"));
    let on_lambda = std::env::var_os("AWS_LAMBDA_FUNCTION_NAME").is_some();
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    let result = if on_lambda {
        builder
            .json()
            .without_time()
            .with_current_span(true)
            .try_init()
    } else {
        builder.with_target(false).try_init()
    };
    // Already installed (tests, or a second init): keep the first.
    drop(result);
}
