//! The favorite-count snapshot read against DynamoDB Local: the articles item and the
//! projector's checkpoint of one favorite stream, as the articles projector writes them.

use aws_sdk_dynamodb::types::AttributeValue;
use command_api::FavoriteCounts;
use common::config::TableNames;

async fn put(clients: &local_aws::Clients, table: &str, item: &[(&str, AttributeValue)]) {
    let mut request = clients.dynamodb.put_item().table_name(table);
    for (name, value) in item {
        request = request.item(*name, value.clone());
    }
    request.send().await.expect("put item");
}

fn s(value: &str) -> AttributeValue {
    AttributeValue::S(value.to_owned())
}

fn n(value: u64) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

#[tokio::test]
async fn the_snapshot_reads_the_count_and_the_favorite_streams_checkpoint() {
    let prefix = local_aws::testkit::unique_prefix("cmdfavcount");
    let (clients, _) = local_aws::testkit::provisioned(&prefix).await;
    let tables = TableNames::with_prefix(&prefix);
    let counts = FavoriteCounts::new(clients.dynamodb.clone(), &tables);

    // Nothing projected yet: no item, no checkpoint.
    let empty = counts.snapshot("a1", "a1:u1").await.expect("snapshot");
    assert_eq!((empty.favorites_count, empty.applied_sequence), (0, 0));
    assert_eq!(counts.projected("a1").await.expect("projected"), 0);

    put(
        &clients,
        &tables.articles,
        &[
            ("articleId", s("a1")),
            ("slug", s("s")),
            ("favoritesCount", n(4)),
        ],
    )
    .await;
    put(
        &clients,
        &tables.checkpoints,
        &[("pk", s("articles#Favorite#a1:u1")), ("lastSeq", n(3))],
    )
    .await;
    // Another user's stream, and another projector's checkpoint of ours, are not ours.
    put(
        &clients,
        &tables.checkpoints,
        &[("pk", s("articles#Favorite#a1:u2")), ("lastSeq", n(8))],
    )
    .await;
    put(
        &clients,
        &tables.checkpoints,
        &[("pk", s("feed#Favorite#a1:u1")), ("lastSeq", n(9))],
    )
    .await;

    let snapshot = counts.snapshot("a1", "a1:u1").await.expect("snapshot");
    assert_eq!(
        (snapshot.favorites_count, snapshot.applied_sequence),
        (4, 3)
    );
    assert_eq!(counts.projected("a1").await.expect("projected"), 4);
    let other = counts.snapshot("a1", "a1:u3").await.expect("snapshot");
    assert_eq!((other.favorites_count, other.applied_sequence), (4, 0));
}
