//! The fan-out Lambda: DynamoDB stream batches of the events table, published to the topic.

use aws_lambda_events::event::dynamodb::Event;
use lambda_runtime::{service_fn, LambdaEvent};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    common::telemetry::init();
    let sns = aws_sdk_sns::Client::new(&common::aws::config_from_env().await);
    let topic_arn = common::config::required("CONDUIT_TOPIC_ARN")?;
    let fan_out = projectors::FanOut::new(sns, topic_arn);
    let fan_out = &fan_out;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Event>| async move {
        Ok::<_, lambda_runtime::Error>(fan_out.handle(event.payload).await)
    }))
    .await
}
