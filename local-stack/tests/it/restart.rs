//! The local stack across a restart: events written while it was down reach the read models
//! when it comes back, and the search index kept on disk still answers.

use std::time::{Duration, Instant};

use events::user::{User, UserCommand, UserUpdate};
use events::{EventStore, Metadata, Repository, Tables};
use local_stack::StackConfig;

fn config(prefix: &str) -> StackConfig {
    let search_dir = std::env::temp_dir()
        .join("conduit-restart-search")
        .join(prefix);
    StackConfig {
        search: local_stack::SearchBackend::Embedded {
            dir: Some(search_dir),
        },
        ..crate::test_config(prefix)
    }
}

/// The slugs `GET /api/articles?tag=` lists.
async fn listed(http: &reqwest::Client, api: &str, tag: &str) -> Vec<String> {
    let Ok(response) = http.get(format!("{api}/articles?tag={tag}")).send().await else {
        return Vec::new();
    };
    let body: serde_json::Value = response.json().await.unwrap_or_default();
    body["articles"]
        .as_array()
        .map(|list| {
            list.iter()
                .filter_map(|a| a["slug"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

async fn until<F, Fut>(mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if check().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
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
    let prefix = local_aws::testkit::unique_prefix("restart");
    let http = reqwest::Client::new();

    let first = local_stack::start(config(&prefix))
        .await
        .expect("first start");
    let token = crate::register(&http, &first.api_url(), "sleeper").await;
    let tag = format!("kept-{prefix}");
    let published: serde_json::Value = http
        .post(format!("{}/articles", first.api_url()))
        .header("Authorization", format!("Token {token}"))
        .json(&serde_json::json!({"article": {"title": "Kept on disk", "description": "d", "body": "b", "tagList": [tag]}}))
        .send()
        .await
        .expect("publish")
        .json()
        .await
        .expect("json");
    let slug = published["article"]["slug"]
        .as_str()
        .expect("slug")
        .to_owned();
    let first_api = first.api_url();
    assert!(
        until(|| async { listed(&http, &first_api, &tag).await == [slug.clone()] }).await,
        "the article was never listed before the restart"
    );
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
    let provisioned = local_aws::provision::provision(&clients, &prefix)
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
    // Listed at once: the index was kept on disk, not rebuilt (its checkpoints say it is done).
    let after = listed(&http, &api, &tag).await;
    second.stop().await;
    assert_eq!(seen.as_deref(), Some("written while down"));
    assert_eq!(after, [slug]);
    if let local_stack::SearchBackend::Embedded { dir: Some(dir) } = config(&prefix).search {
        let _ = std::fs::remove_dir_all(dir);
    }
}
