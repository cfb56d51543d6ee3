//! The local stack across a restart: events written while it was down reach the read models when it comes back.

use std::time::{Duration, Instant};

use common::config::JwtSettings;
use events::user::{User, UserCommand, UserUpdate};
use events::{EventStore, Metadata, Repository, Tables};
use local_stack::StackConfig;

fn config(prefix: &str) -> StackConfig {
    StackConfig {
        endpoints: infra::testkit::emulators().clone(),
        prefix: prefix.to_owned(),
        jwt: JwtSettings::new(vec![b's'; 32], Duration::from_secs(3600)).expect("jwt"),
        listen: ([127, 0, 0, 1], 0).into(),
        retry_delay: Some(Duration::from_secs(1)),
        stream_poll_interval: Duration::from_millis(20),
        search_dir: None,
        api_meter: None,
    }
}

async fn bio_of(http: &reqwest::Client, api: &str, token: &str) -> Option<String> {
    let response = http
        .get(format!("{api}/user"))
        .header("Authorization", format!("Token {token}"))
        .send()
        .await
        .ok()?;
    let body: serde_json::Value = response.json().await.ok()?;
    body["user"]["bio"].as_str().map(str::to_owned)
}

#[tokio::test]
async fn events_written_while_the_stack_was_down_are_projected_after_a_restart() {
    let prefix = infra::testkit::unique_prefix("restart");
    let http = reqwest::Client::new();

    let first = local_stack::start(config(&prefix))
        .await
        .expect("first start");
    let registered: serde_json::Value = http
        .post(format!("{}/users", first.api_url()))
        .json(&serde_json::json!({"user": {"username": "sleeper", "email": "sleeper@example.com", "password": "pw-sleeper"}}))
        .send()
        .await
        .expect("register")
        .json()
        .await
        .expect("json");
    let token = registered["user"]["token"]
        .as_str()
        .expect("token")
        .to_owned();
    let clients = first.clients.clone();
    first.stop().await;

    // While no gateway and no poller runs, an event is appended and every queued message is lost.
    let claims = common::jwt::JwtKeys::new(&config(&prefix).jwt)
        .verify(&token)
        .expect("claims");
    let repository = Repository::new(EventStore::new(
        clients.dynamodb.clone(),
        Tables::with_prefix(&prefix),
    ));
    repository
        .execute::<User>(
            &claims.sub,
            UserCommand::Update(UserUpdate {
                bio: Some("written while down".into()),
                ..UserUpdate::default()
            }),
            Metadata::default(),
        )
        .await
        .expect("append while down");
    let provisioned = infra::resources::provision(&clients, &prefix)
        .await
        .expect("names");
    for queue in &provisioned.queues {
        clients
            .sqs
            .purge_queue()
            .queue_url(&queue.url)
            .send()
            .await
            .expect("purge");
    }

    let second = local_stack::start(config(&prefix))
        .await
        .expect("second start");
    let api = second.api_url();
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut seen = None;
    while Instant::now() < deadline {
        seen = bio_of(&http, &api, &token).await;
        if seen.as_deref() == Some("written while down") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    second.stop().await;
    assert_eq!(seen.as_deref(), Some("written while down"));
}
