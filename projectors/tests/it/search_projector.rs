//! The search projector with an in-RAM embedded index, checkpoints and events in DynamoDB Local:
//! publish, edit and delete reach the index once each, whatever the delivery.

use crate::support::{messages, sqs_event};
use events::article::ArticleEvent;
use events::StoredEvent;
use projectors::runtime::Outcome;
use projectors::{Projector, SearchProjector};
use search::{ArticleQuery, EmbeddedIndex, SearchIndex};
use uuid::Uuid;

const CREATED: &str = "2024-01-01T00:00:00.000Z";
const EDITED: &str = "2024-01-02T00:00:00.000Z";

type Fixture = crate::support::Fixture<SearchProjector>;

async fn fixture(tag: &str) -> Fixture {
    let index = SearchIndex::Embedded(EmbeddedIndex::in_ram().expect("in-RAM index"));
    index.ensure_index().await.expect("index");
    Fixture::new(tag, |dynamodb, tables| {
        SearchProjector::runtime(dynamodb, tables, index)
    })
    .await
}

impl Fixture {
    fn index(&self) -> &SearchIndex {
        self.runtime.projector().index()
    }

    /// Publishes, edits (tags `old` become `new`) and deletes one article in the events table.
    async fn article_history(&self, author: &str) -> (String, Vec<StoredEvent>) {
        let id = Uuid::new_v4().to_string();
        let slug = format!("dragons-{}", &id[..8]);
        let history = vec![
            ArticleEvent::ArticlePublished {
                article_id: id.clone(),
                author_id: author.into(),
                slug: slug.clone(),
                title: "Dragons".into(),
                description: "How".into(),
                body: "Believe".into(),
                tag_list: vec!["dragons".into(), "old".into()],
                created_at: CREATED.into(),
            },
            ArticleEvent::ArticleEdited {
                slug: format!("{slug}-2"),
                previous_slug: slug.clone(),
                author_id: author.into(),
                title: "Dragons 2".into(),
                description: "How".into(),
                body: "Believe".into(),
                tag_list: vec!["dragons".into(), "new".into()],
                created_at: CREATED.into(),
                updated_at: EDITED.into(),
            },
            ArticleEvent::ArticleDeleted {
                author_id: author.into(),
                slug: format!("{slug}-2"),
                deleted_at: EDITED.into(),
            },
        ];
        let stored = self
            .append(events::article::AGGREGATE_TYPE, &id, history)
            .await;
        (id, stored)
    }

    /// The articles the index finds by author and by tag.
    async fn found(&self, author: Option<&str>, tag: Option<&str>) -> Vec<String> {
        let page = self
            .index()
            .search(&ArticleQuery {
                author_id: author.map(str::to_owned),
                tag: tag.map(str::to_owned),
                limit: 20,
                ..ArticleQuery::default()
            })
            .await
            .expect("search");
        page.hits.into_iter().map(|hit| hit.article_id).collect()
    }

    async fn tags(&self) -> Vec<String> {
        self.index().tags().await.expect("tags")
    }
}

#[tokio::test]
async fn publish_edit_and_delete_reach_the_index() {
    let f = fixture("searchlife").await;
    let (id, events) = f.article_history("author").await;
    assert!(f.found(Some("author"), None).await.is_empty());

    f.runtime.project(&events[0]).await.expect("publish");
    assert_eq!(f.found(Some("author"), None).await, vec![id.clone()]);
    assert_eq!(f.found(None, Some("old")).await, vec![id.clone()]);
    assert_eq!(f.tags().await, vec!["dragons", "old"]);

    f.runtime.project(&events[1]).await.expect("edit");
    assert!(f.found(None, Some("old")).await.is_empty());
    assert_eq!(f.found(None, Some("new")).await, vec![id.clone()]);
    assert_eq!(f.tags().await, vec!["dragons", "new"]);

    f.runtime.project(&events[2]).await.expect("delete");
    assert!(f.found(Some("author"), None).await.is_empty());
    assert!(f.found(None, Some("dragons")).await.is_empty());
    assert!(f.tags().await.is_empty());
}

#[tokio::test]
async fn duplicate_and_older_events_change_nothing() {
    let f = fixture("searchdup").await;
    let (id, events) = f.article_history("author").await;
    f.runtime.project(&events[0]).await.expect("publish");
    f.runtime.project(&events[1]).await.expect("edit");
    for event in &events[..2] {
        assert_eq!(
            f.runtime.project(event).await.expect("redelivered"),
            Outcome::Duplicate
        );
    }
    // Even past the checkpoint (as after a crash between the index write and the checkpoint),
    // an older or the same version leaves the index as it is.
    for event in &events[..2] {
        let actions = f
            .runtime
            .projector()
            .effects(event)
            .await
            .expect("stale is success");
        assert!(
            actions.is_empty(),
            "no DynamoDB write besides the checkpoint"
        );
    }
    assert_eq!(f.found(None, Some("new")).await, vec![id.clone()]);
    assert!(f.found(None, Some("old")).await.is_empty());

    // Likewise after the delete: a late publish does not bring the article back.
    f.runtime.project(&events[2]).await.expect("delete");
    f.runtime
        .projector()
        .effects(&events[0])
        .await
        .expect("stale is success");
    assert!(f.found(Some("author"), None).await.is_empty());
}

#[tokio::test]
async fn a_gap_is_filled_from_the_events_table() {
    let f = fixture("searchgap").await;
    let (edited_id, edited) = f.article_history("a1").await;
    let (_, deleted) = f.article_history("a2").await;
    assert_eq!(
        f.runtime.project(&edited[1]).await.expect("edit first"),
        Outcome::Applied { filled: 1 }
    );
    assert_eq!(f.found(Some("a1"), Some("new")).await, vec![edited_id]);
    assert_eq!(
        f.runtime.project(&deleted[2]).await.expect("delete first"),
        Outcome::Applied { filled: 2 }
    );
    assert!(f.found(Some("a2"), None).await.is_empty());
    for event in deleted.iter().chain(&edited[..1]) {
        assert_eq!(
            f.runtime.project(event).await.expect("late copies"),
            Outcome::Duplicate
        );
    }
}

#[tokio::test]
async fn any_delivery_order_gives_the_in_order_index() {
    let f = fixture("searchorder").await;
    let (live_id, live) = f.article_history("live").await;
    let (_, gone) = f.article_history("gone").await;
    // The live article stops at its edit; the other is deleted. Reversed, with duplicates, in one batch.
    let batch = sqs_event(&messages(&[
        &gone[2], &live[1], &gone[0], &live[0], &gone[1], &live[1], &gone[2],
    ]));
    let response = f.runtime.handle_sqs(batch).await;
    assert!(response.batch_item_failures.is_empty());
    assert_eq!(f.found(None, Some("dragons")).await, vec![live_id]);
    assert_eq!(f.tags().await, vec!["dragons", "new"]);
}
